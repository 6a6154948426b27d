"""/metrics: hidden without METRICS_TOKEN, refused without the right one, and the product's state in gauges."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.models import (
    Chat,
    Device,
    DeviceStatus,
    Message,
    MessageStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from messaging.models.device import SessionWorker
from tests.conftest import make_organization

TOKEN = "s3cret-scrape-token"


def scrape(token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return Client().get("/metrics", headers=headers)


def gauges(body: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("waportal_") and not line.startswith("#")
    }


def fill(org, *, queued_minutes: int = 5) -> None:
    """A tenant with a connected and a logged-out number, two sends waiting, a webhook backlog and a failure."""
    connected = Device.objects.create(organization=org, name="A", status=DeviceStatus.CONNECTED)
    Device.objects.create(organization=org, name="B", status=DeviceStatus.LOGGED_OUT)
    chat = Chat.objects.create(organization=org, device=connected, jid="905551112233@s.whatsapp.net")
    for n in range(2):
        Message.objects.create(
            organization=org,
            device=connected,
            chat=chat,
            wa_id=f"3EB0{org.pk}X{n}",
            from_me=True,
            text="later",
            status=MessageStatus.QUEUED,
            created_at=timezone.now() - timedelta(minutes=queued_minutes * (n + 1)),
        )
    endpoint = WebhookEndpoint.objects.create(
        organization=org, url="https://hooks.example.com/x", paused_at=timezone.now()
    )
    for status in ("pending", "retrying", "failed", "succeeded"):
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            organization=org,
            event="message",
            device=connected,
            body="{}",
            status=status,
            created_at=timezone.now() - timedelta(minutes=30),
        )


@pytest.mark.django_db
def test_without_a_token_configured_there_is_no_metrics_endpoint(settings):
    settings.METRICS_TOKEN = ""
    assert scrape().status_code == 404


@pytest.mark.django_db
def test_a_missing_or_wrong_token_is_refused(settings):
    settings.METRICS_TOKEN = TOKEN
    for token in (None, "wrong", TOKEN + "x", ""):
        answer = scrape(token)
        assert answer.status_code == 401, token
        assert b"waportal_" not in answer.content


@pytest.mark.django_db
def test_the_gauges_say_the_state_of_every_tenant(settings, org, other_org):
    settings.METRICS_TOKEN = TOKEN
    fill(org, queued_minutes=5)
    fill(other_org, queued_minutes=1)
    SessionWorker.objects.create(worker_id="live", heartbeat_at=timezone.now())
    SessionWorker.objects.create(worker_id="dead", heartbeat_at=timezone.now() - timedelta(hours=1))

    answer = scrape()
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    got = gauges(answer.content.decode())
    assert got['waportal_devices{status="connected"}'] == 2
    assert got['waportal_devices{status="logged_out"}'] == 2
    assert got['waportal_outbox_messages{status="queued"}'] == 4
    assert 600 <= got['waportal_outbox_oldest_age_seconds{status="queued"}'] < 700  # 10 minutes
    assert got['waportal_webhook_deliveries{status="pending"}'] == 2
    assert got['waportal_webhook_deliveries{status="retrying"}'] == 2
    assert got['waportal_webhook_deliveries{status="failed"}'] == 2
    assert 1800 <= got["waportal_webhook_backlog_oldest_age_seconds"] < 1900
    assert got["waportal_webhook_endpoints_paused"] == 2
    assert got["waportal_session_workers"] == 1
    # requests are counted (this scrape's own shows up on the next one)
    assert any(name.startswith("waportal_http_requests_total{") for name in gauges(scrape().content.decode()))


@pytest.mark.django_db
def test_a_scrape_costs_the_same_queries_for_two_tenants_or_twenty(settings, org, other_org):
    settings.METRICS_TOKEN = TOKEN
    fill(org)
    with CaptureQueriesContext(connection) as few:
        assert scrape().status_code == 200
    for _ in range(18):
        fill(make_organization())
    with CaptureQueriesContext(connection) as many:
        assert scrape().status_code == 200
    assert len(many) == len(few) <= 10
