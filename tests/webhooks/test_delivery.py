"""Webhooks reach a real HTTP receiver: signed, retried when it makes sense, in order, and only the tenant's own."""

import asyncio
import json
import socket
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from messaging import webhooks
from messaging.models import Device, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import make_organization
from tests.webhooks.conftest import make_device, receive_message
from tests.webhooks.receiver import Answer

pytestmark = pytest.mark.django_db(transaction=True)


def endpoint_for(organization, url, events=("message",), devices=(), **kwargs):
    return webhooks.create_endpoint(
        organization=organization, url=url, events=list(events), devices=devices, **kwargs
    )


def test_a_received_message_arrives_signed_with_the_contract_payload(
    allow_private, task_worker, receiver, attempt_log, org
):
    device = make_device(org)
    endpoint = endpoint_for(org, f"{receiver.url}/hook")
    msg_id = receive_message(device, "merhaba dünya")

    (request,) = receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    signature = request.headers["x-hub-signature-256"]
    assert signature.startswith("sha256=")
    assert webhooks.verify_signature(endpoint.secret, request.body, signature)
    assert not webhooks.verify_signature("another secret", request.body, signature)

    body = json.loads(request.body)
    assert body["event"] == "message"
    assert body["device_id"] == device.pk
    assert body["timestamp"].endswith("Z")
    payload = body["payload"]
    assert payload["id"] == msg_id
    assert payload["text"] == "merhaba dünya"
    assert payload["from"] == "905559990001@s.whatsapp.net"
    assert payload["from_name"] == "Ayşe"
    for key in (
        "chat_id",
        "timestamp",
        "media",
        "reaction",
        "reacted_message_id",
        "replied_to_id",
        "quoted_body",
    ):
        assert key in payload

    attempt_log.wait_final(1)
    delivery = WebhookDelivery.objects.get()
    assert request.headers["idempotency-key"] == str(delivery.idempotency_key)
    assert delivery.status == "succeeded" and delivery.attempts == 1


