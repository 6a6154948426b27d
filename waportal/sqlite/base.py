"""Django's SQLite backend where every write to a database file goes through one first-come-first-served lock.

The embedded default runs the web tier, the session workers and the task worker as threads of one process
over one SQLite file, and SQLite lets one connection write at a time. Its own wait for the write lock (the
busy timeout) sleeps in steps that grow to 100 ms and gives up with "database is locked" once the timeout
has passed, whether or not others were served meanwhile. So a writer takes this lock first, from BEGIN to
COMMIT or ROLLBACK (transactions begin IMMEDIATE, settings' transaction_mode: a transaction that writes never
upgrades a read), or around one statement outside a transaction until that statement is done (an
UPDATE ... RETURNING still holds SQLite's lock until its rows are read).

Why it cannot time out into SQLite's error: the wait has no time limit (a wait that long is logged, naming
the holder), and it is served in arrival order, each holder handing the lock straight to the next waiter.
An earlier version waited at most the busy timeout on a plain RLock, then went on without it: under load a
thread could lose the race again and again (a releasing thread takes an RLock back before a woken waiter
runs), ran out its wait, then met SQLite's busy timeout against writers that kept the file busy, and failed.

Other processes on the same file (a `manage.py` command run beside `serve`) take the same lock: a thread
holds the process's lock, then an advisory lock (flock) on `<database>-writelock` beside the file, which the
kernel hands to one waiting process at a time. Reads take no lock: in WAL mode they never wait for a writer.

Closed connections go back to a small pool per file instead of being closed. Under ASGI Django runs each
request's sync code in a thread of its own, and connections are per thread, so every request opened one
(connect, PRAGMAs, Django's SQL functions): a quarter of the request thread's time on the cheapest API
endpoint (py-spy). Django's SQLite connections may change threads (it opens them with check_same_thread off).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time

from django.db.backends.sqlite3 import base

try:
    import fcntl
except ImportError:  # Windows: one process per file is then the rule
    fcntl = None

logger = logging.getLogger(__name__)

# A wait this long is logged (again at each interval): a writer that holds on for that long is a bug to see.
SLOW_WAIT_SECONDS = 30.0


class WriteLock:
    """The writers' lock of one database file, within and across processes; no time limit, and fair.

    Fast while nobody waits long: a thread that asks when the lock is free takes it, even before a waiter
    woken for it runs (handing over on every release would make each write wait for a thread switch, which
    costs most under a busy CPU: a third of the throughput, measured). Once a waiter has waited
    STARVING_AFTER, the lock serves the waiters in arrival order until one is served that waited less: no
    thread can be passed over for seconds (without this, 7.9 s was measured under load).

    Reentrant per thread (a thread that holds it through one connection and writes through another of the
    same file must not wait for itself). Not a context manager on purpose: it is held from a BEGIN to a
    COMMIT, which are separate calls."""

    STARVING_AFTER = 0.05

    def __init__(self, path: str) -> None:
        self.path = path
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._queue: collections.deque[int] = collections.deque()
        self._starving = False
        self._file = None
        self.owner_name = ""

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is not None or (self._starving and self._queue):
                self._wait_turn(me)
            self._owner, self._depth = me, 1
            self.owner_name = threading.current_thread().name
        self._lock_file()

    def _wait_turn(self, me: int) -> None:
        """Wait (holding the condition) until the lock is free and it is this thread's turn."""
        self._queue.append(me)
        since = time.monotonic()
        logged = since
        while not (self._owner is None and (not self._starving or self._queue[0] == me)):
            if self._owner is None:
                self._cond.notify_all()  # free, and not our turn: wake the one whose turn it is
            self._cond.wait(self.STARVING_AFTER)
            now = time.monotonic()
            if now - since >= self.STARVING_AFTER:
                self._starving = True
            if now - logged >= SLOW_WAIT_SECONDS:
                logged = now
                logger.warning(
                    "waiting %.0f s to write to %s; held by thread %s",
                    now - since,
                    self.path,
                    self.owner_name,
                )
        self._queue.remove(me)
        if not self._queue or time.monotonic() - since < self.STARVING_AFTER:
            self._starving = False

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("the SQLite write lock is released by a thread that does not hold it")
            self._depth -= 1
            if self._depth:
                return
            self._unlock_file()
            self._owner = None
            if self._starving:
                self._cond.notify_all()  # only the first in line takes it; the others wait again
            else:
                self._cond.notify()

    def _lock_file(self) -> None:
        """Across processes: wait (in the kernel, woken at its release) for the other processes' writer."""
        if (
            fcntl is None
            or self._file is False
            or self.path in ("", ":memory:")
            or self.path.startswith("file:")
        ):
            return
        try:
            if self._file is None:
                self._file = open(f"{self.path}-writelock", "a+b")  # noqa: SIM115 - kept for the process
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        except OSError as exc:  # a read-only directory: SQLite's busy timeout still guards other processes
            logger.warning("no lock file beside %s (%s): other processes are not waited for", self.path, exc)
            self._file = False

    def _unlock_file(self) -> None:
        if self._file:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)


