"""The neonize backend: one NeonizeClient per device, and where whatsmeow keeps their sessions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from messaging import runtime
from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize import secrets
from messaging.whatsapp.neonize.client import NeonizeClient
from messaging.whatsapp.neonize.connection import LINGERING_LINK_SECONDS, QR_GRACE_SECONDS
from messaging.whatsapp.neonize.history import device_props, history_days
from messaging.whatsapp.neonize.names import (
    neonize_lib,
    to_jid,
)
from messaging.whatsapp.sent_ids import SharedMessageIds

logger = logging.getLogger(__name__)


def default_backoff(attempt: int) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1, 2, ...): doubling from 1 s, at most 60 s."""
    return float(min(60, 2 ** max(0, attempt - 1)))


class NeonizeBackend(p.Backend):
    """Makes one NeonizeClient per device; knows where whatsmeow keeps the sessions."""

    name = "neonize"

    def __init__(
        self,
        *,
        session_dir: str | Path | None = None,
        database_url: str | None = None,
        make_neonize: Callable[..., object] | None = None,
        stored_devices: Callable[[str], list] | None = None,
        backoff: Callable[[int], float] = default_backoff,
        message_ids: Callable[[int], SharedMessageIds] = SharedMessageIds,
    ):
        if session_dir is None:
            session_dir = getattr(settings, "WA_SESSION_DIR", None) or Path(settings.DATA_DIR) / "sessions"
        self.session_dir = Path(session_dir)
        url = getattr(settings, "DATABASE_URL", "") if database_url is None else database_url
        self.database_url = url if (url or "").startswith("postgres") else ""
        self._make_neonize = make_neonize
        self._stored_devices = stored_devices
        self.backoff = backoff
        self._message_ids = message_ids
        self.clients: dict[int, NeonizeClient] = {}
        self.lingering: set[asyncio.Future] = set()  # Go calls of stopped clients that have not returned yet
        # Each neonize client gets a Go session ID of its own: Go keys clients, stop signals and event channels
        # by it, and neonize's finalizer of a collected client stops that ID: shared, it stopped the live one.
        self._instances = itertools.count(1)

    def reserve_threads(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make room in the loop's default thread pool: neonize runs every Go call there (asyncio.to_thread),
        and each connected device keeps one thread blocked in its Go `Neonize()` call for as long as it is
        connected, as does a stopped linking session until its QR codes run out (`linger`). With the default
        pool (min(32, cpus + 4) threads) a few devices would starve every other call on the loop; so the pool
        gets the room of the devices and the lingering calls plus a margin."""
        needed = 32 + 2 * len(self.clients) + len(self.lingering)
        executor = getattr(loop, "_default_executor", None)
        if executor is None:
            loop.set_default_executor(ThreadPoolExecutor(max_workers=needed, thread_name_prefix="asyncio"))
        elif isinstance(executor, ThreadPoolExecutor) and executor._max_workers < needed:
            executor._max_workers = needed  # CPython starts threads lazily up to this bound

    def linger(self, connection: asyncio.Future) -> None:
        """Count a stopped client's Go call that has not returned yet until it does (see reserve_threads)."""
        if connection.done() or connection in self.lingering:
            return
        self.lingering.add(connection)

        def ended(done: asyncio.Future) -> None:
            self.lingering.discard(done)
            if not done.cancelled() and done.exception() is not None:
                logger.info("a stopped neonize connection ended: %s", done.exception())

        connection.add_done_callback(ended)
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            self.reserve_threads(loop)
            # A linking call ends when whatsmeow's codes run out; one that outlives them is stuck in Go for good.
            loop.call_later(LINGERING_LINK_SECONDS + QR_GRACE_SECONDS, self._still_lingering, connection)

    def _still_lingering(self, connection: asyncio.Future) -> None:
        if not connection.done():
            logger.warning(
                "a stopped neonize connection is still in Go after %.0f s: its thread stays taken",
                LINGERING_LINK_SECONDS,
            )

    def create_client(self, *, device_id: int, jid: str | None, emit: p.EmitEvent) -> NeonizeClient:
        client = NeonizeClient(backend=self, device_id=device_id, jid=jid, emit=emit)
        self.clients[device_id] = client
        return client

    async def close(self) -> None:
        for client in list(self.clients.values()):
            with contextlib.suppress(Exception):
                await client.stop()

    # -- sessions

    def session_path(self, device_id: int) -> Path:
        return self.session_dir / f"device-{device_id}.sqlite3"

    def message_secret(self, device_id: int, **lookup) -> tuple[bytes, str] | None:
        """whatsmeow's secret of a message (see secrets.find_secret), from the device's session store."""
        try:
            return secrets.find_secret(self.store_name(device_id), **lookup)
        except Exception as exc:  # no store yet, or whatsmeow has not made its tables
            logger.info("no message secret in the session store of device %s: %s", device_id, exc)
            return None

    def message_ids(self, device_id: int) -> SharedMessageIds:
        """The device's map of our message IDs to WhatsApp's, in the shared database (`sent_ids`): any worker
        that holds the number later matches receipts of what this one sent, and sends nothing twice."""
        return self._message_ids(device_id)

    def store_name(self, device_id: int) -> str:
        """neonize's `name`: the whatsmeow store (a PostgreSQL URL, or this device's SQLite file)."""
        return self.database_url or str(self.session_path(device_id))

    def remove_session(self, device_id: int) -> None:
        """Delete the device's SQLite session and ID map (PostgreSQL rows are deleted by whatsmeow's Logout)."""
        with contextlib.suppress(FileNotFoundError):  # the per-worker ID map of earlier versions
            (self.session_dir / f"device-{device_id}.ids.sqlite3").unlink()
        if self.database_url:
            return
        path = self.session_path(device_id)
        for candidate in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
            path.with_name(path.name + "-journal"),
        ):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()

    async def stored_session_jid(self, jid: str):
        """In the shared PostgreSQL store: the full JID (with device number) of `jid`'s stored session."""
        if not jid:
            return None
        lister = self._stored_devices or stored_device_jids
        stored = await asyncio.to_thread(lister, self.database_url)
        user = p.jid_user(jid)
        sessions = [found for found in map(to_jid, stored) if found.User == user]
        # Two sessions of one number: it was linked again while whatsmeow still kept the old one (logged out on
        # the phone while we were offline). The phone numbers its linked devices upwards: the highest is newest.
        return max(sessions, key=lambda found: found.Device, default=None)

    async def open_neonize(self, client: NeonizeClient):
        """A new neonize NewAClient for `client`'s device, on the right session store."""
        name = self.store_name(client.device_id)
        jid = None
        new_device = False
        if self.database_url:
            jid = await self.stored_session_jid(client.jid)
            new_device = jid is None  # never resume another device's session from the shared store
        else:
            self.session_dir.mkdir(parents=True, exist_ok=True)
        client._fresh_session = new_device or not client.jid
        uuid = f"device-{client.device_id}-{next(self._instances)}"
        if self._make_neonize is not None:
            return self._make_neonize(name=name, jid=jid, uuid=uuid, new_device=new_device)
        lib = neonize_lib()
        # Read by whatsmeow when it pairs: how much history the phone is asked to send (see history.py).
        days = 30
        if client._fresh_session:
            try:
                days = await runtime.db(history_days, client.device_id)
            except Exception as exc:  # a setting that cannot be read now never stops a link
                logger.warning("history setting of device %s not read (%s): 30 days", client.device_id, exc)
        props = device_props(days)
        # Not NewAClient(jid=...): that would make the Go session ID the phone number, the same for every client
        # of the device. neonize reads `jid` when it connects.
        neo = lib.NewAClient(name, props=props, uuid=uuid, new_device=new_device)
        neo.jid = jid
        return neo


def stored_device_jids(database_url: str) -> list[str]:
    """The JIDs of the sessions in whatsmeow's PostgreSQL store, read from its device table.

    Not neonize's ClientFactory.get_all_devices_from_db: it splits comma-joined rows, so one push or business
    name with a comma ("Acme, Inc.") raised for every device of the store."""
    import psycopg
    from psycopg import errors

    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            return [row[0] for row in conn.execute("SELECT jid FROM whatsmeow_device")]
    except errors.UndefinedTable:
        return []  # whatsmeow creates its tables on the first connection