def test_500_twice_then_200_is_one_successful_delivery_after_three_attempts(
    allow_private, task_worker, receiver, attempt_log, org
):
    receiver.answer(Answer(status=500, body=b"boom"), Answer(status=503, body=b"busy"))
    device = make_device(org)
    endpoint_for(org, f"{receiver.url}/hook")
    receive_message(device)

    attempt_log.wait_final(1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded"
    assert delivery.attempts == 3
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [(a.number, a.status_code, a.succeeded) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert attempts[0].response_excerpt == "boom"
    assert attempts[0].retry_at is not None and attempts[2].retry_at is None
    requests = receiver.requests
    assert len(requests) == 3
    # The same body and key each time: a receiver can drop what it already has.
    assert len({r.body for r in requests}) == 1
    assert len({r.headers["idempotency-key"] for r in requests}) == 1
    assert [r.headers["x-webhook-attempt"] for r in requests] == ["1", "2", "3"]
    assert WebhookEndpoint.objects.get().consecutive_failures == 0


def test_404_is_not_retried(allow_private, task_worker, receiver, attempt_log, org):
    receiver.default = Answer(status=404, body=b"no such hook")
    device = make_device(org)
    endpoint_for(org, f"{receiver.url}/missing")
    receive_message(device)

    (attempt,) = attempt_log.wait_final(1)
    assert attempt.status_code == 404 and attempt.retry_at is None
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.attempts == 1
    assert len(receiver.requests) == 1


def test_429_waits_at_least_retry_after(allow_private, task_worker, receiver, attempt_log, org):
    receiver.answer(Answer(status=429, headers={"Retry-After": "1"}))
    device = make_device(org)
    endpoint_for(org, f"{receiver.url}/hook")
    receive_message(device)

    attempts = attempt_log.wait_final(1)
    first, second = sorted(attempts, key=lambda a: a.number)
    assert first.status_code == 429
    assert (first.retry_at - first.attempted_at) >= timedelta(seconds=1)
    assert second.succeeded and second.attempted_at >= first.retry_at - timedelta(milliseconds=50)


def test_network_errors_are_retried_and_a_receiver_that_stays_down_has_them_held(
    allow_private, task_worker, attempt_log, org, settings
):
    """Out of attempts while every attempt failed: the receiver is down, so the event is held (and the
    endpoint paused and probed), not given up."""
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    device = make_device(org)
    endpoint = endpoint_for(org, f"http://127.0.0.1:{port}/hook")
    receive_message(device)

    attempts = attempt_log.wait(lambda attempts: len(attempts) >= 3, what="3 attempts")
    assert all(a.status_code is None and a.error for a in attempts)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "retrying" and delivery.attempts == 3
    endpoint.refresh_from_db()
    assert endpoint.is_paused and endpoint.next_probe_at is not None


def test_a_private_target_is_refused_when_not_allowed(settings, org):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    for url in (
        "http://127.0.0.1:8000/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/",
        "http://localhost/",
    ):
        with pytest.raises(ValidationError) as exc_info:
            endpoint_for(org, url)
        assert "url" in exc_info.value.message_dict
    assert not WebhookEndpoint.objects.exists()


def test_a_target_that_became_private_is_refused_at_delivery_and_not_retried(
    settings, task_worker, receiver, attempt_log, org
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    device = make_device(org)
    endpoint_for(org, f"{receiver.url}/hook")
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    receive_message(device)

    (attempt,) = attempt_log.wait_final(1)
    assert attempt.status_code is None and "refused" in attempt.error
    assert receiver.requests == []
    assert WebhookDelivery.objects.get().status == "failed"


def test_another_organizations_events_never_reach_this_endpoint(
    allow_private, task_worker, receiver, attempt_log, org
):
    rival = make_organization("Rival")
    ours, theirs = make_device(org), make_device(rival)
    endpoint = endpoint_for(org, f"{receiver.url}/ours", events=list(webhooks.EVENT_NAMES.values()))
    # Even an endpoint naming the other organization's device does not get its events.
    endpoint.devices.add(theirs)
    endpoint.devices.remove(theirs)
    receive_message(theirs, "not for you")
    receive_message(ours, "for you")

    attempt_log.wait_final(1)
    assert WebhookDelivery.objects.filter(device=theirs).count() == 0
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["payload"]["text"] for b in bodies] == ["for you"]
    assert {b["device_id"] for b in bodies} == {ours.pk}


def test_create_endpoint_ignores_devices_of_another_organization(allow_private, org):
    rival = make_organization("Rival")
    theirs = make_device(rival)
    endpoint = endpoint_for(org, "http://127.0.0.1:9/hook", devices=[theirs])
    assert list(endpoint.devices.all()) == []


def test_only_chosen_events_and_devices_are_delivered(allow_private, task_worker, receiver, attempt_log, org):
    first, second = make_device(org, "First"), make_device(org, "Second")
    endpoint_for(org, f"{receiver.url}/first-only", devices=[first])
    endpoint_for(org, f"{receiver.url}/sent-only", events=["message.sent"])
    receive_message(second, "to second")
    receive_message(first, "to first")

    attempt_log.wait_final(1)
    assert [(r.path, json.loads(r.body)["payload"]["text"]) for r in receiver.requests] == [
        ("/first-only", "to first")
    ]


def test_events_of_one_device_arrive_in_order(allow_private, task_worker, receiver, attempt_log, org):
    device = make_device(org)
    endpoint_for(org, f"{receiver.url}/hook")
    texts = [f"message {i}" for i in range(8)]
    for text in texts:
        receive_message(device, text)

    attempt_log.wait_final(len(texts))
    assert [json.loads(r.body)["payload"]["text"] for r in receiver.requests] == texts


def test_nothing_is_sent_for_an_event_whose_transaction_rolled_back(
    allow_private, task_worker, receiver, org
):
    device = make_device(org)
    endpoint_for(org, f"{receiver.url}/hook")
    with pytest.raises(RuntimeError), transaction.atomic():
        webhooks.dispatch_event(device=device, event="message", payload={"id": "X"})
        raise RuntimeError("the event was not stored")
    assert not WebhookDelivery.objects.exists()


def test_internal_only_events_are_not_sent(allow_private, org):
    device = make_device(org)
    endpoint_for(org, "http://127.0.0.1:9/hook", events=list(webhooks.EVENT_NAMES.values()))
    with transaction.atomic():
        webhooks.dispatch_event(device=device, event="presence", payload={})
        webhooks.dispatch_event(device=device, event="device.pair_code", payload={})
    assert not WebhookDelivery.objects.exists()


def test_redeliver_sends_the_same_body_and_key_again(
    allow_private, task_worker, receiver, attempt_log, org, owner
):
    receiver.answer(Answer(status=400, body=b"bad"))
    device = make_device(org)
    endpoint_for(org, f"{receiver.url}/hook")
    receive_message(device)
    attempt_log.wait_final(1)
    original = WebhookDelivery.objects.get()
    assert original.status == "failed"

    again = webhooks.redeliver(organization=org, delivery=original, actor=owner)
    attempt_log.wait_final(2)
    again.refresh_from_db()
    assert again.status == "succeeded" and again.redelivery_of == original
    first, second = receiver.requests
    assert first.body == second.body
    assert (
        first.headers["idempotency-key"] == second.headers["idempotency-key"] == str(original.idempotency_key)
    )
    assert org.audit_events.filter(action="webhook.redeliver").exists()


def test_send_test_event(allow_private, task_worker, receiver, attempt_log, org, owner):
    endpoint = endpoint_for(org, f"{receiver.url}/hook", active=False)
    webhooks.send_test_event(organization=org, endpoint=endpoint, actor=owner)
    (request,) = receiver.wait_for(1)
    assert json.loads(request.body)["event"] == "webhook.test"
    assert webhooks.verify_signature(endpoint.secret, request.body, request.headers["x-hub-signature-256"])
    attempt_log.wait_final(1)


def test_a_rotated_secret_signs_what_is_sent_next(
    allow_private, task_worker, receiver, attempt_log, org, owner
):
    endpoint = endpoint_for(org, f"{receiver.url}/hook")
    old = endpoint.secret
    endpoint = webhooks.rotate_secret(organization=org, endpoint=endpoint, actor=owner)
    assert endpoint.secret != old
    receive_message(make_device(org))
    (request,) = receiver.wait_for(1)
    assert webhooks.verify_signature(endpoint.secret, request.body, request.headers["x-hub-signature-256"])
    attempt_log.wait_final(1)


def test_stalled_deliveries_are_picked_up_again(allow_private, task_worker, receiver, attempt_log, org):
    """A delivery whose task was lost (a restart of the embedded process, a broker outage) still goes out."""
    device = make_device(org)
    endpoint = endpoint_for(org, f"{receiver.url}/hook")
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        organization=org,
        event="message",
        device=device,
        body='{"event":"message"}',
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    assert webhooks.requeue_stalled() == 1
    attempt_log.wait_final(1)
    assert receiver.requests[0].body == b'{"event":"message"}'


def test_cleanup_forgets_old_delivery_logs_and_expired_qr_codes(org, settings):
    settings.WEBHOOK_LOG_RETENTION_DAYS = 7
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    device = make_device(org)
    Device.objects.filter(pk=device.pk).update(
        qr_code="2@abc", qr_expires_at=timezone.now() - timedelta(seconds=1)
    )
    fresh = make_device(org)
    Device.objects.filter(pk=fresh.pk).update(
        qr_code="2@def", qr_expires_at=timezone.now() + timedelta(minutes=1)
    )
    endpoint = endpoint_for(org, "http://127.0.0.1:9/hook")
    old = WebhookDelivery.objects.create(
        endpoint=endpoint,
        organization=org,
        event="message",
        body="{}",
        created_at=timezone.now() - timedelta(days=8),
    )
    WebhookAttempt.objects.create(delivery=old, number=1, status_code=200, succeeded=True)
    recent = WebhookDelivery.objects.create(endpoint=endpoint, organization=org, event="message", body="{}")

    assert webhooks.cleanup() == {"qr_codes": 1, "deliveries": 1}
    assert list(WebhookDelivery.objects.all()) == [recent]
    assert not WebhookAttempt.objects.exists()
    assert Device.objects.get(pk=device.pk).qr_code == ""
    assert Device.objects.get(pk=fresh.pk).qr_code == "2@def"


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3600
    for attempt, full in [(1, 10), (2, 20), (3, 40), (8, 1280), (20, 3600)]:
        delays = {webhooks.backoff_seconds(attempt) for _ in range(20)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jittered
    assert webhooks.backoff_seconds(1, retry_after=120) >= 120
    assert webhooks.backoff_seconds(1, retry_after=10**6) == 3600
    assert webhooks.parse_retry_after("30") == 30
    assert (
        50
        <= webhooks.parse_retry_after(
            (timezone.now() + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        )
        <= 61
    )
    assert webhooks.parse_retry_after("soon") is None


def test_a_media_messages_delivery_is_stored_with_it_and_sent_once_the_media_is_in(
    allow_private, task_worker, receiver, attempt_log, org
):
    """Stored with the message (a worker that dies while downloading cannot lose it), held until the media is
    stored so the body names it, and what came after it waits behind it."""
    import threading

    from asgiref.sync import async_to_sync

    from messaging import events
    from messaging.whatsapp import protocol

    device = make_device(org)
    endpoint = endpoint_for(org, f"{receiver.url}/hook", events=("message",))
    downloading, finish = threading.Event(), threading.Event()

    async def download(ref):
        downloading.set()
        await asyncio.to_thread(finish.wait, 10)
        return b"\x89PNG\r\n\x1a\n" + b"0" * 64

    sender = "905559990001@s.whatsapp.net"
    image = protocol.IncomingMessage(
        id="IMG1",
        chat=sender,
        sender=sender,
        kind=protocol.MessageKind.IMAGE,
        caption="fatura",
        media=protocol.MediaInfo(mime_type="image/png", size=72, filename="fatura.png", ref={"k": 1}),
    )
    handling = threading.Thread(
        target=async_to_sync(events.handle),
        args=(protocol.MessageEvent(device_id=device.pk, message=image),),
        kwargs={"download": download},
    )
    handling.start()
    assert downloading.wait(10)
    held = WebhookDelivery.objects.get(endpoint=endpoint)  # already stored, while the media downloads
    assert held.held_until is not None and json.loads(held.body)["payload"]["id"] == "IMG1"
    receive_message(device, "after the image")  # its delivery waits behind the held one
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2
    assert webhooks.claim_next(endpoint.pk, device.pk) is None

    finish.set()
    handling.join(10)
    first, second = receiver.wait_for(2)
    image_body, text_body = json.loads(first.body), json.loads(second.body)
    assert image_body["payload"]["id"] == "IMG1" and image_body["payload"]["media"]["url"]
    assert text_body["payload"]["text"] == "after the image"


def test_a_held_delivery_goes_as_it_is_once_its_hold_has_passed(allow_private, org, monkeypatch):
    """The worker died before the media was in: the delivery still goes, and unblocks its queue."""
    enqueued = []
    monkeypatch.setattr(
        webhooks.queueing, "enqueue", lambda endpoint_id, device_id, **kw: enqueued.append(device_id)
    )
    device = make_device(org)
    endpoint = endpoint_for(org, "http://127.0.0.1:9/hook", events=("message",))
    with transaction.atomic():
        (held,) = webhooks.dispatch_event(
            device=device, event="message", payload={"id": "A"}, hold_seconds=60
        )
    assert webhooks.claim_next(endpoint.pk, device.pk) is None
    WebhookDelivery.objects.filter(pk=held).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    assert webhooks.requeue_stalled() == 0 and enqueued == []  # still held: nothing to do yet
    WebhookDelivery.objects.filter(pk=held).update(held_until=timezone.now() - timedelta(seconds=1))
    assert webhooks.requeue_stalled() == 1 and enqueued == [device.pk]
    assert webhooks.claim_next(endpoint.pk, device.pk).pk == held


def test_sent_and_failed_deliveries_are_stored_with_the_status_they_report(allow_private, org, monkeypatch):
    """The worker writes `sent` or `failed` and the webhook deliveries in one transaction: no publish step is
    needed for them to exist, so a worker that dies right after the commit cannot lose them."""
    from messaging.models import Chat, Message
    from messaging.services import outbox
    from messaging.whatsapp import protocol

    enqueued = []
    monkeypatch.setattr(
        webhooks.queueing, "enqueue", lambda endpoint_id, device_id, **kw: enqueued.append(device_id)
    )
    device = make_device(org)
    endpoint = endpoint_for(org, "http://127.0.0.1:9/hook", events=("message.sent", "message.failed"))
    chat = Chat.objects.create(organization=org, device=device, jid="905551112233@s.whatsapp.net")
    for wa_id in ("3EB0SENT0001", "3EB0FAIL0002"):
        Message.objects.create(
            organization=org,
            device=device,
            chat=chat,
            wa_id=wa_id,
            from_me=True,
            kind="text",
            text=wa_id,
            status="queued",
            timestamp=timezone.now(),
        )

    (_, _, first), (second_pk, _, _) = outbox.claim_batch(device.pk)
    outcomes, following = outbox.sent_and_claim_next(
        [(first, protocol.SendResult(id=first.wa_id, timestamp=0))], device.pk, claim=False
    )
    assert [o.name for o in outcomes] == ["message.sent"] and not outcomes[
        0
    ].webhook  # nothing left to dispatch
    assert following == []
    sent = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (sent.event, json.loads(sent.body)["payload"]["id"]) == ("message.sent", "3EB0SENT0001")

    failed = outbox.mark_failed(second_pk, "905551112233 is not on WhatsApp")
    assert [o.name for o in failed] == ["message.failed"]
    body = json.loads(WebhookDelivery.objects.get(endpoint=endpoint, event="message.failed").body)
    assert (
        body["payload"]["id"] == "3EB0FAIL0002"
        and body["payload"]["error"] == "905551112233 is not on WhatsApp"
    )
    assert outbox.mark_failed(second_pk, "again") == []  # already failed: no second event
    assert enqueued == [device.pk, device.pk]  # each queued for delivery once its write committed
