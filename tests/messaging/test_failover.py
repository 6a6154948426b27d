"""Failover across processes: two `manage.py runsessions` workers; SIGKILL the one holding a device.

The other takes the device within the lease time, and a message queued during the gap is delivered once.
Linking uses the sandbox's stored session (as `manage.py demo` does), so the workers find the device by
their heartbeat alone. The production variant runs on PostgreSQL + Redis (DATABASE_URL, REDIS_URL); the
embedded one shares the SQLite test database file between the processes.
Waiting here polls the database with a deadline: the workers are other processes.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection

from messaging.models import Device, DeviceLease, Message, MessageStatus
from messaging.models.device import SessionWorker
from messaging.services import outbox

LEASE = 3.0
ROOT = Path(__file__).resolve().parents[2]


def _wait_for(what: str, check, timeout: float, logs: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            output = ""
            if logs is not None:
                output = "\n".join(
                    f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(logs.glob("worker*.log"))
                )
            raise AssertionError(f"timed out waiting for {what}\n{output}")
        time.sleep(0.1)  # another process does the work: nothing to wait on but the database


def _database_env(tmp_path, index: int) -> dict:
    """Point a worker process at the test database (the one this test writes to)."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        # The embedded settings open DATA_DIR/waportal.sqlite3 with their options (busy timeout, WAL,
        # immediate transactions); the test database is named so (tests/runtime_fixtures.py).
        assert Path(name).name == "waportal.sqlite3", name
        return {"WAPORTAL_DATA_DIR": str(Path(name).parent)}
    return {
        "DATABASE_URL": urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl(),
        "WAPORTAL_DATA_DIR": str(tmp_path / f"worker{index}"),
    }


def _start_worker(tmp_path, index: int) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        _database_env(tmp_path, index),
        WA_BACKEND="sandbox",
        WA_LEASE_SECONDS=str(LEASE),
        SECRET_KEY=os.environ.get("SECRET_KEY", "failover-test-secret-key-not-for-production-use"),
    )
    log = open(tmp_path / f"worker{index}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "manage.py", "runsessions", "--worker-id", f"failover-{index}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _failover(tmp_path, org):
    from messaging.whatsapp import sandbox

    sandbox.seed_network()
    peer = sandbox.peer_phones()[0]
    device = Device.objects.create(organization=org, name="Failover", wanted=True)
    session = sandbox.store_session(device_id=device.pk, phone=sandbox.fresh_phone())
    Device.objects.filter(pk=device.pk).update(jid=session["jid"], phone=session["phone"])

    workers = {f"failover-{i}": _start_worker(tmp_path, i) for i in (1, 2)}
    try:
        _wait_for(
            "both workers",
            lambda: SessionWorker.objects.filter(worker_id__in=workers).count() == 2,
            60,
            tmp_path,
        )
        _wait_for(
            "the device connected",
            lambda: Device.objects.filter(pk=device.pk, status="connected", lease__isnull=False).exists(),
            30,
            tmp_path,
        )
        holder = DeviceLease.objects.get(device=device).worker_id
        survivor = next(w for w in workers if w != holder)

        workers[holder].send_signal(signal.SIGKILL)
        workers[holder].wait(10)
        killed_at = time.monotonic()
        message = outbox.queue_message(
            organization=org, device=device, outgoing={"to": peer, "text": "during the gap"}
        )
        assert message.status == MessageStatus.QUEUED

        _wait_for(
            "the takeover",
            lambda: DeviceLease.objects.filter(device=device, worker_id=survivor).exists(),
            LEASE * 4 + 10,
            tmp_path,
        )
        took = time.monotonic() - killed_at
        # Within the lease time, plus one heartbeat of the survivor and some slack for a loaded machine.
        assert took <= LEASE + LEASE / 3 + 3, f"took {took:.1f}s"

        _wait_for(
            "the message sent",
            lambda: Message.objects.filter(pk=message.pk).exclude(status__in=["queued", "sending"]).exists(),
            30,
            tmp_path,
        )
        # One more heartbeat of the survivor must not send it again.
        beat = SessionWorker.objects.get(worker_id=survivor).heartbeat_at
        _wait_for(
            "a heartbeat", lambda: SessionWorker.objects.get(worker_id=survivor).heartbeat_at > beat, 10
        )
        delivered = [m for m in sandbox.sent_to(peer) if m["id"] == message.wa_id]
        assert len(delivered) == 1 and delivered[0]["text"] == "during the gap"
        assert Message.objects.get(pk=message.pk).status in ("sent", "delivered", "read")

        # A graceful stop (SIGTERM) lets go of the device at once and says so.
        workers[survivor].send_signal(signal.SIGTERM)
        assert workers[survivor].wait(30) == 0
        assert not DeviceLease.objects.filter(device=device).exists()
        assert not SessionWorker.objects.filter(worker_id=survivor).exists()
        device.refresh_from_db()
        assert (device.status, device.status_reason) == ("disconnected", "session worker stopped")
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.mark.production
@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="needs PostgreSQL and Redis (DATABASE_URL and REDIS_URL)",
)
@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_device_moves_to_the_other_and_the_gap_message_goes_once(tmp_path, org):
    _failover(tmp_path, org)


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="the production variant runs instead")
@pytest.mark.django_db(transaction=True)
def test_failover_between_processes_sharing_the_sqlite_database(tmp_path, org):
    if connection.vendor != "sqlite" or settings.DATABASES["default"]["NAME"] == ":memory:":
        pytest.skip("needs the SQLite test database on a file")
    _failover(tmp_path, org)
