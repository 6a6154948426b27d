"""The session worker's ownership of devices: the heartbeat, claims, restarts, handovers and releases.

A part of `SessionWorker` (see `messaging.sessions.worker`), which brings the clients, the per-device locks and
the spawning of tasks it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.layers import get_channel_layer

from messaging import events, gateway, runtime
from messaging.sessions.leases import (
    beat_worker,
    claimable_devices,
    fair_share,
    handover_order,
    mark_stopped,
    release_leases,
    renew_leases,
    take_lease,
    unwanted_devices,
)
from messaging.sessions.sending import devices_with_pending

logger = logging.getLogger("messaging.sessions")  # one name for the whole worker, as before the split

POKES_PER_HEARTBEAT = 25


class OwnershipMixin:
    """Renews the leases, lets go of lost or unwanted devices, takes free ones up to the fair share."""

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
            pending = await runtime.db(devices_with_pending, set(self.clients))
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
            return await self._start_or_let_go(device_id)

    async def restart(self, device_id: int) -> None:
        """(Re)start the device's client: after linking was asked for again, or a reconnect."""
        if device_id not in self.clients:
            await self.claim(device_id)
            return
        async with self._lock(device_id):
            await self._stop_client(device_id)
            await self._start_or_let_go(device_id)

    async def _start_or_let_go(self, device_id: int) -> bool:
        """Start the device's client (its lock held); if that fails, give its lease up for another worker."""
        try:
            await self._start_client(device_id)
        except Exception:
            logger.exception(
                "session worker %s could not make a client for device %s", self.worker_id, device_id
            )
            await runtime.db(release_leases, worker_id=self.worker_id, device_ids=[device_id])
            return False
        return True

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
