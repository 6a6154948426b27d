"""The event loop of this process that runs the session worker(s) and their channel-layer traffic.

Registered by whoever runs a worker (daphne's loop in `manage.py serve`, the loop of `manage.py runsessions`,
the test fixture's background loop), so that sync code in other threads can hand coroutines to it
(`gateway.call`) instead of starting a loop of its own: the in-memory channel layer only works on one loop.
"""

import asyncio
import contextvars
import functools
import threading

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def set_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    global _loop
    with _lock:
        _loop = loop


def clear_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Forget `loop` if it is the registered one (a stopping worker must not forget a newer loop)."""
    global _loop
    with _lock:
        if _loop is loop:
            _loop = None


# The session workers running in this process, by their channel name. A request that queued a message for a
# device one of them holds hands it over directly (`nudge_threadsafe`) and waits in its own thread for the
# outcome (`events.expect_send_result`): no channel-layer round trip for what never leaves the process.
_workers: dict[str, object] = {}


def add_worker(channel_name: str, worker) -> None:
    with _lock:
        _workers[channel_name] = worker


def remove_worker(channel_name: str, worker) -> None:
    with _lock:
        if _workers.get(channel_name) is worker:
            del _workers[channel_name]


def local_worker(channel_name: str | None):
    """The session worker of this process listening on `channel_name` (a lease's), or None."""
    return _workers.get(channel_name) if channel_name else None


def get_loop() -> asyncio.AbstractEventLoop | None:
    """The registered runtime loop if it is still running, else None."""
    loop = _loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


def on_runtime_loop() -> bool:
    """Whether the caller runs on the runtime loop's own thread (where blocking on it would deadlock)."""
    loop = get_loop()
    if loop is None:
        return False
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# ------------------------------------------------------------------------------------- the DB threads

# The runtime's own threads for database work. Not asgiref's thread-sensitive executor: a sync view (or a
# request's thread-sensitive context, whose context a coroutine handed over by `gateway.run_sync` inherits)
# may be blocked waiting for this loop, and the loop's database work must never queue behind it.
_db_executor = None
_db_lock = threading.Lock()
DB_THREADS = 4


def db_executor():
    global _db_executor
    with _db_lock:
        if _db_executor is None:
            from concurrent.futures import ThreadPoolExecutor

            _db_executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="wa-db")
        return _db_executor


def _with_fresh_connection(fn, args, kwargs):
    from django.db import connections

    # Drop a connection that broke or outlived a positive CONN_MAX_AGE. These threads are long-lived, so a
    # CONN_MAX_AGE of 0 ("per request" for views) keeps the connection instead of reopening it every call.
    for conn in connections.all(initialized_only=True):
        if not conn.settings_dict.get("CONN_MAX_AGE"):
            conn.close_at = None
        conn.close_if_unusable_or_obsolete()
    return fn(*args, **kwargs)


async def db(fn, *args, **kwargs):
    """Run the sync (database) function `fn` in the runtime's DB threads and return its result.

    The loop's executor call with a copy of the caller's context (as asgiref's sync_to_async does, for
    the active language and the like), without sync_to_async's per-call wrapping: the session worker makes
    several of these calls per message, and that wrapping cost more of the loop's time than the hop itself.
    """
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        db_executor(), functools.partial(context.run, _with_fresh_connection, fn, args, kwargs)
    )


def close_db_connections() -> None:
    """Close the DB connections the runtime's threads hold (test teardown: the test database is dropped)."""
    global _db_executor
    from django.db import connections

    with _db_lock:
        executor, _db_executor = _db_executor, None
    if executor is None:
        return
    # One job per thread (the barrier keeps each on its own thread), each closing its thread's connections.
    barrier = threading.Barrier(DB_THREADS)

    def close():
        try:
            barrier.wait(timeout=5)
        finally:
            connections.close_all()

    futures = [executor.submit(close) for _ in range(DB_THREADS)]
    for future in futures:
        try:
            future.result(timeout=10)
        except Exception:
            pass
    executor.shutdown(wait=True)
