"""The embedded default: the launcher's session service runs a worker on the server's loop and stops cleanly."""

import asyncio

import pytest

from messaging import runtime, sessions
from messaging.models.device import SessionWorker

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_embedded_sessions_registers_the_loop_and_runs_a_worker_until_cancelled(
    runtime_harness, settings, org
):
    settings.WA_BACKEND = "sandbox"
    started = runtime_harness.run(_start_embedded())
    worker = sessions.embedded_worker()
    assert worker is not None and SessionWorker.objects.filter(worker_id=worker.worker_id).exists()
    assert runtime.get_loop() is runtime_harness.loop

    runtime_harness.run(_cancel(started))
    assert sessions.embedded_worker() is None
    assert not SessionWorker.objects.filter(worker_id=worker.worker_id).exists()


async def _start_embedded():
    task = asyncio.ensure_future(sessions.run_embedded_sessions())
    await asyncio.sleep(0)  # one step of the task: it makes and registers its worker
    await sessions.embedded_worker().ready.wait()
    return task


async def _cancel(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
