"""One device's neonize client: its state, and the parts that drive it (connection, events, sends, operations)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.connection import Connection
from messaging.whatsapp.neonize.events import Events
from messaging.whatsapp.neonize.operations import Operations
from messaging.whatsapp.neonize.sends import Sending

if TYPE_CHECKING:
    from messaging.whatsapp.neonize.backend import NeonizeBackend


class NeonizeClient(Connection, Events, Sending, Operations, p.WhatsAppClient):
    """One device's neonize client, driven by the session worker that holds the device."""

    def __init__(self, *, backend: NeonizeBackend, device_id: int, jid: str | None, emit: p.EmitEvent):
        self.backend = backend
        self.device_id = device_id
        self.jid = jid or ""
        self._emit = emit
        self.neo = None  # the neonize NewAClient of the current connection, a new one for each (see _run)
        self._connection: asyncio.Future | None = None  # neonize's connect task: its Go Neonize() call
        self._fresh_session = False  # the current connection has no stored session to resume: it links
        self._connected = False
        self._stopping = False
        self._final = False  # logged out, linking expired, replaced, banned: do not reconnect
        self._supervisor: asyncio.Task | None = None
        self._qr_count = 0
        self._qr_ready: asyncio.Event | None = None
        self._qr_watchdog: asyncio.TimerHandle | None = None
        self._attempt = 0
        self._in_backoff = False
        self.ids = backend.message_ids(device_id)
        self._background: set[asyncio.Task] = set()
        # neonize schedules one coroutine per event; taking this lock first keeps them in arrival order.
        self._event_order = asyncio.Lock()
        self._lids_told: dict[str, str] = {}  # LID -> number pairs emitted (Events._pairs_told)
