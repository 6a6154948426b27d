"""The embedded default: `manage.py serve` runs the task worker in its one process, and it delivers webhooks."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]

SETUP = textwrap.dedent(
    """
    from datetime import timedelta
    from django.utils import timezone
    from accounts.models import Organization
    from messaging import webhooks
    from messaging.models import WebhookDelivery

    org = Organization.objects.create(name="Embedded", slug="embedded")
    endpoint = webhooks.create_endpoint(organization=org, url="{url}", events=["message"])
    # Stored before this process starts, as if the previous run stopped before sending it: the task
    # worker's first look for stalled deliveries sends it.
    WebhookDelivery.objects.create(
        endpoint=endpoint, organization=org, event="message", body='{{"event":"message","payload":{{"id":"E1"}}}}',
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _interruptible() -> None:
    """In the child: Ctrl-C as a terminal gives it. A child inherits ignored and blocked signals, and in the full
    suite (after in-process task workers and servers) the server sometimes never saw the SIGINT below."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_serve_runs_the_task_worker_in_process(tmp_path, receiver):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        WAPORTAL_DATA_DIR=str(tmp_path / "data"), WEBHOOK_ALLOW_PRIVATE_TARGETS="true", WA_BACKEND="sandbox"
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=BASE_DIR, env=env, check=True, timeout=120)
    setup = SETUP.format(url=f"{receiver.url}/embedded")
    subprocess.run([*manage, "shell", "-c", setup], cwd=BASE_DIR, env=env, check=True, timeout=120)

    server = subprocess.Popen(
        [*manage, "serve", "--port", str(free_port())], cwd=BASE_DIR, env=env, preexec_fn=_interruptible
    )
    try:
        (request,) = receiver.wait_for(1, timeout=60)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    assert request.path == "/embedded"
    assert json.loads(request.body)["payload"]["id"] == "E1"
    assert request.headers["x-hub-signature-256"].startswith("sha256=")


def test_serve_under_cpu_load_loses_nothing_and_never_meets_database_is_locked():
    """The embedded default beside CPU burners, with concurrent clients and a second process writing to the same
    SQLite file: SQLite's own busy timeout is cut to 0.05 s, so any writer that waited at SQLite's door instead
    of the shared write lock would fail ("database is locked"). None does: no 5xx, no received event lost,
    every webhook delivered once."""
    from benchmarks import sqlite_load_bench

    result = sqlite_load_bench.run(
        calls=60,
        burners=2 * (os.cpu_count() or 2),
        clients=4,
        side_writers=1,
        side_seconds=10,
        settle=60,
        env_extra={"SQLITE_BUSY_TIMEOUT": "0.05"},
    )
    assert result["errors_5xx"] == 0, result
    assert result["locked"] == 0, result["log"]
    assert result["lost"] == 0, result["log"]
    assert result["side_writes"] > 0 and result["side_locked"] == 0, result
    assert result["deliveries"] == {"succeeded": result["stored"]} and result["stored"] > 60, result
    assert result["received"] == result["stored"], result  # each once
