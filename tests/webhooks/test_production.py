"""The production task path: a real `celery -A waportal worker` process on Redis delivers a webhook."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from messaging import webhooks
from messaging.models import WebhookDelivery
from tests.webhooks.conftest import make_device, receive_message

BASE_DIR = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    """The test database, as a URL the worker process can open (it runs in another process)."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs a database it can open: run with DATABASE_URL (PostgreSQL)")
    auth = db["USER"] or ""
    if db["PASSWORD"]:
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.production
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the production broker)")
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_process_delivers_a_webhook(settings, receiver, org):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    # A queue of our own: other workers on the same Redis must not take this test's tasks.
    settings.WEBHOOK_TASK_QUEUE = queue = f"webhooks-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "CELERY_BROKER_URL": str(settings.CELERY_BROKER_URL),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "waportal",
            "worker",
            "-Q",
            queue,
            "--pool",
            "threads",
            "-c",
            "2",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"{queue}@%h",
        ],
        cwd=BASE_DIR,
        env=env,
    )
    try:
        device = make_device(org)
        endpoint = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/prod", events=["message"])
        msg_id = receive_message(device, "via redis")

        (request,) = receiver.wait_for(1, timeout=60)
        assert webhooks.verify_signature(
            endpoint.secret, request.body, request.headers["x-hub-signature-256"]
        )
        assert json.loads(request.body)["payload"]["id"] == msg_id
    finally:
        # Warm shutdown: the worker finishes the task in hand (recording the attempt) before it exits.
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert delivery.attempt_log.get().status_code == 200
