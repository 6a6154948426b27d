"""The web tier's door to WhatsApp: run a protocol operation on the session worker that holds the device.

The web tier never holds a connection. `call`/`acall` find the worker through the device's lease (which names
that worker's channel), send it a command over the channel layer and await the reply on a channel of their
own, with WA_COMMAND_TIMEOUT, so the caller gets a result or a clear error, never a hang:

- NotConnected: no live lease (no worker holds the device) or the device's client is not connected;
- UpstreamTimeout: the worker did not answer in time;
- Unavailable: the channel layer (Redis) cannot be reached, so no command can go out (retry after a while);
- any other protocol.WhatsAppError as the backend raised it, rebuilt from its stable code.

`call` is for sync code (views, services) in any thread but the runtime loop's own; do not call it inside a
transaction that the worker may need (its events are written while the operation runs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_noop as _noop

from messaging import runtime
from messaging.whatsapp import protocol, wire

logger = logging.getLogger(__name__)

try:  # the production channel layer's errors (channels_redis on redis-py); the in-memory layer raises none
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is installed with channels_redis
    RedisError = OSError

# What the channel layer raises when Redis is gone or restarting. redis.exceptions.TimeoutError is one of them:
# it is not the built-in TimeoutError that asyncio.wait_for raises.
CHANNEL_LAYER_ERRORS = (RedisError, OSError)
# Seconds a client is told to wait (Retry-After) when the channel layer is down.
RETRY_AFTER_SECONDS = 5


# After the channel layer failed, what only pushes or nudges skips it for this long instead of each waiting for
# its own connection error: a worker sending its backlog while Redis is down would otherwise crawl (each sent
# message has three live pushes to skip).
SKIP_LAYER_AFTER_FAILURE = 1.0
_layer_failed_at: float | None = None


def layer_recently_failed() -> bool:
    failed_at = _layer_failed_at
    return failed_at is not None and time.monotonic() - failed_at < SKIP_LAYER_AFTER_FAILURE


def note_layer_failure() -> None:
    global _layer_failed_at
    _layer_failed_at = time.monotonic()


def note_layer_working() -> None:
    """A call of the channel layer went through (it is back): stop skipping it."""
    global _layer_failed_at
    _layer_failed_at = None


class Unavailable(protocol.WhatsAppError):
    """The channel layer cannot be reached: nothing was sent to a session worker. Safe to retry later."""

    code = protocol.ErrorCode.UNAVAILABLE
    retry_after = RETRY_AFTER_SECONDS

    def __init__(self, message: str = "", **kwargs):
        super().__init__(
            message
            or "The session workers cannot be reached right now (the message bus is down); try again shortly.",
            **kwargs,
        )


# Message types on a worker's channel.
COMMAND = "gateway.command"
REPLY = "gateway.reply"
OUTBOX = "worker.outbox"  # {"device_id"}: queued messages are waiting
START = "worker.start"  # {"device_id"}: (re)start the device's client
RELEASE = "worker.release"  # {"device_id"}: stop driving the device (logged out, removed)
CLAIM = "worker.claim"  # {"device_id"}: on WORKERS_CHANNEL, any one worker takes the device
# A shared work queue: each message is received by exactly one worker (how linking finds a worker).
WORKERS_CHANNEL = "wa-workers"
# Operations that make sense before the device is connected (linking, or asking it to come back).
UNCONNECTED_OPS = frozenset({"pair_phone", "logout", "reconnect"})


def _device_id(device) -> int:
    return device if isinstance(device, int) else device.pk


def command_timeout() -> float:
    return float(settings.WA_COMMAND_TIMEOUT)


def worker_channel(device) -> str | None:
    """The channel of the worker holding a live lease on `device`, or None. Sync (one query)."""
    from messaging.models import DeviceLease

    row = (
        DeviceLease.objects.filter(device_id=_device_id(device), expires_at__gt=timezone.now())
        .values_list("channel_name", flat=True)
        .first()
    )
    return row or None


def _route(device) -> str:
    channel = worker_channel(device)
    if not channel:
        raise protocol.NotConnected(
            _noop(
                "The device is not connected: no session worker holds it right now. Link it or reconnect it, then try again."
            )
        )
    return channel


def _check_op(op: str) -> None:
    if op not in protocol.OPERATIONS:
        raise protocol.InvalidRequest(
            _noop("%(op)s is not a WhatsApp operation the gateway runs.") % {"op": repr(op)}
        )


async def acall(device, op: str, **kwargs):
    """Run `op` on the worker holding `device` and return its typed result (see the module docstring)."""
    _check_op(op)
    channel = await runtime.db(_route, device)
    return await send_command(channel, _device_id(device), op, kwargs)


def call(device, op: str, **kwargs):
    """`acall` for sync code. Raises RuntimeError on the runtime loop's own thread (it would deadlock)."""
    _check_op(op)
    if runtime.on_runtime_loop():
        raise RuntimeError("gateway.call blocks: on the runtime loop use `await gateway.acall(...)`.")
    # The lease is read here, in the caller's thread, so the command never waits on the worker's DB thread.
    channel = _route(device)
    device_id = _device_id(device)
    release_db_connection()
    return run_sync(lambda: send_command(channel, device_id, op, kwargs), timeout=command_timeout() + 5)


