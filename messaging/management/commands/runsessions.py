"""`manage.py runsessions`: a session worker process (production runs any number of them, anywhere)."""

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run a session worker: it holds the WhatsApp connections of the devices it leases and runs the web "
        "tier's commands for them, until SIGTERM or SIGINT (then it releases its devices to the other workers)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--worker-id", default=None, help="A name for this worker (default: host:pid:random)."
        )

    def handle(self, *args, worker_id=None, **options):
        from messaging import runtime, sessions  # noqa: F401 (loaded before the freeze)
        from waportal.gc_freeze import freeze_startup_objects

        freeze_startup_objects()
        asyncio.run(self._run(worker_id))

    async def _run(self, worker_id):
        from messaging import runtime
        from messaging.sessions import BACKOFF, SessionWorker

        loop = asyncio.get_running_loop()
        runtime.set_loop(loop)
        stopping = asyncio.Event()
        current: list[SessionWorker] = []

        def request_stop():
            stopping.set()
            if current:
                current[0].request_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        attempt = 0
        try:
            while not stopping.is_set():
                worker = SessionWorker(worker_id=worker_id)
                current[:] = [worker]
                try:
                    await worker.start()
                    self.stdout.write(
                        f"session worker {worker.worker_id}: backend={settings.WA_BACKEND} "
                        f"lease={worker.lease_seconds:g}s holding {len(worker.held)} device(s)"
                    )
                    self.stdout.flush()
                    attempt = 0
                    await worker.run()
                except Exception:
                    # e.g. the database was busy or unreachable at start: try again rather than exit.
                    await worker.stop()
                    delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                    attempt += 1
                    logger.exception("session worker failed; starting again in %gs", delay)
                    try:
                        await asyncio.wait_for(stopping.wait(), delay)
                    except TimeoutError:
                        pass
                else:
                    self.stdout.write(f"session worker {worker.worker_id} stopped")
        finally:
            runtime.clear_loop(loop)
            await loop.run_in_executor(None, runtime.close_db_connections)
