"""The in-process task worker of the embedded default: a real Celery worker in a thread, on the memory:// broker.

Why a real worker and not eager tasks or a home-made consumer: the tasks then run exactly as they do in
production (same routing, countdowns for retries, acks, the Django fix-up that recycles DB connections),
only the transport differs. Celery's own `celery.contrib.testing.worker` runs workers this way.
It is the plain `WorkController`, not `celery.apps.worker.Worker`: the latter installs signal handlers
(only possible on the main thread) and takes over logging, neither of which suits a guest in daphne.
Tasks run on a small thread pool ("threads"): they wait on HTTP, not on the CPU.

kombu's memory transport keeps its queues in this process, so only this process can consume what it
enqueues: with a real broker (REDIS_URL / CELERY_BROKER_URL set) nothing starts here and
`celery -A waportal worker` does the work instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from django.conf import settings

logger = logging.getLogger(__name__)


def periodic() -> dict[str, float]:
    """The periodic tasks the embedded process runs itself, name -> seconds: celery beat's schedule."""
    return {entry["task"]: float(entry["schedule"]) for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def _close_db_connections(task=None, **kwargs) -> None:
    """After each task, on its thread: a pool thread keeps no connection between tasks (a test database
    can then be dropped, and a restarted database is simply reconnected). Not after a task run eagerly
    (`apply()`): it ran in its caller's thread, whose connections (and open transaction) are the caller's."""
    from django.db import connections

    if task is not None and getattr(task.request, "is_eager", False):
        return

    connections.close_all()


def uses_memory_broker() -> bool:
    from waportal.celery import app

    return str(app.conf.broker_url or "").startswith("memory://")


class EmbeddedTaskWorker:
    """A Celery worker on a daemon thread plus a tiny scheduler thread for the periodic tasks."""

    def __init__(
        self, *, concurrency: int | None = None, periodic: bool = True, queues: list[str] | None = None
    ) -> None:
        from celery.utils.nodenames import anon_nodename
        from celery.worker import WorkController

        from waportal.celery import app

        self.app = app
        self.concurrency = concurrency or int(getattr(settings, "EMBEDDED_TASK_CONCURRENCY", 4))
        self.periodic = periodic
        self._ready = threading.Event()
        self._stopping = threading.Event()
        ready = self._ready

        class Controller(WorkController):
            def on_consumer_ready(self, consumer):
                ready.set()

        # The Django fix-up runs the system checks when a worker imports its task modules; this process
        # is already a checked, running Django (daphne, or a test run), so that would be redundant.
        os.environ.setdefault("CELERY_SKIP_CHECKS", "1")
        app.finalize()
        app.set_current()
        from celery.signals import task_postrun

        task_postrun.connect(_close_db_connections, weak=False, dispatch_uid="waportal-embedded-close-db")
        self.worker = Controller(
            app=app,
            hostname=anon_nodename(hostname=None, prefix="embedded"),
            pool="threads",
            concurrency=self.concurrency,
            loglevel=logging.WARNING,
            ready_callback=None,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            queues=queues,  # None: the default queue
        )
        self._thread = threading.Thread(target=self.worker.start, name="celery-embedded", daemon=True)
        self._scheduler = threading.Thread(
            target=self._run_periodic, name="celery-embedded-beat", daemon=True
        )

    def start(self, *, timeout: float = 30.0) -> EmbeddedTaskWorker:
        # Two INFO lines per task (received, succeeded) would drown the server's log: one per webhook.
        for name in ("celery.worker.strategy", "celery.app.trace"):
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the embedded task worker did not start")
        if self.periodic:
            self._scheduler.start()
        logger.info("embedded task worker running (%s threads)", self.concurrency)
        return self

    def _run_periodic(self) -> None:
        import time

        schedule = periodic()
        next_run = {name: 0.0 for name in schedule}  # all run once at start: requeue what a restart lost
        while not self._stopping.is_set():
            now = time.monotonic()
            for name, every in schedule.items():
                if now >= next_run[name]:
                    next_run[name] = now + every
                    try:
                        self.app.send_task(name)
                    except Exception:
                        logger.exception("could not enqueue %s", name)
            self._stopping.wait(max(0.5, min(next_run.values()) - time.monotonic()))

    def stop(self, timeout: float = 10.0) -> None:
        from celery.worker import state

        self._stopping.set()
        # How celery.contrib.testing.worker stops its thread: the consumer loop checks this flag.
        state.should_terminate = 0
        # It checks the flag between polls of the broker, which wait up to 2 s for a message: give it one.
        try:
            self.app.send_task("messaging.wake_up")
        except Exception:
            pass
        self._thread.join(timeout)
        state.should_terminate = None


_running: EmbeddedTaskWorker | None = None
_lock = threading.Lock()


def ensure_embedded_task_worker(**kwargs) -> EmbeddedTaskWorker | None:
    """Start the process's embedded task worker once (None when a real broker is configured)."""
    global _running
    if not uses_memory_broker():
        return None
    with _lock:
        if _running is None:
            _running = EmbeddedTaskWorker(**kwargs).start()
        return _running


async def _supervise(worker: EmbeddedTaskWorker) -> None:
    global _running
    try:
        await asyncio.Event().wait()  # until the launcher cancels us at shutdown
    finally:
        await asyncio.to_thread(worker.stop)
        with _lock:
            _running = None


def run_embedded_task_worker():
    """Launcher hook: start the worker threads; the returned coroutine stops them when cancelled."""
    if not uses_memory_broker():
        logger.info("task broker is %s: run `celery -A waportal worker` for background tasks", "external")
        return None
    worker = ensure_embedded_task_worker()
    return _supervise(worker)
