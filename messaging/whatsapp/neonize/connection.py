"""A device's connection: start, stop, reconnect, linking (QR codes, pairing code), log out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.events import label_events
from messaging.whatsapp.neonize.names import neonize_lib, translate_error

logger = logging.getLogger(__name__)


# whatsmeow's QR channel: the first code is valid for 60 s, each following one for 20 s.
FIRST_QR_SECONDS = 60.0
NEXT_QR_SECONDS = 20.0
QR_GRACE_SECONDS = 5.0
PAIR_CODE_SECONDS = 160.0
FIRST_QR_WAIT_SECONDS = 30.0
STOP_WAIT_SECONDS = 8.0  # under the session worker's own stop timeout (10 s)
# A stop during linking first waits this long for the first QR code: only once whatsmeow's QR emitter runs does
# neonize's Go linking loop end by itself (when the codes run out), see NeonizeClient.stop.
LINK_STOP_WAIT_SECONDS = 5.0
# The longest a stopped linking call stays in Go: the QR emitter's six codes (60 s, then 5 x 20 s).
LINGERING_LINK_SECONDS = FIRST_QR_SECONDS + 5 * NEXT_QR_SECONDS
# whatsmeow's words (in neonize's NeonizeError) when it cannot open its socket to WhatsApp: this server's network
# (DNS, routing, a firewall, a proxy), nothing a new scan or pairing code fixes.
UNREACHABLE_MARKERS = (
    "failed to dial whatsapp web websocket",
    "dial tcp",
    "no such host",
    "network is unreachable",
    "no route to host",
    "connection refused",
    "i/o timeout",
    "proxyconnect",
    "timed out waiting for handshake response",
)


def connection_failure_cause(exc: BaseException) -> str:
    """The DisconnectCause of a connection that failed with `exc`, or "" when it is not one we can name."""
    text = str(exc).lower()
    if isinstance(exc, OSError) or any(marker in text for marker in UNREACHABLE_MARKERS):
        return p.DisconnectCause.UNREACHABLE
    return ""


class Connection:
    """NeonizeClient's connection lifecycle (see client.py for its state)."""

    def is_connected(self) -> bool:
        return self._connected

    def _linking(self) -> bool:
        """Whether the current connection is a linking session (whatsmeow's QR loop runs in its Go call)."""
        return self.neo is not None and not self._connected and self._fresh_session

    async def start(self) -> None:
        if self._supervisor is not None and not self._supervisor.done():
            return
        self._stopping = False
        self._final = False
        self._qr_ready = asyncio.Event()
        self._qr_count = 0
        self._supervisor = asyncio.create_task(self._run(), name=f"neonize-device-{self.device_id}")
        # Let the connection begin before returning (the QR or "connected" event follows).
        await asyncio.sleep(0)

    async def stop(self) -> None:
        self._stopping = True
        self._cancel_watchdog()
        linking = self._linking()
        self._connected = False
        connection = self._connection
        running = connection is not None and not connection.done()
        if linking and running and self._qr_ready is not None and not self._qr_ready.is_set():
            # neonize's Go Neonize() loops over whatsmeow's QR channel, and our disconnect closes that channel
            # only once whatsmeow's QR emitter runs (it ends when its codes run out): wait for the first code.
            first_code = asyncio.ensure_future(self._qr_ready.wait())
            await asyncio.wait(
                [first_code, connection], timeout=LINK_STOP_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            first_code.cancel()
        if self.neo is not None:
            with contextlib.suppress(Exception):
                await self.neo.stop()
        task, self._supervisor = self._supervisor, None
        if task is not None and (self._in_backoff or linking):
            task.cancel()  # waiting to reconnect, or linking (its Go call cannot end now): nothing to wind down
        elif task is not None and not task.done() and task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                logger.exception("neonize client of device %s ended with an error", self.device_id)
        if connection is not None and not connection.done():
            # Its Go call still holds a thread of the loop's pool: count it until it ends (the pool must keep
            # room for the live devices); a linking one ends within LINGERING_LINK_SECONDS.
            self.backend.linger(connection)

    async def reconnect(self) -> None:
        await self.stop()
        await self.start()

    async def logout(self) -> None:
        """Unlink on the phone (when connected), stop, and delete the stored session."""
        if self.neo is not None and self._connected:
            try:
                await self.neo.logout()
            except Exception as exc:
                raise translate_error(exc) from exc
        self._final = True
        await self.stop()
        self.backend.remove_session(self.device_id)
        self.jid = ""
        await self._emit_event(p.LoggedOutEvent(reason="logged out"))

    async def pair_phone(self, *, phone: str) -> p.PairCode:
        """Link by pairing code: whatsmeow wants the linking connection up (first QR issued) first."""
        try:
            digits = p.normalize_phone(phone)
        except ValueError as exc:
            raise p.InvalidRequest(_noop("phone: %(reason)s") % {"reason": exc}) from exc
        if self._connected:
            raise p.InvalidRequest(_noop("this device is already linked; log out first"))
        if self._supervisor is None or self._supervisor.done():
            await self.start()
        try:
            await asyncio.wait_for(self._qr_ready.wait(), FIRST_QR_WAIT_SECONDS)
        except TimeoutError as exc:
            raise p.UpstreamTimeout(_noop("WhatsApp did not open a linking session in time")) from exc
        enum = neonize_lib().enum
        try:
            code = await self.neo.PairPhone(digits, True, enum.ClientName.LINUX, enum.ClientType.CHROME)
        except Exception as exc:
            raise translate_error(exc) from exc
        await self._emit_event(p.PairCodeEvent(code=code, expires_in=PAIR_CODE_SECONDS))
        return p.PairCode(code=code, expires_in=PAIR_CODE_SECONDS)

    async def _run(self) -> None:
        """Keep the client connected: restart neonize's connection with backoff when it ends by itself.

        Every connection gets a new neonize client. neonize passes the client's `jid`/`new_device` to Go on every
        connect(), so reusing the client a device was linked with (`new_device=True`, on PostgreSQL) would make
        Go create a blank device again: a QR code instead of the session just paired. The new client is opened
        for the stored session of `self.jid`, which pairing or connecting has set."""
        while not self._stopping and not self._final:
            began = time.monotonic()
            reason, cause = "connection closed", ""
            try:
                neo = await self.backend.open_neonize(self)
                self._subscribe(neo)
                self.neo = neo
                self.backend.reserve_threads(asyncio.get_running_loop())
                self._connection = await neo.connect(self._proxy_settings())
                # Shielded: a stop must not cancel the task of a Go call that does not end yet (see stop()).
                await asyncio.shield(self._connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                cause = connection_failure_cause(exc)
                logger.warning("neonize connection of device %s ended: %s", self.device_id, reason)
            self._connected = False
            if self._stopping or self._final:
                return
            # A connection that lived a while starts the backoff over.
            self._attempt = 1 if time.monotonic() - began > 60 else self._attempt + 1
            await self._emit_event(p.DisconnectedEvent(reason=reason, will_reconnect=True, cause=cause))
            self._in_backoff = True
            try:
                await asyncio.sleep(self.backend.backoff(self._attempt))
            finally:
                self._in_backoff = False

    def _proxy_settings(self):
        """The number's proxy for neonize's connect(), None for a direct connection.

        Given to connect() rather than set with `set_proxy_address`: in neonize 0.5.2 that one configures
        "an already-connected client" (the Go client exists only once connect() has made it), and every
        connection here gets a new neonize client. A changed proxy reaches whatsmeow by a reconnect."""
        if not self.proxy_url:
            return None
        from neonize._binder import ProxySettings

        return ProxySettings(proxy_address=self.proxy_url)

    def _subscribe(self, neo) -> None:
        ev = neonize_lib().ev
        for event_type in (
            ev.ConnectedEv,
            ev.DisconnectedEv,
            ev.LoggedOutEv,
            ev.PairStatusEv,
            ev.ConnectFailureEv,
            ev.StreamReplacedEv,
            ev.StreamErrorEv,
            ev.TemporaryBanEv,
            ev.ClientOutdatedEv,
            ev.MessageEv,
            ev.ReceiptEv,
            ev.PresenceEv,
            ev.ChatPresenceEv,
            ev.GroupInfoEv,
            ev.JoinedGroupEv,
            ev.HistorySyncEv,
            ev.CallOfferEv,
            ev.CallOfferNoticeEv,
            *label_events(),  # none in neonize 0.5.2 (see events.py)
        ):
            neo.event(event_type)(self.on_event)
        neo.qr(self.on_qr)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _emit_event(self, event: p.Event) -> None:
        event.device_id = self.device_id
        try:
            await self._emit(event)
        except Exception:
            logger.exception("handling %s of device %s failed", type(event).__name__, self.device_id)

    # ------------------------------------------------------------------ events in

    async def on_qr(self, neo, data: bytes) -> None:
        """neonize's QR callback: one call per code whatsmeow rotates in."""
        if neo is not self.neo:
            return  # a stopped linking session's Go loop keeps rotating codes until they run out: not ours to show
        if self._qr_ready is not None:
            self._qr_ready.set()  # whatsmeow's QR emitter runs (what a stop during linking waits for)
        if self._stopping:
            return
        async with self._event_order:
            code = data.decode() if isinstance(data, bytes | bytearray) else str(data)
            expires = FIRST_QR_SECONDS if self._qr_count == 0 else NEXT_QR_SECONDS
            self._qr_count += 1
            self._arm_watchdog(expires + QR_GRACE_SECONDS)
            await self._emit_event(p.QRCodeEvent(code=code, expires_in=expires))

    def _arm_watchdog(self, seconds: float) -> None:
        # whatsmeow stops issuing codes after the last one expires and leaves the socket idle; neonize does not
        # tell Python, so linking ends here when no new code, pairing or connection came in time.
        self._cancel_watchdog()
        self._qr_watchdog = asyncio.get_running_loop().call_later(
            seconds, lambda: self._spawn(self._linking_expired())
        )

    def _cancel_watchdog(self) -> None:
        if self._qr_watchdog is not None:
            self._qr_watchdog.cancel()
            self._qr_watchdog = None

    async def _linking_expired(self) -> None:
        self._qr_watchdog = None
        if self._connected:
            return
        self._final = True
        await self.stop()
        await self._emit_event(
            p.DisconnectedEvent(reason="QR code expired before it was scanned", will_reconnect=False)
        )
