"""Our message IDs and the IDs WhatsApp used for them (neonize cannot send with ours)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from messaging.whatsapp import protocol as p


class MessageIds:
    """Our message IDs and the IDs WhatsApp used for them, kept in a small SQLite file per device.

    Also what makes a repeated send of the same outgoing message a no-op, across restarts too.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sent (ours TEXT PRIMARY KEY, wa TEXT NOT NULL, ts REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS sent_wa ON sent (wa)")
        return self._db

    def remember(self, ours: str, wa: str, timestamp: float) -> None:
        if not ours or not wa:
            return
        with self._lock:
            conn = self._conn()
            conn.execute("INSERT OR REPLACE INTO sent (ours, wa, ts) VALUES (?, ?, ?)", (ours, wa, timestamp))
            conn.commit()

    def sent(self, ours: str) -> p.SendResult | None:
        """The result of an earlier send of `ours`, if it went out."""
        with self._lock:
            row = self._conn().execute("SELECT ts FROM sent WHERE ours = ?", (ours,)).fetchone()
        return p.SendResult(id=ours, timestamp=row[0]) if row else None

    def wa(self, ours: str) -> str:
        """The ID WhatsApp knows for our message `ours` (itself when it is not one we sent)."""
        if not ours:
            return ours
        with self._lock:
            row = self._conn().execute("SELECT wa FROM sent WHERE ours = ?", (ours,)).fetchone()
        return row[0] if row else ours

    def ours(self, wa: str) -> str:
        """Our ID for the WhatsApp ID `wa` (itself when it is not one we sent)."""
        if not wa:
            return wa
        with self._lock:
            row = self._conn().execute("SELECT ours FROM sent WHERE wa = ?", (wa,)).fetchone()
        return row[0] if row else wa

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
