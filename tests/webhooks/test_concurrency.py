"""Throughput without head-of-line blocking: batches in order, recorded together, a cap of queues in flight per
endpoint, one nudge per queue and transaction."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from messaging import webhooks
from messaging.models import WebhookDelivery
from messaging.webhooks import claiming, delivery, queueing, recording
from tests.webhooks.conftest import make_device
from tests.webhooks.receiver import Answer


@pytest.fixture
def no_tasks(monkeypatch):
    """Record what would be enqueued instead of running it: these tests drive the queues themselves."""
    calls = []
    monkeypatch.setattr(
        queueing,
        "enqueue",
        lambda endpoint_id, device_id, **kw: calls.append((endpoint_id, device_id)),
    )
    return calls


def dispatch(device, n, prefix="m"):
    return webhooks.dispatch_event(device=device, event="message", payload={"id": f"{prefix}{n}"})


@pytest.mark.django_db(transaction=True)
def test_a_batch_goes_in_order_and_a_failure_gives_the_rest_back(allow_private, receiver, org, no_tasks):
    allow_private.WEBHOOK_CLAIM_BATCH = 10
    allow_private.WEBHOOK_RETRY_BASE_SECONDS = 3600  # the failed one waits: the others must not
    device = make_device(org)
    endpoint = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/hook", events=["message"])
    ids = [dispatch(device, n)[0] for n in range(6)]
    receiver.script.extend([Answer(200), Answer(503)])

    assert webhooks.drain(endpoint.pk, device.pk) == 6

    arrived = [json.loads(r.body)["payload"]["id"] for r in receiver.requests]
    assert arrived == [f"m{n}" for n in range(6)]  # in order, the failed one not holding the others back
    rows = {d.pk: d for d in WebhookDelivery.objects.filter(pk__in=ids)}
    assert rows[ids[1]].status == "retrying" and rows[ids[1]].attempts == 1
    # Given back after the failure and claimed again: one attempt each, not two.
    assert all(rows[i].status == "succeeded" and rows[i].attempts == 1 for i in ids if i != ids[1])
    assert all(rows[i].attempt_log.count() == 1 for i in ids)


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_at_its_cap_is_skipped_and_its_queue_taken_over_in_turn(
    allow_private, receiver, org, no_tasks
):
    """A slow receiver holds at most WEBHOOK_ENDPOINT_CONCURRENCY queues (task workers); another endpoint's
    queues are claimed meanwhile, and a queue held back by the cap is sent by the next sender that is free,
    without polling."""
    allow_private.WEBHOOK_ENDPOINT_CONCURRENCY = 2
    slow = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/slow", events=["message"])
    devices = [make_device(org) for _ in range(3)]
    for n, device in enumerate(devices):
        dispatch(device, n)
    first, second = (webhooks.claim_batch(slow.pk, d.pk, limit=5) for d in devices[:2])
    assert len(first) == 1 and len(second) == 1
    assert webhooks.claim_batch(slow.pk, devices[2].pk, limit=5) == claiming.AT_CAP
    assert webhooks.drain(slow.pk, devices[2].pk) == 0  # the task leaves at once
    assert WebhookDelivery.objects.get(endpoint=slow, device=devices[2]).status == "pending"  # untouched

    fast = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/fast", events=["message"])
    dispatch(devices[2], 9)
    assert len(webhooks.claim_batch(fast.pk, devices[2].pk, limit=5)) == 1  # another endpoint is not held

    # The first sender's queue is done: it takes the held-back queue over.
    webhooks.record(first[0], webhooks.Outcome(status_code=200))
    no_tasks.clear()
    assert webhooks.drain(slow.pk, devices[0].pk) == 2
    assert [json.loads(r.body)["payload"]["id"] for r in receiver.requests] == ["m2", "m9"]  # in order
    assert set(
        WebhookDelivery.objects.filter(endpoint=slow, device=devices[2]).values_list("status", flat=True)
    ) == {"succeeded"}
    assert no_tasks == []  # nothing polled


@pytest.mark.django_db(transaction=True)
def test_many_events_in_one_transaction_enqueue_one_drain_per_queue(allow_private, org, no_tasks):
    endpoint = webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/hook", events=["message"])
    devices = [make_device(org) for _ in range(2)]
    with transaction.atomic():
        for n in range(10):
            dispatch(devices[n % 2], n)
    assert sorted(no_tasks) == sorted((endpoint.pk, d.pk) for d in devices)
    with transaction.atomic():
        dispatch(devices[0], 99)
        transaction.set_rollback(True)
    assert len(no_tasks) == 2  # a rolled-back event enqueues nothing
    dispatch(devices[0], 100)
    assert len(no_tasks) == 3  # and the next transaction's event still does


@pytest.mark.django_db(transaction=True)
def test_a_batch_is_recorded_at_once_and_a_crash_before_that_sends_it_again_with_the_same_keys(
    allow_private, receiver, org, no_tasks, monkeypatch
):
    """Recording a batch's successes together must not lose them: a sender killed after sending and before
    recording leaves them claimed, and once the claim lapses they go again, each with its Idempotency-Key."""
    allow_private.WEBHOOK_CLAIM_BATCH = 10
    monkeypatch.setattr(delivery, "RECORD_EVERY_SECONDS", 60)  # however slow the machine, one recording
    device = make_device(org)
    endpoint = webhooks.create_endpoint(organization=org, url=f"{receiver.url}/hook", events=["message"])
    ids = [dispatch(device, n)[0] for n in range(5)]
    real_record, recordings = recording.record_batch, []

    def killed(sent):
        recordings.append([d.pk for d, _ in sent])
        raise SystemExit("the worker was killed")  # not an error the drain retries

    monkeypatch.setattr(recording, "record_batch", killed)
    with pytest.raises(SystemExit):
        webhooks.drain(endpoint.pk, device.pk)
    assert recordings == [ids] and len(receiver.requests) == 5  # all sent, one recording of them all
    rows = WebhookDelivery.objects.filter(pk__in=ids)
    assert {d.status for d in rows} == {"sending"} and not any(d.attempt_log.exists() for d in rows)
    assert webhooks.drain(endpoint.pk, device.pk) == 0  # still claimed: not sent twice meanwhile

    later = max(d.locked_until for d in rows) + timedelta(milliseconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    monkeypatch.setattr(recording, "record_batch", real_record)
    assert webhooks.requeue_stalled() == 1
    assert webhooks.drain(endpoint.pk, device.pk) == 5

    arrived = [json.loads(r.body)["payload"]["id"] for r in receiver.requests]
    assert arrived == [f"m{n}" for n in range(5)] * 2  # again, in order
    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert keys[:5] == keys[5:] == [str(d.idempotency_key) for d in rows.order_by("id")]
    rows = WebhookDelivery.objects.filter(pk__in=ids)
    assert all(d.status == "succeeded" and d.attempts == 2 for d in rows)
    assert all(d.attempt_log.count() == 1 for d in rows)
