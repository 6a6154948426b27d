"""Django's SQLite backend with one writer at a time per database file inside this process, by a lock.

The embedded default runs the web tier, the session workers and the task worker as threads of one process
over one SQLite file, and SQLite lets one connection write at a time. Its own wait for the write lock (the
busy timeout) sleeps in steps that grow to 100 ms, whether or not the lock was freed meanwhile, so under a
burst of sends threads slept while nobody wrote: throughput fell and a few requests stalled for seconds.
Here a thread takes an in-process lock before it writes (from BEGIN to COMMIT or ROLLBACK, or around a
single statement outside a transaction) and is woken the moment the writer before it is done. Other
processes on the same file (a `manage.py` command run beside `serve`) still meet SQLite's busy timeout.
Reads take no lock: in WAL mode they never wait for a writer.

Closed connections go back to a small pool per file instead of being closed. Under ASGI Django runs each
request's sync code in a thread of its own, and connections are per thread, so every request opened one
(connect, PRAGMAs, Django's SQL functions): a quarter of the request thread's time on the cheapest API
endpoint (py-spy). Django's SQLite connections may change threads (it opens them with check_same_thread off).
"""

from __future__ import annotations

import contextlib
import threading

from django.db.backends.sqlite3 import base

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()
_idle: dict[str, list] = {}  # file -> connections closed cleanly, ready for the next thread
IDLE_PER_FILE = 8


def _lock_for(name) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault(str(name), threading.RLock())


def _reads_only(query: str) -> bool:
    return query.lstrip()[:6].upper() == "SELECT"


class DatabaseWrapper(base.DatabaseWrapper):
    _holding = False

    def get_new_connection(self, conn_params):
        connection = self._reused() or super().get_new_connection(conn_params)
        # The wait for the lock is bounded like SQLite's own; past it, SQLite's busy timeout still applies.
        self._write_lock = _lock_for(self.settings_dict["NAME"])
        self._write_wait = float(conn_params.get("timeout", 5))
        self._holding = False
        return connection

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=_LockingCursor)
        cursor.wrapper = self
        return cursor

    def acquire_write_lock(self) -> None:
        if not self._holding:
            self._holding = self._write_lock.acquire(timeout=self._write_wait)

    def release_write_lock(self) -> None:
        if self._holding and not (self.connection is not None and self.connection.in_transaction):
            self._holding = False
            self._write_lock.release()

    def _start_transaction_under_autocommit(self):
        self.acquire_write_lock()
        try:
            super()._start_transaction_under_autocommit()
        finally:
            self.release_write_lock()  # kept while the transaction is open

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self.release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self.release_write_lock()

    def _pool(self) -> list | None:
        return None if self.is_in_memory_db() else _idle.setdefault(str(self.settings_dict["NAME"]), [])

    def _reused(self):
        pool = self._pool()
        with _locks_guard:
            connection = pool.pop() if pool else None
        if connection is not None:
            connection.execute(
                "PRAGMA foreign_keys = ON"
            )  # as a new one has it (a migration may turn it off)
        return connection

    def _close(self):
        try:
            pool = self._pool()
            connection = self.connection
            if pool is not None and connection is not None and not self.in_atomic_block:
                if connection.in_transaction:
                    connection.rollback()
                with _locks_guard:
                    if len(pool) < IDLE_PER_FILE:
                        pool.append(connection)
                        return None
            return super()._close()
        finally:
            if self._holding:
                self._holding = False
                self._write_lock.release()


class _LockingCursor(base.SQLiteCursorWrapper):
    """A statement that may write, outside a transaction, holds the lock while it runs."""

    wrapper: DatabaseWrapper

    @contextlib.contextmanager
    def _writing(self, query: str):
        if _reads_only(query) or self.connection.in_transaction:
            yield
            return
        self.wrapper.acquire_write_lock()
        try:
            yield
        finally:
            self.wrapper.release_write_lock()

    def execute(self, query, params=None):
        with self._writing(query):
            return super().execute(query, params)

    def executemany(self, query, param_list):
        with self._writing(query):
            return super().executemany(query, param_list)