_locks: dict[str, WriteLock] = {}
_locks_guard = threading.Lock()
_idle: dict[str, list] = {}  # file -> connections closed cleanly, ready for the next thread
IDLE_PER_FILE = 8


def write_lock_for(name) -> WriteLock:
    with _locks_guard:
        key = str(name)
        if key not in _locks:
            _locks[key] = WriteLock(key)
        return _locks[key]


def _reads_only(query: str) -> bool:
    return query.lstrip()[:6].upper() == "SELECT"


class DatabaseWrapper(base.DatabaseWrapper):
    _holding = False

    def get_new_connection(self, conn_params):
        connection = self._reused() or super().get_new_connection(conn_params)
        self._write_lock = write_lock_for(self.settings_dict["NAME"])
        self._holding = False
        return connection

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=_LockingCursor)
        cursor.wrapper = self
        return cursor

    def acquire_write_lock(self) -> None:
        if not self._holding:
            self._write_lock.acquire()
            self._holding = True

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
        self._constraints_off = False  # (a pooled connection has them on: see _close)
        return connection

    # Foreign keys are on in every connection, as Django opens them; only these turn them off (a migration,
    # loaddata), and a connection closed with them off is not pooled. (Turning them on again at each reuse was
    # one more SQLite call on every request.)
    _constraints_off = False

    def disable_constraint_checking(self):
        self._constraints_off = True
        return super().disable_constraint_checking()

    def enable_constraint_checking(self):
        super().enable_constraint_checking()
        self._constraints_off = False

    def _close(self):
        try:
            pool = self._pool()
            connection = self.connection
            if (
                pool is not None
                and connection is not None
                and not self.in_atomic_block
                and not self._constraints_off
            ):
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
    """A statement that may write, outside a transaction, holds the lock until it is done: its rows (RETURNING)
    are read while the lock is held, and served from here."""

    wrapper: DatabaseWrapper
    _rows: collections.deque | None = None

    @contextlib.contextmanager
    def _writing(self, query: str):
        self._rows = None
        if _reads_only(query) or self.connection.in_transaction:
            yield False
            return
        self.wrapper.acquire_write_lock()
        try:
            yield True
        finally:
            self.wrapper.release_write_lock()

    def execute(self, query, params=None):
        with self._writing(query) as locked:
            result = super().execute(query, params)
            if locked and self.description is not None:
                # SQLite finishes the statement (and lets go of the file) only once every row is read.
                self._rows = collections.deque(super().fetchall())
            return result

    def executemany(self, query, param_list):
        with self._writing(query):
            return super().executemany(query, param_list)

    def fetchone(self):
        if self._rows is None:
            return super().fetchone()
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size=None):
        if self._rows is None:
            return super().fetchmany(self.arraysize if size is None else size)
        size = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    def fetchall(self):
        if self._rows is None:
            return super().fetchall()
        rows, self._rows = list(self._rows), collections.deque()
        return rows

    def __iter__(self):
        if self._rows is None:
            return super().__iter__()
        return iter(self.fetchall())

    def __next__(self):
        if self._rows is None:
            return super().__next__()
        if not self._rows:
            raise StopIteration
        return self._rows.popleft()