def release_db_connection() -> None:
    """With the connection pool (DB_POOL_SIZE), give this thread's connection back to it before waiting on a
    session worker: a request waiting up to WA_COMMAND_TIMEOUT must not hold one of its few connections (the
    next query takes one again). Not inside a transaction, and not without the pool (nothing to give back to)."""
    from django.db import connection

    if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
        connection.close()


async def send_command(channel: str, device_id: int, op: str, kwargs: dict, *, timeout: float | None = None):
    layer = get_channel_layer()
    timeout = command_timeout() if timeout is None else timeout
    reply_to = await layer.new_channel()
    message = {
        "type": COMMAND,
        "device_id": device_id,
        "op": op,
        "args": wire.encode(kwargs),
        "reply_to": reply_to,
    }
    try:
        await layer.send(channel, message)
    except ChannelFull:
        raise protocol.UpstreamTimeout(
            _noop("The session worker holding this device is overloaded; try again shortly.")
        ) from None
    except CHANNEL_LAYER_ERRORS as exc:
        note_layer_failure()
        logger.warning("gateway: the channel layer is unavailable (%s: %s)", type(exc).__name__, exc)
        raise Unavailable() from None
    note_layer_working()
    reply = await _receive_reply(layer, reply_to, timeout)
    if reply is None:
        raise protocol.UpstreamTimeout(
            _noop("WhatsApp did not answer in time (%(timeout)s s) for %(op)s; try again shortly.")
            % {"timeout": format(timeout, "g"), "op": op}
        )
    if error := reply.get("error"):
        raise protocol.error_from_code(
            error.get("code", ""), error.get("message", "WhatsApp refused the operation.")
        )
    return wire.decode(reply.get("result"))


