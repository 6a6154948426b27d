"""The session worker's channels: it listens on its own and the shared one, dispatches, and runs commands.

A part of `SessionWorker` (see `messaging.sessions.worker`). The web tier sends `gateway.COMMAND` messages (an
operation of `protocol.OPERATIONS` for a device this worker holds) and awaits the reply; nudges ask for a drain,
a claim, a restart or a release.
"""

from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer
from django.utils.translation import gettext_noop as _noop

from messaging import gateway
from messaging.whatsapp import protocol, wire

logger = logging.getLogger("messaging.sessions")  # one name for the whole worker, as before the split

POKE = "worker.poke"  # {"device_id"}: the sandbox network changed; the client reads it and emits


class ChannelsMixin:
    """Receives on the worker's channels and answers the web tier's commands."""

    async def _listen(self, channel: str) -> None:
        layer = get_channel_layer()
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, gateway.CHANNEL_LAYER_ERRORS):  # Redis is down or restarting
                    logger.warning(
                        "session worker %s: the channel layer is unavailable (%s: %s); the heartbeat still "
                        "sends queued messages",
                        self.worker_id,
                        type(exc).__name__,
                        exc,
                    )
                else:
                    logger.exception("session worker %s: receiving on %s failed", self.worker_id, channel)
                try:
                    await asyncio.wait_for(self._stopped.wait(), 1.0)
                    return
                except TimeoutError:
                    continue
            gateway.note_layer_working()
            self._spawn(self.dispatch(message))

    async def dispatch(self, message: dict) -> None:
        kind = message.get("type")
        try:
            device_id = int(message.get("device_id") or 0)
        except (TypeError, ValueError):
            device_id = 0
        try:
            if kind == gateway.COMMAND:
                await self.run_command(message)
            elif not device_id:
                logger.warning("session worker %s: %s without a device", self.worker_id, kind)
            elif kind == gateway.OUTBOX:
                if device_id in self.clients:
                    await self.drain(device_id)
                else:
                    await self.claim(device_id)
            elif kind == gateway.START:
                await self.restart(device_id)
            elif kind == gateway.RELEASE:
                await self.release(device_id)
            elif kind == gateway.CLAIM:
                await self.claim(device_id)
            elif kind == POKE:
                client = self.clients.get(device_id)
                poke = getattr(client, "poke", None)
                if poke is not None:
                    await poke()
            else:
                logger.warning("session worker %s: unknown message type %r", self.worker_id, kind)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "session worker %s: handling %s for device %s failed", self.worker_id, kind, device_id
            )

    async def run_command(self, message: dict) -> None:
        reply_to = message.get("reply_to")
        try:
            result = await self._command(message)
            reply = {"type": gateway.REPLY, "result": wire.encode(result)}
        except protocol.WhatsAppError as exc:
            reply = {"type": gateway.REPLY, "error": {"code": str(exc.code), "message": exc.message}}
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("device %s: %s failed", message.get("device_id"), message.get("op"))
            reply = {
                "type": gateway.REPLY,
                "error": {"code": str(protocol.ErrorCode.UPSTREAM), "message": f"WhatsApp failed: {exc}"},
            }
        if reply_to:
            try:
                await get_channel_layer().send(reply_to, reply)
            except gateway.CHANNEL_LAYER_ERRORS as exc:  # the caller gets a 504 from its own timeout
                logger.warning("could not answer on %s (%s: %s)", reply_to, type(exc).__name__, exc)
            except Exception:
                logger.exception("could not answer on %s", reply_to)

    async def _command(self, message: dict):
        op = message.get("op", "")
        device_id = int(message.get("device_id") or 0)
        if op not in protocol.OPERATIONS:
            raise protocol.InvalidRequest(
                _noop("%(op)s is not a WhatsApp operation the gateway runs.") % {"op": repr(op)}
            )
        client = self.clients.get(device_id)
        if client is None:
            raise protocol.NotConnected(
                _noop("The device is not connected: its session worker does not hold it right now.")
            )
        if op not in gateway.UNCONNECTED_OPS and not client.is_connected():
            raise protocol.NotConnected(
                _noop("The device is not connected to WhatsApp right now; try again once it is.")
            )
        kwargs = wire.decode(message.get("args") or {})
        try:
            result = await getattr(client, op)(**kwargs)
        except TypeError as exc:
            raise protocol.InvalidRequest(
                _noop("bad arguments for %(op)s: %(reason)s") % {"op": op, "reason": exc}
            ) from None
        if op == "logout":
            self._spawn(self.release(device_id))
        return result
