"""Session workers: the processes that hold leased devices' WhatsApp clients and run the web tier's commands.

One `SessionWorker` per process, on the runtime loop (`messaging.runtime`). It has a channel of its own (the
web tier finds it through the device's lease) and also listens on the shared `gateway.WORKERS_CHANNEL`, where
any one worker answers "claim this device". Ownership is a `DeviceLease` row per device: taken only when
there is none or it has expired (a conditional UPDATE, or an INSERT that the unique device column lets only
one worker win), renewed by the heartbeat every WA_LEASE_SECONDS/3, released on a clean stop. A worker that
dies stops renewing, and another takes its devices on its next heartbeat once the lease has run out.

Workers share the devices: each holds at most its fair share (wanted devices ÷ live workers, rounded up, capped
by WA_MAX_DEVICES_PER_WORKER). One that holds more than that, because another worker joined, hands the extra
devices over on its heartbeat: it stops their clients, frees their leases and asks on `WORKERS_CHANNEL` for a
worker to claim them (a worker at its share refuses, so the newcomer takes them).

Every database call runs in the runtime's DB threads (`runtime.db`), never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import timedelta

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop as _noop

from messaging import events, gateway, runtime
from messaging.whatsapp import protocol, wire

logger = logging.getLogger(__name__)

POKE = "worker.poke"  # {"device_id"}: the sandbox network changed; the client reads it and emits
# Waits between failed starts of a client (seconds), the last one repeating.
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_TIMEOUT = 10.0
POKES_PER_HEARTBEAT = 25
SEND_TIMEOUT_EXTRA = 5.0  # a send may take this much longer than a command before it counts as failed
# Errors that will not go away by trying again: the message fails at once.
PERMANENT_SEND_ERRORS = protocol.REFUSALS


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


# ------------------------------------------------------------------------------------------ leases (sync)


def _lease_until(lease_seconds: float):
    return timezone.now() + timedelta(seconds=lease_seconds)


def take_lease(device_id: int, *, worker_id: str, channel_name: str, lease_seconds: float) -> bool:
    """Take the device's lease if nobody holds a live one (or we do). Atomic across processes.

    The UPDATE only matches an expired row (or our own), so of two workers racing for it on PostgreSQL the
    second re-checks the condition after the first commits and matches nothing; with no row at all the
    INSERT of one of them fails on the unique device column.
    """
    from django.db.models import Q

    from messaging.models import Device, DeviceLease

    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds)
    if not Device.objects.filter(pk=device_id, wanted=True).exists():
        return False
    updated = DeviceLease.objects.filter(
        Q(expires_at__lte=now) | Q(worker_id=worker_id), device_id=device_id
    ).update(worker_id=worker_id, channel_name=channel_name, acquired_at=now, expires_at=until)
    if updated:
        return True
    if DeviceLease.objects.filter(device_id=device_id).exists():
        return False  # someone holds a live lease
    try:
        with transaction.atomic():
            DeviceLease.objects.create(
                device_id=device_id,
                worker_id=worker_id,
                channel_name=channel_name,
                acquired_at=now,
                expires_at=until,
            )
    except IntegrityError:
        return False  # another worker inserted it first
    return True


def renew_leases(*, worker_id: str, channel_name: str, lease_seconds: float) -> set[int]:
    """Extend every lease this worker still holds; returns their device IDs (a taken-over one is gone)."""
    from messaging.models import DeviceLease

    DeviceLease.objects.filter(worker_id=worker_id).update(
        expires_at=_lease_until(lease_seconds), channel_name=channel_name
    )
    return set(DeviceLease.objects.filter(worker_id=worker_id).values_list("device_id", flat=True))


def claimable_devices(*, worker_id: str) -> list[int]:
    """Wanted devices with no live lease (never held, released, or their worker died)."""
    from django.db.models import Q

    from messaging.models import Device

    now = timezone.now()
    return list(
        Device.objects.filter(wanted=True)
        .filter(Q(lease__isnull=True) | Q(lease__expires_at__lte=now) | Q(lease__worker_id=worker_id))
        .order_by("id")
        .values_list("id", flat=True)
    )


def fair_share(*, worker_id: str, lease_seconds: float, max_devices: int) -> int:
    """How many devices this worker should hold: its share of the wanted devices among the live workers
    (rounded up, so that together they hold them all), capped by `max_devices` (0: no cap).

    A worker counts as live while its heartbeat is younger than a lease: a dead one stops counting about
    when its leases run out, so the others' shares grow in time to take its devices over."""
    from messaging.models import Device
    from messaging.models.device import SessionWorker

    since = timezone.now() - timedelta(seconds=lease_seconds)
    others = SessionWorker.objects.filter(heartbeat_at__gt=since).exclude(worker_id=worker_id).count()
    wanted = Device.objects.filter(wanted=True).count()
    share = -(-wanted // (others + 1))
    return min(share, max_devices) if max_devices else share


def handover_order(device_ids) -> list[int]:
    """Of the devices we hold, the ones to give another worker first: linked ones (a QR code being scanned
    stays where it is), newest first."""
    from messaging.models import Device

    return list(
        Device.objects.filter(pk__in=list(device_ids))
        .exclude(jid="")
        .order_by("-id")
        .values_list("id", flat=True)
    )


def release_leases(*, worker_id: str, device_ids=None) -> int:
    from messaging.models import DeviceLease

    rows = DeviceLease.objects.filter(worker_id=worker_id)
    if device_ids is not None:
        rows = rows.filter(device_id__in=list(device_ids))
    return rows.delete()[0]


def unwanted_devices(device_ids) -> set[int]:
    """Of `device_ids`, those no longer wanted (logged out, removed) that the worker should let go."""
    from messaging.models import Device

    ids = set(device_ids)
    wanted = set(Device.objects.filter(pk__in=ids, wanted=True).values_list("id", flat=True))
    return ids - wanted


def device_jid(device_id: int) -> str | None:
    from messaging.models import Device

    return Device.objects.filter(pk=device_id).values_list("jid", flat=True).first() or None


def abandon_linking(device_id: int) -> bool:
    """Mark a never-linked device (no JID) as not wanted any more; returns whether it was one."""
    from messaging.models import Device

    return bool(Device.objects.filter(pk=device_id, jid="", wanted=True).update(wanted=False))


def register_worker(*, worker_id: str, channel_name: str) -> None:
    from messaging.models.device import SessionWorker

    now = timezone.now()
    SessionWorker.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "hostname": socket.gethostname()[:200],
            "pid": os.getpid(),
            "channel_name": channel_name,
            "heartbeat_at": now,
        },
        create_defaults={
            "hostname": socket.gethostname()[:200],
            "pid": os.getpid(),
            "channel_name": channel_name,
            "started_at": now,
            "heartbeat_at": now,
        },
    )


