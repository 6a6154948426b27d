"""The session worker: one per process, it holds the leased devices' clients; its lifecycle and clients.

Its other parts: `ownership` (heartbeat, claims, handovers), `sending` (the outbox), `commands` (channels and
the web tier's commands); the rows it keeps are in `leases`. See the package docstring for the design.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from channels.layers import get_channel_layer
from django.conf import settings

from messaging import events, gateway, runtime
from messaging.sessions.commands import ChannelsMixin
from messaging.sessions.leases import (
    abandon_linking,
    device_jid,
    device_proxy,
    mark_stopped,
    new_worker_id,
    register_worker,
    release_leases,
    unregister_worker,
)
from messaging.sessions.ownership import OwnershipMixin
from messaging.sessions.sending import OutboxMixin
from messaging.whatsapp import protocol

logger = logging.getLogger("messaging.sessions")  # one name for the whole worker, as before the split

# Waits between failed starts of a client (seconds), the last one repeating.
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_TIMEOUT = 10.0


class SessionWorker(OwnershipMixin, OutboxMixin, ChannelsMixin):
    """Holds the clients of the devices it leases; see the package docstring."""

    def __init__(
        self,
        *,
        backend: protocol.Backend | None = None,
        worker_id: str | None = None,
        lease_seconds=None,
        max_devices: int | None = None,
    ):
        if backend is None:
            from messaging.whatsapp import get_backend

            backend = get_backend()
        self.backend = backend
        self.worker_id = worker_id or new_worker_id()
        self.lease_seconds = float(lease_seconds if lease_seconds is not None else settings.WA_LEASE_SECONDS)
        # At most this many devices (0: no limit), so that several workers share the devices between them.
        self.max_devices = int(
            max_devices if max_devices is not None else getattr(settings, "WA_MAX_DEVICES_PER_WORKER", 0)
        )
        self.channel_name: str = ""
        self.clients: dict[int, protocol.WhatsAppClient] = {}
        self._runners: dict[int, asyncio.Task] = {}  # per device: starts the client (with backoff)
        self._tasks: set[asyncio.Task] = set()
        self._emitting: set[asyncio.Task] = set()  # tasks inside a client's emit right now
        self._poked_up_to = 0
        self._loops: list[asyncio.Task] = []
        self._draining: set[int] = set()
        self._drain_again: set[int] = set()
        # Devices whose nudge from another thread is scheduled on the loop and has not run yet (see
        # `nudge_threadsafe`), and the lock that makes its look-and-add one step.
        self._nudges_pending: set[int] = set()
        self._nudges_lock = threading.Lock()
        self._device_locks: dict[int, asyncio.Lock] = {}
        self._heartbeat_lock = asyncio.Lock()
        self._stopped = asyncio.Event()
        self.ready = asyncio.Event()  # set once started: registered, listening, first heartbeat done
        self._started = False
        self._stopping = False
        self._stop_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle

    @property
    def interval(self) -> float:
        return max(self.lease_seconds / 3.0, 0.05)

    @property
    def held(self) -> set[int]:
        return set(self.clients)

    async def start(self) -> None:
        """Register, take the wanted devices and start listening. Returns once the first heartbeat ran."""
        if self._started:
            return
        self._started = True
        layer = get_channel_layer()
        self.channel_name = await layer.new_channel()
        await runtime.db(register_worker, worker_id=self.worker_id, channel_name=self.channel_name)
        self._loops = [
            asyncio.create_task(self._listen(self.channel_name), name=f"wa-worker-{self.worker_id}"),
            asyncio.create_task(self._listen(gateway.WORKERS_CHANNEL), name="wa-workers"),
            asyncio.create_task(self._heartbeat_loop(), name=f"wa-heartbeat-{self.worker_id}"),
        ]
        self._loop = asyncio.get_running_loop()
        runtime.add_worker(self.channel_name, self)
        await self.heartbeat()
        self.ready.set()
        logger.info(
            "session worker %s started on %s, holding %d device(s)",
            self.worker_id,
            self.channel_name,
            len(self.clients),
        )

    async def run(self) -> None:
        """Start, then run until `stop()` (or cancellation), then stop cleanly."""
        try:
            await self.start()
            await self._stopped.wait()
        finally:
            await asyncio.shield(self.stop())

    async def stop(self) -> None:
        """Stop every client, release the leases (other workers claim them at once) and unregister."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        runtime.remove_worker(self.channel_name, self)
        try:
            for task in self._loops:
                task.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
            device_ids = list(self.clients) + [d for d in self._runners if d not in self.clients]
            await asyncio.gather(*(self._stop_client(d) for d in device_ids), return_exceptions=True)
            current = asyncio.current_task()
            rest = [task for task in self._tasks if task is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            if self.channel_name:
                with contextlib.suppress(Exception):
                    await events.deliver(await runtime.db(mark_stopped, device_ids, "session worker stopped"))
                with contextlib.suppress(Exception):
                    await runtime.db(release_leases, worker_id=self.worker_id)
                with contextlib.suppress(Exception):
                    await runtime.db(unregister_worker, worker_id=self.worker_id)
                # Let another worker take them now rather than on its next heartbeat.
                layer = get_channel_layer()
                for device_id in device_ids:
                    with contextlib.suppress(Exception):
                        await layer.send(
                            gateway.WORKERS_CHANNEL, {"type": gateway.CLAIM, "device_id": device_id}
                        )
            with contextlib.suppress(Exception):
                await self.backend.close()
            logger.info("session worker %s stopped", self.worker_id)
        finally:
            self._stopped.set()

    def nudge_threadsafe(self, device_id: int) -> bool:
        """From any thread of this process: drain the device's outbox now, as a `gateway.OUTBOX` message on the
        worker's channel does, without the channel layer. False when the worker is stopping or its loop is gone
        (the message stays queued: a heartbeat, a claim or the next nudge sends it)."""
        if self._stopping or self._loop is None:
            return False
        # One nudge scheduled at a time per device: one that has not run yet drains what was committed before
        # it runs, this message included (it was stored before this call, and the nudge is taken out of the
        # pending set before its drain claims). Each call_soon_threadsafe writes to the loop's wake-up socket:
        # a system call, and a let-go and take-back of the GIL, on every send of a busy device.
        with self._nudges_lock:
            if device_id in self._nudges_pending:
                return not self._loop.is_closed()  # (closed: that nudge will never run)
            self._nudges_pending.add(device_id)
        try:
            self._loop.call_soon_threadsafe(self._nudged, device_id)
        except RuntimeError:  # the loop is closed
            with self._nudges_lock:
                self._nudges_pending.discard(device_id)
            return False
        return True

    def _nudged(self, device_id: int) -> None:
        with self._nudges_lock:
            self._nudges_pending.discard(device_id)
        if not self._stopping:
            self._spawn(self.dispatch({"type": gateway.OUTBOX, "device_id": device_id}))

    def request_stop(self) -> None:
        """Ask `run()` to stop (signal handlers)."""
        if not self._stopped.is_set() and self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self.stop())

    async def settle(self) -> None:
        """Wait for the work already started (events being handled, nudges, drains, releases) to finish.

        For tests and benchmarks: after `wa.wait_event(...)` saw an event, what the worker does because of it
        (release a logged-out device, drain the outbox of a connected one) is done once this returns.
        """
        from messaging.services import history_import

        current = asyncio.current_task()
        while pending := [
            t
            for t in (*self._tasks, *self._emitting, *history_import.importing())
            if t is not current and not t.done()
        ]:
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- clients

    def _lock(self, device_id: int) -> asyncio.Lock:
        return self._device_locks.setdefault(device_id, asyncio.Lock())

    async def _start_client(self, device_id: int) -> None:
        jid = await runtime.db(device_jid, device_id)
        holder: dict[str, protocol.WhatsAppClient] = {}

        async def download(**kwargs):
            return await holder["client"].download_media(**kwargs)

        async def emit(event: protocol.Event) -> None:
            event.device_id = device_id
            task = asyncio.current_task()
            self._emitting.add(task)  # settle() waits for it and what it starts
            try:
                if isinstance(event, protocol.CallOfferEvent) and holder.get("client") is not None:
                    await self._answer_call(device_id, holder["client"], event)
                try:
                    await events.handle(event, download=download)
                except Exception:
                    logger.exception("device %s: handling %s failed", device_id, type(event).__name__)
                if holder.get("client") is not self.clients.get(device_id):
                    return  # an old client of a restarted device
                if isinstance(event, protocol.ConnectedEvent):
                    self._spawn(self.drain(device_id))
                elif isinstance(event, protocol.LoggedOutEvent):
                    self._spawn(self.release(device_id))
                elif isinstance(event, protocol.DisconnectedEvent) and not event.will_reconnect:
                    self._spawn(self._give_up_linking(device_id))
            finally:
                self._emitting.discard(task)

        client = self.backend.create_client(device_id=device_id, jid=jid, emit=emit)
        if proxy := await runtime.db(device_proxy, device_id):
            client.use_proxy(proxy)
        holder["client"] = client
        self.clients[device_id] = client
        self._runners[device_id] = asyncio.create_task(
            self._run_client(device_id, client), name=f"wa-device-{device_id}"
        )

    async def _answer_call(self, device_id: int, client, event: protocol.CallOfferEvent) -> None:
        """The number's auto-reject setting, before the call.offer is handled (it tells what was done)."""
        from messaging.services import calls

        try:
            if await calls.answer_call(client, event):
                self._spawn(self.drain(device_id))  # the reply to the caller goes out now
        except Exception:
            logger.exception("device %s: answering call %s failed", device_id, event.call_id)

    async def _give_up_linking(self, device_id: int) -> None:
        """A link attempt that ended (QR codes expired unscanned): stop holding a device nobody linked.

        "Link" in the dashboard asks again (start_linking makes it wanted and any worker claims it).
        """
        if await runtime.db(abandon_linking, device_id):
            await self.release(device_id)

    async def _run_client(self, device_id: int, client: protocol.WhatsAppClient) -> None:
        """Start the client, retrying with backoff while it fails (the backend reconnects once it runs)."""
        attempt = 0
        while self.clients.get(device_id) is client and not self._stopping:
            try:
                await client.start()
                return
            except asyncio.CancelledError:
                raise
            except protocol.NotLoggedIn as exc:
                logger.warning("device %s is not logged in any more: %s", device_id, exc)
                await events.handle(protocol.LoggedOutEvent(device_id=device_id, reason=str(exc)))
                self._spawn(self.release(device_id))
                return
            except Exception as exc:
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                logger.warning("device %s did not start (%s); retrying in %gs", device_id, exc, delay)
                with contextlib.suppress(Exception):
                    await events.set_status(device_id, "disconnected", f"could not connect: {exc}"[:200])
                try:
                    await asyncio.wait_for(self._stopped.wait(), delay)
                    return
                except TimeoutError:
                    pass

    async def _stop_client(self, device_id: int) -> None:
        client = self.clients.pop(device_id, None)
        runner = self._runners.pop(device_id, None)
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if client is not None:
            try:
                await asyncio.wait_for(client.stop(), STOP_TIMEOUT)
            except Exception as exc:
                logger.warning("device %s did not stop cleanly: %s", device_id, exc)