async def _receive_reply(layer, reply_to: str, timeout: float) -> dict | None:
    """The reply on `reply_to`, or None after `timeout` (the caller's, not the Redis client's read timeout).

    The command is out by now: should the channel layer fail meanwhile, keep waiting for the reply (it is
    kept in Redis) until the deadline, so the answer is a 504 on time, never a 500."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (remaining := deadline - loop.time()) > 0:
        try:
            return await asyncio.wait_for(layer.receive(reply_to), remaining)
        except TimeoutError:
            return None
        except CHANNEL_LAYER_ERRORS as exc:
            logger.warning("gateway: waiting for a reply on %s: %s: %s", reply_to, type(exc).__name__, exc)
            await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
    return None


def run_sync(make_coro: Callable[[], Awaitable], *, timeout: float | None = None):
    """Run a coroutine from sync code: on the runtime loop when this process has one, else async_to_sync.

    The in-memory channel layer lives on one loop, so in the embedded default every channel operation
    must run on the runtime loop; a production web process has none and uses its server's loop.
    """
    loop = runtime.get_loop()
    if loop is not None:
        if runtime.on_runtime_loop():
            raise RuntimeError(
                "Blocking on the runtime loop from its own thread would deadlock; await instead."
            )
        future = asyncio.run_coroutine_threadsafe(make_coro(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise protocol.UpstreamTimeout(
                _noop("The session worker did not answer in time; try again shortly.")
            ) from None

    async def runner():
        return await make_coro()

    return async_to_sync(runner)()


# ------------------------------------------------------------------------------------- nudges and waits


async def notify_worker(device_id: int, message: dict, *, channel: str | None = None) -> bool:
    """Send `message` to the worker holding the device; with no live lease, ask any worker to claim it.

    `channel`: the holding worker's channel when the caller has just read the lease (saves reading it again).
    Returns whether a holding worker was found. Losing a nudge is harmless: workers also poll on heartbeat.
    Never raises for the channel layer: with Redis down the nudge is lost, and the heartbeat finds the work.
    """
    if layer_recently_failed():
        return False
    layer = get_channel_layer()
    if not channel:
        channel = await runtime.db(worker_channel, device_id)
    try:
        if channel:
            await layer.send(channel, {**message, "device_id": device_id})
            return True
        await layer.send(WORKERS_CHANNEL, {"type": CLAIM, "device_id": device_id})
    except ChannelFull:
        logger.warning("channel full while nudging a session worker about device %s", device_id)
    except CHANNEL_LAYER_ERRORS as exc:
        note_layer_failure()
        logger.warning(
            "could not nudge a session worker about device %s (%s: %s); its heartbeat will find the work",
            device_id,
            type(exc).__name__,
            exc,
        )
    return False


async def await_device_event(
    device_id: int,
    *,
    match: Callable[[dict], bool],
    timeout: float,
    kick: Callable[[], Awaitable] | None = None,
    ready: Callable[[], object] | None = None,
    group: str | None = None,
):
    """Wait for a live event of the device for which `match(message)` holds; returns it, or None on timeout.

    Subscribes first, then runs `kick` (e.g. a nudge to the worker), then the sync check `ready` (the state
    may already be there): so nothing that happens in between is missed, and nothing is polled.
    A truthy `ready()` result is returned as is. `group`: a narrower group that the event is also published
    to (e.g. `events.outbox_group`), so the waiter is not woken by every other event of the device.
    """
    group = group or f"device-{device_id}"
    channel = await subscribe(group)

    async def check():
        if kick is not None:
            await kick()
        if ready is not None:
            return await runtime.db(ready)
        return None

    return await wait_subscribed(channel, group, match=match, timeout=timeout, first=check)


async def subscribe(group: str) -> str:
    """A new channel in `group`, to wait on with `wait_subscribed` (which leaves the group again)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    note_layer_working()
    return channel


async def unsubscribe(group: str, channel: str) -> None:
    """Leave `group`. Best effort: should the channel layer fail, the membership expires by itself."""
    try:
        await get_channel_layer().group_discard(group, channel)
    except CHANNEL_LAYER_ERRORS as exc:
        logger.warning("could not leave %s (%s: %s)", group, type(exc).__name__, exc)


async def wait_subscribed(
    channel: str,
    group: str,
    *,
    match: Callable[[dict], bool],
    timeout: float,
    first: Callable[[], Awaitable] | None = None,
):
    """On `channel` (of `subscribe(group)`), run `first` (a truthy result is returned as is), then wait for a
    live event for which `match(message)` holds; returns it, or None after `timeout`. Leaves the group."""
    layer = get_channel_layer()
    try:
        if first is not None and (state := await first()):
            return state
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            try:
                message = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                return None
            if message.get("type") == "wa.event" and match(message):
                return message
    finally:
        await unsubscribe(group, channel)