def beat_worker(*, worker_id: str, channel_name: str, lease_seconds: float) -> None:
    from messaging.models.device import SessionWorker

    now = timezone.now()
    if not SessionWorker.objects.filter(worker_id=worker_id).update(heartbeat_at=now):
        register_worker(worker_id=worker_id, channel_name=channel_name)
    # Forget workers that stopped beating long ago (killed, machine gone): the dashboard lists live ones.
    SessionWorker.objects.filter(
        heartbeat_at__lt=now - timedelta(seconds=max(60.0, lease_seconds * 10))
    ).delete()


def unregister_worker(*, worker_id: str) -> None:
    from messaging.models.device import SessionWorker

    SessionWorker.objects.filter(worker_id=worker_id).delete()


def mark_stopped(device_ids, reason: str) -> list[events.Outcome]:
    """Connected devices this worker lets go of are no longer connected (until another worker has them)."""
    from messaging.models import DeviceStatus

    outcomes = []
    for device_id in device_ids:
        outcomes += events.record_status(
            device_id, DeviceStatus.DISCONNECTED, reason, only_if=DeviceStatus.CONNECTED
        )
    return outcomes


# ------------------------------------------------------------------------------------------ the worker


class SessionWorker:
    """Holds the clients of the devices it leases; see the module docstring."""

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
        try:
            self._loop.call_soon_threadsafe(self._nudged, device_id)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def _nudged(self, device_id: int) -> None:
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
        current = asyncio.current_task()
        while pending := [t for t in (*self._tasks, *self._emitting) if t is not current and not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- heartbeat: renew, let go, take over, drain

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopped.wait(), self.interval)
                return
            except TimeoutError:
                pass
            try:
                await self.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("session worker %s: heartbeat failed", self.worker_id)

    async def heartbeat(self) -> None:
        """Renew our leases, stop clients we lost or that are no longer wanted, take free devices, drain."""
        async with self._heartbeat_lock:
            if self._stopping:
                return
            await runtime.db(
                beat_worker,
                worker_id=self.worker_id,
                channel_name=self.channel_name,
                lease_seconds=self.lease_seconds,
            )
            still_ours = await runtime.db(
                renew_leases,
                worker_id=self.worker_id,
                channel_name=self.channel_name,
                lease_seconds=self.lease_seconds,
            )
            for device_id in set(self.clients) - still_ours:
                logger.warning("session worker %s lost the lease of device %s", self.worker_id, device_id)
                await self._stop_client(device_id)
            unwanted = await runtime.db(unwanted_devices, set(self.clients))
            for device_id in unwanted:
                await self.release(device_id)
            share = await self._fair_share()
            if len(self.clients) > share:
                await self._hand_over(len(self.clients) - share)
            for device_id in await runtime.db(claimable_devices, worker_id=self.worker_id):
                if len(self.clients) >= share:
                    break
                if device_id not in self.clients:
                    await self.claim(device_id)
            pending = await runtime.db(_devices_with_pending, set(self.clients))
            for device_id in pending:
                self._spawn(self.drain(device_id))
            self._poke_some()

    def _poke_some(self) -> None:
        """Clients told about changes by a nudge (the sandbox's poke) also look by themselves, a few per
        heartbeat in turn, so a lost nudge (or one from a process on another channel layer) only delays them."""
        pokeable = sorted(d for d, c in self.clients.items() if getattr(c, "poke", None) is not None)
        if not pokeable:
            return
        after = [d for d in pokeable if d > self._poked_up_to]
        batch = (after + [d for d in pokeable if d <= self._poked_up_to])[:POKES_PER_HEARTBEAT]
        self._poked_up_to = batch[-1]
        for device_id in batch:
            self._spawn(self.clients[device_id].poke())

    async def claim(self, device_id: int) -> bool:
        """Take the device's lease if it is free and start its client. Returns whether we hold it now."""
        if self._stopping:
            return False
        async with self._lock(device_id):
            if device_id in self.clients:
                return True
            if len(self.clients) >= await self._fair_share():
                return False  # we hold our share: another worker takes it on its heartbeat
            taken = await runtime.db(
                take_lease,
                device_id,
                worker_id=self.worker_id,
                channel_name=self.channel_name,
                lease_seconds=self.lease_seconds,
            )
            if not taken:
                return False
            try:
                await self._start_client(device_id)
            except Exception:
                logger.exception(
                    "session worker %s could not make a client for device %s", self.worker_id, device_id
                )
                await runtime.db(release_leases, worker_id=self.worker_id, device_ids=[device_id])
                return False
            return True

    async def restart(self, device_id: int) -> None:
        """(Re)start the device's client: after linking was asked for again, or a reconnect."""
        if device_id not in self.clients:
            await self.claim(device_id)
            return
        async with self._lock(device_id):
            await self._stop_client(device_id)
            try:
                await self._start_client(device_id)
            except Exception:
                logger.exception(
                    "session worker %s could not make a client for device %s", self.worker_id, device_id
                )
                await runtime.db(release_leases, worker_id=self.worker_id, device_ids=[device_id])

    async def _fair_share(self) -> int:
        return await runtime.db(
            fair_share,
            worker_id=self.worker_id,
            lease_seconds=self.lease_seconds,
            max_devices=self.max_devices,
        )

    async def _hand_over(self, count: int) -> None:
        """Give `count` devices to other workers (one joined, or the cap shrank): stop their clients, free
        their leases and ask any worker to claim them. A device whose outbox is being drained stays until
        the next heartbeat, so that no send is cut off in the middle."""
        idle = [d for d in self.clients if d not in self._draining]
        moving = (await runtime.db(handover_order, idle))[:count]
        layer = get_channel_layer()
        for device_id in moving:
            logger.info("session worker %s hands device %s to another worker", self.worker_id, device_id)
            async with self._lock(device_id):
                await self._stop_client(device_id)
                # Said before the lease goes, so that it cannot overwrite the new holder's "connected".
                with contextlib.suppress(Exception):
                    await events.deliver(
                        await runtime.db(mark_stopped, [device_id], "moving to another session worker")
                    )
                await runtime.db(release_leases, worker_id=self.worker_id, device_ids=[device_id])
            with contextlib.suppress(Exception):  # a lost nudge only waits for the others' heartbeat
                await layer.send(gateway.WORKERS_CHANNEL, {"type": gateway.CLAIM, "device_id": device_id})

    async def release(self, device_id: int) -> None:
        """Stop driving the device and give up its lease (logged out, removed)."""
        async with self._lock(device_id):
            await self._stop_client(device_id)
            await runtime.db(release_leases, worker_id=self.worker_id, device_ids=[device_id])

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
        holder["client"] = client
        self.clients[device_id] = client
        self._runners[device_id] = asyncio.create_task(
            self._run_client(device_id, client), name=f"wa-device-{device_id}"
        )

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

    # -- the outbox

    async def drain(self, device_id: int) -> None:
        """Send the device's queued messages, oldest first, one at a time, each exactly once.

        Claimed in batches (what queued up meanwhile goes out together, see `outbox.claim_batch`); the sent
        ones of a batch are marked sent together, with the claim of the next batch."""
        from messaging.services import outbox

        if device_id in self._draining:
            self._drain_again.add(device_id)  # the running drain looks again before it stops
            return
        self._draining.add(device_id)
        batch: list = []  # claimed, not yet sent
        looked = False  # whether the claim of `batch` was the look for more (empty: nothing left)
        try:
            while True:
                if not looked:  # (a nudge that came after the look that was done keeps its mark)
                    self._drain_again.discard(device_id)
                client = self.clients.get(device_id)
                if client is None or not client.is_connected() or self._stopping:
                    return
                if not batch and not looked:
                    batch = await _despite_cancel(runtime.db(outbox.claim_batch, device_id), _release)
                looked = False
                if not batch:
                    if device_id in self._drain_again:
                        continue
                    return
                go_on, batch, looked = await self._send_batch(device_id, client, batch)
                if not go_on:
                    return
        finally:
            try:
                if batch:  # claimed but not sent (stopping, disconnected, cancelled): back to queued
                    await asyncio.shield(_release(batch))
            finally:
                # Only now may another drain start: one started before the release would claim the same
                # rows again (sending ones count as unsent) and the release would undo that claim.
                self._draining.discard(device_id)

    async def _send_batch(
        self, device_id: int, client: protocol.WhatsAppClient, batch: list
    ) -> tuple[bool, list, bool]:
        """Send the claimed messages of `batch` in order (taking each out of the list once it is done with),
        then mark the sent ones sent, claiming the next batch with that write. Returns whether to go on, the
        claimed messages not sent yet (the next batch, or what is left of this one) and whether they are the
        look for more."""
        from messaging.services import outbox

        sent: list = []
        go_on = True
        # A full batch leaves more behind, most likely: those stored while Redis is down come with no nudge.
        full = len(batch) >= outbox.CLAIM_BATCH
        try:
            timeout = (gateway.command_timeout() + SEND_TIMEOUT_EXTRA) * len(batch)
            try:
                results = await asyncio.wait_for(
                    _send_many(client, [outgoing for _, outgoing, _ in batch]), timeout
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # nothing is known of any of them: the first counts a failed try
                results = [exc]
            for result in results:
                message_id, _, message = batch[0]
                if isinstance(result, protocol.SendResult):
                    batch.pop(0)
                    sent.append((message, result))
                elif isinstance(result, protocol.NotConnected):
                    go_on = False  # it and the rest go out when the device is back
                    break
                elif isinstance(result, protocol.SendOutcomeUnknown):
                    batch.pop(0)
                    await events.deliver(await runtime.db(outbox.mark_unknown, message_id, result.message))
                elif isinstance(result, PERMANENT_SEND_ERRORS):
                    batch.pop(0)
                    await events.deliver(await runtime.db(outbox.mark_failed, message_id, result.message))
                else:
                    batch.pop(0)
                    error = getattr(result, "message", "") or str(result) or type(result).__name__
                    logger.warning("device %s: sending message %s failed: %s", device_id, message_id, error)
                    if (failed := await runtime.db(outbox.requeue, message_id, error)) is not None:
                        await events.deliver(failed)
                    go_on = False  # try again on the next heartbeat
                    break
        except asyncio.CancelledError:
            if sent:  # they went out: recorded even so
                await asyncio.shield(self._record_sent(sent, device_id, claim=False))
            raise
        if not sent:
            return go_on, batch, False
        # Look for more with that write when a nudge came meanwhile (every message stored after this batch was
        # claimed is followed by one), or when the batch was full or nudges cannot come (the channel layer is
        # down: without this, a backlog would go out one batch per heartbeat). The heartbeat looks too.
        look = (
            go_on
            and not batch
            and (device_id in self._drain_again or full or gateway.layer_recently_failed())
        )
        if look:
            self._drain_again.discard(device_id)  # this look covers what was stored before it
        following = await self._record_sent(sent, device_id, claim=look)
        if go_on and not batch:
            return True, following, True
        return go_on, batch, False

    async def _record_sent(self, sent: list, device_id: int, *, claim: bool) -> list:
        from messaging.services import outbox

        async def published_and_released(result) -> None:  # cancelled meanwhile: the write was done
            await events.deliver(result[0])
            await _release(result[1])

        outcomes, following = await _despite_cancel(
            runtime.db(outbox.sent_and_claim_next, sent, device_id, claim=claim), published_and_released
        )
        await events.deliver(outcomes)
        return following

    # -- the channels

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

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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


async def _despite_cancel(call, on_cancel):
    """Await `call`, a database call: its thread runs to the end even if the caller is cancelled meanwhile.
    Then its result goes to `on_cancel` (give back what it claimed) before the cancellation goes on, so a
    drain stopped in the middle of a claim leaves no message "sending" with a try it never made."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await on_cancel(await task)
        except Exception:
            logger.exception("cleaning up after a cancelled outbox write failed")
        raise


async def _release(claimed: list) -> None:
    """Claimed messages that were not sent: back to queued, the try not counted."""
    from messaging.services import outbox

    if claimed:
        await runtime.db(outbox.release_claims, [c[0] for c in claimed])


async def _send_many(client, messages: list[protocol.OutgoingMessage]) -> list:
    """`client.send_many` (or one at a time for a client without it: a test double), results as it gives them.

    A client that does not read stored files itself (READS_MEDIA_PATH) gets each message with a stored file
    in a send of its own, its bytes read just before it: a claimed batch of large files is never in memory
    at once. The runs stop where a run stopped (an error other than a refusal of one message)."""
    send_many = getattr(client, "send_many", None)

    async def send(run: list[protocol.OutgoingMessage]) -> list:
        if send_many is None:
            return await protocol.send_in_order(client, run)
        return await send_many(messages=run)

    if getattr(client, "READS_MEDIA_PATH", False) or not any(m.media_path for m in messages):
        return await send(messages)
    results: list = []
    for run in _media_runs(messages):
        try:
            if run[0].media_path:
                run = [await asyncio.to_thread(protocol.with_media, run[0])]
            answered = await send(run)
        except protocol.REFUSALS as exc:  # its file is gone: that message alone is refused
            answered = [exc]
        except Exception as exc:
            if not results:
                raise
            answered = [exc]  # the earlier runs went out: their results count
        results.extend(answered)
        last = answered[-1] if answered else None
        if len(answered) < len(run) or (
            isinstance(last, Exception) and not isinstance(last, protocol.REFUSALS)
        ):
            break
    return results


def _media_runs(messages: list[protocol.OutgoingMessage]) -> list[list[protocol.OutgoingMessage]]:
    """`messages` in order, cut so that each message with a stored file is a run of its own."""
    runs: list[list[protocol.OutgoingMessage]] = []
    for message in messages:
        if message.media_path or not runs or runs[-1][-1].media_path:
            runs.append([message])
        else:
            runs[-1].append(message)
    return runs


def _devices_with_pending(device_ids) -> set[int]:
    from messaging.services import outbox

    if not device_ids:
        return set()
    return outbox.devices_with_pending(device_ids)


# ------------------------------------------------------------------------------------------ entry points


_embedded: dict[str, object] = {}


def run_embedded_sessions():
    """The embedded default's session worker, as a coroutine for the launcher to run on daphne's loop."""
    return _run_embedded()


async def _run_embedded() -> None:
    loop = asyncio.get_running_loop()
    runtime.set_loop(loop)
    attempt = 0
    try:
        while True:
            worker = SessionWorker()
            _embedded["worker"] = worker
            _stop_with_reactor(worker)
            try:
                await worker.run()
                return  # stopped on purpose (server shutdown)
            except Exception:
                # e.g. the database was not reachable at start: the server keeps serving, so try again.
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                logger.exception("the embedded session worker failed; starting a new one in %gs", delay)
                await asyncio.sleep(delay)
    finally:
        runtime.clear_loop(loop)
        _embedded.pop("worker", None)


def _stop_with_reactor(worker: SessionWorker) -> None:
    """Under daphne, stop the worker (release its leases) before the reactor shuts down."""
    import sys

    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return
    try:
        from twisted.internet.defer import Deferred

        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(worker.stop()))
        )
    except Exception:
        logger.exception("could not hook the session worker to the server's shutdown")


def embedded_worker() -> SessionWorker | None:
    return _embedded.get("worker")  # type: ignore[return-value]
