"""A claim reads what is still to send, not the log: with thousands of sent deliveries kept, every query of a
claim and of the choice of the next queue goes through the index of unfinished ones (webhook_unfinished).
Before it, SQLite walked every delivery of the endpoint: 35 ms a claim after an hour of a 20-number soak."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.models import WebhookDelivery
from messaging.webhooks import claiming, create_endpoint
from tests.pages.conftest import make_device

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="the plans are SQLite's; PostgreSQL has statistics"
    ),
]


def test_claims_and_the_queue_choice_read_only_the_unfinished_deliveries(org, allow_private):
    devices = [make_device(org, status="connected") for _ in range(3)]
    endpoint = create_endpoint(organization=org, url="http://127.0.0.1:9/hook", events=["message"])
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint=endpoint,
            organization=org,
            device=devices[n % 3],
            event="message",
            body="{}",
            status="succeeded" if n < 3000 else "pending",
            created_at=now - timedelta(minutes=1),
            next_attempt_at=now - timedelta(minutes=1),
        )
        for n in range(3010)
    )
    with CaptureQueriesContext(connection) as queries:
        assert claiming.waiting_queue(endpoint.pk, besides=set()) is not None
        assert claiming.claim_batch(endpoint.pk, devices[0].pk, limit=16)
    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if query["sql"].startswith("SELECT") and "messaging_webhookdelivery" in query["sql"]:
                cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
                plans += [
                    row[3]
                    for row in cursor.fetchall()
                    if "messaging_webhookdelivery" in row[3] or " U0 " in row[3]
                ]
    assert plans
    assert all("webhook_unfinished" in plan for plan in plans), plans
