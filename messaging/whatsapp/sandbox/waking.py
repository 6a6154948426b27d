"""Waking clients: a write for a device makes its client pick up its deliveries, in this process or its worker's."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messaging.whatsapp.sandbox.client import SandboxClient

logger = logging.getLogger(__name__)


# Clients living in this process, by device: a write for one of them pokes it directly.
_local_clients: dict[int, SandboxClient] = {}


def _wake_sync(device_ids) -> None:
    """From sync code (any thread but a client's loop thread): make the devices' clients pick up their deliveries."""
    from messaging import gateway

    for device_id in dict.fromkeys(device_ids):
        client = _local_clients.get(device_id)
        if client is not None and client._loop is not None and client._loop.is_running():
            asyncio.run_coroutine_threadsafe(client.poke(), client._loop)
            continue
        try:
            gateway.run_sync(
                lambda device_id=device_id: gateway.notify_worker(device_id, {"type": "worker.poke"}),
                timeout=5,
            )
        except Exception:  # the worker also picks deliveries up when it (re)starts the client
            logger.warning("could not poke the worker of device %s", device_id, exc_info=True)


async def _wake(device_ids) -> None:
    from messaging import gateway

    loop = asyncio.get_running_loop()
    for device_id in dict.fromkeys(device_ids):
        client = _local_clients.get(device_id)
        if client is not None and client._loop is loop:
            await client.poke()
        elif client is not None and client._loop is not None and client._loop.is_running():
            asyncio.run_coroutine_threadsafe(client.poke(), client._loop)
        else:
            try:
                await gateway.notify_worker(device_id, {"type": "worker.poke"})
            except Exception:
                logger.warning("could not poke the worker of device %s", device_id, exc_info=True)
