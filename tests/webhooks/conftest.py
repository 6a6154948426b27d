"""Fixtures of the webhook tests: a local receiver, the embedded task worker, and a log of attempts to wait on."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest
from asgiref.sync import async_to_sync

from messaging import events, webhooks
from messaging.whatsapp import protocol
from tests.webhooks.receiver import Receiver

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _plain_http_test_client(settings):
    """Production settings redirect http to https (301); the test client speaks plain http."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def allow_private(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return settings


@pytest.fixture
def fast_retries(settings):
    """Retries in milliseconds instead of seconds (the schedule's shape is unchanged)."""
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.02
    settings.WEBHOOK_RETRY_MAX_SECONDS = 5
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    return settings


class AttemptLog:
    """Every recorded attempt (webhooks.attempt_recorded), with a way to wait for a condition on them."""

    def __init__(self) -> None:
        self.attempts = []
        self._cond = threading.Condition()

    def _on_attempt(self, sender, delivery, attempt, **kwargs):
        with self._cond:
            self.attempts.append(attempt)
            self._cond.notify_all()

    def wait(self, predicate, timeout: float = 15.0, what: str = "attempts"):
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.attempts), timeout=timeout):
                seen = [(a.delivery_id, a.number, a.status_code, a.error) for a in self.attempts]
                raise AssertionError(f"waited {timeout}s for {what}; attempts so far: {seen}")
            return list(self.attempts)

    def wait_final(self, count: int = 1, timeout: float = 15.0):
        """Until `count` deliveries have had their last attempt (succeeded, or failed with no retry)."""
        return self.wait(
            lambda attempts: (
                len({a.delivery_id for a in attempts if a.succeeded or a.retry_at is None}) >= count
            ),
            timeout,
            f"{count} finished deliveries",
        )


@pytest.fixture
def attempt_log():
    log = AttemptLog()
    webhooks.attempt_recorded.connect(log._on_attempt, weak=False, dispatch_uid=f"test-log-{id(log)}")
    yield log
    webhooks.attempt_recorded.disconnect(dispatch_uid=f"test-log-{id(log)}")


@pytest.fixture(scope="session")
def _embedded_task_worker():
    from waportal.tasks_embedded import EmbeddedTaskWorker, uses_memory_broker

    # On a real broker (the suite in production mode) tasks go to a queue of this run only, so a task
    # left over in Redis from another run never meets this run's database.
    queue = None if uses_memory_broker() else f"webhooks-test-{uuid.uuid4().hex[:12]}"
    worker = EmbeddedTaskWorker(concurrency=2, periodic=False, queues=[queue] if queue else None).start()
    worker.test_queue = queue
    yield worker
    worker.stop()


@pytest.fixture
def task_worker(transactional_db, fast_retries, settings, _embedded_task_worker):
    """The embedded Celery worker (memory broker, thread pool) exactly as `manage.py serve` runs it.

    One per test session; its tasks only touch the database while a test that uses it runs."""
    if _embedded_task_worker.test_queue:
        settings.WEBHOOK_TASK_QUEUE = _embedded_task_worker.test_queue
    yield _embedded_task_worker
    # Before the test's tables are emptied: a task still in its transaction (the drain after a test's last
    # awaited attempt) and PostgreSQL's TRUNCATE take the same tables in opposite orders, a deadlock.
    _wait_until_idle()


def _wait_until_idle(timeout: float = 10.0, quiet: float = 0.2) -> None:
    """Until no task has run for `quiet` seconds (bounded): the worker's own count of tasks in hand."""
    from celery.worker import state

    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if state.active_requests:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            return
        time.sleep(0.01)


def make_device(organization, name="Phone"):
    from messaging.models import Device

    n = next(_ids)
    return Device.objects.create(
        organization=organization,
        name=name,
        status="connected",
        jid=f"90555{n:07d}@s.whatsapp.net",
        phone=f"90555{n:07d}",
    )


def receive_message(device, text="hello", *, sender="905559990001@s.whatsapp.net", msg_id=None):
    """What a session worker does with an incoming message: events.handle persists, publishes, dispatches."""
    msg_id = msg_id or f"IN{next(_ids):08d}"
    message = protocol.IncomingMessage(id=msg_id, chat=sender, sender=sender, sender_name="Ayşe", text=text)
    async_to_sync(events.handle)(protocol.MessageEvent(device_id=device.pk, message=message))
    return msg_id
