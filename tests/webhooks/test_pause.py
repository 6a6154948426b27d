"""A pause loses nothing: events of a paused or failing endpoint are stored and held, the endpoint pauses after
failing for a time (not a number of attempts), is probed, resumes by itself, and a dead sender's claim lapses."""

import json
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging import webhooks
from messaging.models import WebhookDelivery, WebhookEndpoint
from messaging.webhooks.wire import Outcome
from tests.webhooks.conftest import make_device, receive_message
from tests.webhooks.receiver import Answer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_pauses(settings):
    """The production schedule, shrunk: retries in tens of milliseconds, a pause after 2 s of failing, a
    probe every half second."""
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.05
    settings.WEBHOOK_RETRY_MAX_SECONDS = 0.3
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    settings.WEBHOOK_PAUSE_AFTER_HOURS = 2 / 3600
    settings.WEBHOOK_PROBE_SECONDS = 0.5
    return settings


def message_id(request) -> str:
    return json.loads(request.body)["payload"]["id"]


def test_a_receiver_down_during_300_events_gets_each_of_them_once(
    allow_private, task_worker, short_pauses, receiver, attempt_log, org
):
    device = make_device(org)
    endpoint = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/hook", events=["message"])
    sent = [receive_message(device, f"up {n}") for n in range(100)]

    receiver.default = Answer(status=503, body=b"down for maintenance")
    sent += [receive_message(device, f"going down {n}") for n in range(100)]
    attempt_log.wait(
        lambda attempts: WebhookEndpoint.objects.filter(pk=endpoint.pk, paused_at__isnull=False).exists(),
        timeout=60,
        what="the endpoint to pause",
    )
    sent += [receive_message(device, f"while paused {n}") for n in range(100)]
    # Stored while paused, not dropped.
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 300

    receiver.default = Answer(status=200)
    requests = receiver.wait_until(
        lambda requests: len({message_id(r) for r in requests if r.status == 200}) >= 300,
        timeout=90,
        what="all 300 events answered 200",
    )
    delivered = Counter(message_id(r) for r in requests if r.status == 200)
    assert set(delivered) == set(sent)
    assert set(delivered.values()) == {1}  # none twice
    attempt_log.wait_final(300, timeout=30)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}

    endpoint.refresh_from_db()
    assert not endpoint.is_paused and endpoint.failing_since is None  # resumed by itself
    assert org.audit_events.filter(action="webhook.pause").exists()
    assert org.audit_events.filter(action="webhook.resume").exists()
    # After the probe that got through, what was held went out oldest first.
    after_resume = [message_id(r) for r in requests if r.status == 200][101:]
    assert after_resume == sorted(after_resume, key=sent.index)


def test_a_backlog_of_failures_does_not_pause_an_endpoint_before_its_time(
    allow_private, task_worker, fast_retries, receiver, attempt_log, org, settings
):
    settings.WEBHOOK_MAX_ATTEMPTS = 10
    settings.WEBHOOK_PAUSE_AFTER_HOURS = 1
    receiver.default = Answer(status=500)
    device = make_device(org)
    endpoint = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/hook", events=["message"])
    for n in range(15):
        receive_message(device, f"m{n}")

    attempt_log.wait(lambda attempts: len(attempts) >= 40, timeout=30, what="40 failed attempts")
    endpoint.refresh_from_db()
    assert not endpoint.is_paused and endpoint.failing_since is not None
    assert endpoint.consecutive_failures >= 40

    # Failing for more than the hour: the next failed attempt pauses it.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(hours=1, seconds=1)
    )
    seen = len(attempt_log.attempts)
    attempt_log.wait(lambda attempts: len(attempts) > seen, what="one more attempt")
    endpoint.refresh_from_db()
    assert endpoint.is_paused and "every attempt failed for" in endpoint.pause_reason
    # Nothing given up: every event is still to be delivered.
    assert not WebhookDelivery.objects.filter(status="failed").exists()


def test_a_paused_endpoint_holds_its_events_and_resume_sends_them_in_order(
    allow_private, task_worker, receiver, attempt_log, org, owner
):
    device = make_device(org)
    endpoint = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/hook", events=["message"])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        paused_at=timezone.now(),
        failing_since=timezone.now(),
        next_probe_at=timezone.now() + timedelta(hours=1),
    )
    texts = [f"held {n}" for n in range(5)]
    for text in texts:
        receive_message(device, text)
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 5
    assert webhooks.claim_next(endpoint.pk, device.pk) is None  # held until its probe is due

    webhooks.resume_endpoint(organization=org, endpoint=endpoint, actor=owner)
    requests = receiver.wait_for(5)
    assert [json.loads(r.body)["payload"]["text"] for r in requests] == texts
    attempt_log.wait_final(5)


def test_a_dead_senders_claim_lapses_within_the_timeout_plus_five_seconds(
    allow_private, org, settings, monkeypatch
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 10
    monkeypatch.setattr(webhooks.queueing, "enqueue", lambda *args, **kwargs: None)
    device = make_device(org)
    endpoint = webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/hook", events=["message"])
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, organization=org, event="message", device=device, body="{}"
    )
    before = timezone.now()
    dead = webhooks.claim_next(endpoint.pk, device.pk)
    assert dead.pk == delivery.pk
    assert dead.locked_until <= before + timedelta(seconds=15, milliseconds=500)
    assert webhooks.claim_next(endpoint.pk, device.pk) is None  # in flight

    later = dead.locked_until + timedelta(milliseconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert webhooks.requeue_stalled() == 1
    again = webhooks.claim_next(endpoint.pk, device.pk)
    assert again.pk == delivery.pk and again.attempts == 2
    # The worker thought dead answers late: its result must not overwrite the new sender's claim.
    assert webhooks.record(dead, Outcome(status_code=500, error="")) is None
    delivery.refresh_from_db()
    assert delivery.status == "sending" and delivery.attempts == 2
    assert webhooks.record(again, Outcome(status_code=200)) is not None
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"


def test_an_attempt_the_database_refused_to_record_is_recorded_again_not_sent_again(
    allow_private, receiver, org, monkeypatch
):
    from django.db import OperationalError

    monkeypatch.setattr(webhooks.queueing, "enqueue", lambda *args, **kwargs: None)
    monkeypatch.setattr(webhooks.delivery, "RECORD_RETRY_DELAYS", (0.01,))
    real_record, refused = webhooks.recording.record_batch, []

    def busy_once(sent):
        if not refused:
            refused.extend(delivery.pk for delivery, _ in sent)
            raise OperationalError("database is locked")
        return real_record(sent)

    monkeypatch.setattr(webhooks.recording, "record_batch", busy_once)
    device = make_device(org)
    endpoint = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/hook", events=["message"])
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, organization=org, event="message", device=device, body="{}"
    )

    assert webhooks.drain(endpoint.pk, device.pk) == 1
    assert refused == [delivery.pk] and len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 1
