"""The embedded default's session worker: run on daphne's loop by the launcher, restarted if it fails."""

from __future__ import annotations

import asyncio
import logging

from messaging import runtime
from messaging.sessions.worker import BACKOFF, SessionWorker

logger = logging.getLogger("messaging.sessions")  # one name for the whole worker, as before the split

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
