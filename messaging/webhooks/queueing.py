"""Webhook queues: an event stored as one delivery per matching endpoint, the drain task enqueued, stalled
queues picked up again, old logs forgotten.

`dispatch_event` is the one entry point the event handler calls, inside its transaction: it stores one
WebhookDelivery per matching endpoint and, once the transaction commits, enqueues a Celery task (by name, so
that this module does not import the tasks module that imports it). A queue is one (endpoint, device).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messaging.webhooks import peer
from messaging.webhooks.wire import setting

logger = logging.getLogger(__name__)

TEST_EVENT = "webhook.test"
# The Celery task that drains one (endpoint, device) queue (messaging.webhooks.tasks), enqueued by name so
# that this module does not import the tasks module that imports it.
DELIVER_TASK = "messaging.deliver_webhooks"

# Our internal event names (messaging.events) -> the public names of the webhook contract (WEBHOOK_EVENTS).
# Internal events missing here (device.status, device.pair_code, presence (online/offline)...) are not sent to webhooks.
EVENT_NAMES = {
    "message": "message",
    "message.sent": "message.sent",
    "message.failed": "message.failed",
    "message.unknown": "message.unknown",
    "message.receipt": "message.receipt",
    "message.edited": "message.edited",
    "message.revoked": "message.revoked",
    "message.reaction": "message.reaction",
    "chat.presence": "chat.presence",
    "message.poll_vote": "message.poll_vote",
    "group.participants": "group.participants",
    "group.settings": "group.settings",
    "group.join_request": "group.join_request",
    "device.connected": "device.connected",
    "device.disconnected": "device.disconnected",
    "device.logged_out": "device.logged_out",
    "device.qr": "device.qr",
    "history.synced": "history.synced",
    "call.offer": "call.offer",
    "label.edit": "label.edit",
    "label.association": "label.association",
}


def matching_endpoints(device, public_event: str):
    from messaging.models import WebhookEndpoint

    endpoints = (
        # A paused endpoint still gets its events stored: they are held until it answers again.
        WebhookEndpoint.objects.filter(organization_id=device.organization_id, active=True)
        .filter(Q(devices__isnull=True) | Q(devices=device))
        .distinct()
    )
    return [endpoint for endpoint in endpoints if endpoint.wants(public_event)]


def dispatch_event(*, device, event: str, payload: dict, hold_seconds: float | None = None) -> list[int]:
    """Record and enqueue a delivery of `event` (e.g. "message") with `payload` to each matching endpoint.

    Called inside the caller's transaction: the deliveries are stored with it and the tasks are
    enqueued only once it commits (a rolled-back event sends nothing). With `hold_seconds` they are held
    (and their queues wait behind them) until `release_held`, or until that time has passed. Returns the
    ids of the deliveries.
    """
    from messaging.models import WebhookDelivery

    public = EVENT_NAMES.get(event)
    if public is None:
        return []
    endpoints = matching_endpoints(device, public)
    if not endpoints:
        return []
    now = timezone.now()
    rendered: dict[str, tuple[str, str]] = {}  # by payload format: (the event's name in it, the body)
    held_until = now + timedelta(seconds=hold_seconds) if hold_seconds else None
    deliveries = []
    for endpoint in endpoints:
        fmt = endpoint.payload_format
        if fmt not in rendered:
            rendered[fmt] = peer.render_in(fmt, event=public, device=device, payload=payload, at=now)
        name, body = rendered[fmt]
        deliveries.append(
            WebhookDelivery(
                endpoint=endpoint,
                organization_id=device.organization_id,
                event=name,  # as the body names it (the peer's name for a peer-format endpoint)
                device=device,
                body=body,
                created_at=now,
                next_attempt_at=now,
                held_until=held_until,
            )
        )
    # One INSERT for all the endpoints (SQLite and PostgreSQL give the new ids back).
    WebhookDelivery.objects.bulk_create(deliveries)
    if held_until is None:
        for endpoint in endpoints:
            enqueue_on_commit(endpoint.pk, device.pk)
    return [delivery.pk for delivery in deliveries]


def release_held(delivery_ids: list[int], payload: dict | None = None) -> None:
    """Let held deliveries go, with `payload` (the message as stored now, media and all) in their bodies."""
    from messaging.models import WebhookDelivery

    if not delivery_ids:
        return
    with transaction.atomic():
        held = list(
            WebhookDelivery.objects.filter(pk__in=delivery_ids, held_until__isnull=False).select_related(
                "endpoint"
            )
        )
        for delivery in held:
            if payload is not None and delivery.endpoint.payload_format == peer.PEER_FORMAT:
                delivery.body = peer.rerender_payload(delivery.body, "message", payload)
            elif payload is not None:
                body = json.loads(delivery.body)
                body["payload"] = payload
                delivery.body = json.dumps(
                    body, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")
                )
            delivery.held_until = None
            delivery.save(update_fields=["body", "held_until", "updated_at"])
            enqueue_on_commit(delivery.endpoint_id, delivery.device_id)


# The drains enqueued in this process and not started yet, when this process also runs them (the embedded
# default's memory broker): one waiting drain per queue is enough, since it sends all that is due when it starts.
# Without this, every event enqueued a drain; the in-process worker ran them slower than 25 events a second
# came (most found nothing left to send), and the broker's queue grew without end (the soak: +2 MB a minute).
# A mark older than WAITING_STALE_SECONDS is not trusted (a drain lost with a worker stopped and started again in
# the same process): the queue gets another drain.
WAITING_STALE_SECONDS = 10.0
_waiting: dict[tuple[int, int | None], float] = {}
_waiting_lock = threading.Lock()


def _in_process_broker() -> bool:
    from waportal.tasks_embedded import uses_memory_broker

    return uses_memory_broker()


def enqueue(endpoint_id: int, device_id: int | None, *, countdown: float | None = None) -> None:
    """Ask the task worker to drain this (endpoint, device) queue. A broker failure is only logged: the
    delivery is stored, and `requeue_stalled` picks up what was never enqueued."""
    from waportal.celery import app

    key = (endpoint_id, device_id)
    coalesce = not countdown and _in_process_broker()  # (a retry later is its own drain)
    if coalesce:
        now = time.monotonic()
        with _waiting_lock:
            if now - _waiting.get(key, -WAITING_STALE_SECONDS) < WAITING_STALE_SECONDS:
                return  # the drain waiting to start will send this too
            _waiting[key] = now
    # WEBHOOK_TASK_QUEUE: a dedicated queue (workers started with -Q); unset, Celery's default queue.
    queue = setting("WEBHOOK_TASK_QUEUE", None) or None
    try:
        app.send_task(DELIVER_TASK, (endpoint_id, device_id), countdown=countdown, queue=queue)
    except Exception:
        if coalesce:
            draining(endpoint_id, device_id)
        logger.exception("could not enqueue webhook delivery for endpoint %s", endpoint_id)


def draining(endpoint_id: int, device_id: int | None) -> None:
    """A drain of this queue starts (before it claims anything): a delivery stored from now on needs a new one."""
    with _waiting_lock:
        _waiting.pop((endpoint_id, device_id), None)


def enqueue_on_commit(endpoint_id: int, device_id: int | None) -> None:
    """Once committed, a drain of this queue: one per queue and transaction (a batch of events stored
    together needs one), and none while the queue's sender is at work (it claims again after each batch,
    in a transaction that begins after ours committed, so it sees what we stored)."""
    from django.db import connection

    key = (endpoint_id, device_id)
    savepoints = set(connection.savepoint_ids)
    if connection.in_atomic_block and any(
        getattr(callback, "webhook_queue", None) == key and sids == savepoints
        for sids, callback, _robust in connection.run_on_commit
    ):
        return

    def nudge() -> None:
        if not _sender_at_work(endpoint_id, device_id):
            enqueue(endpoint_id, device_id)

    nudge.webhook_queue = key
    transaction.on_commit(nudge)


def _sender_at_work(endpoint_id: int, device_id: int | None) -> bool:
    from messaging.models import WebhookDelivery, WebhookDeliveryStatus
    from messaging.models.webhook import UNFINISHED

    return WebhookDelivery.objects.filter(
        UNFINISHED,
        key_filter(endpoint_id, device_id),
        status=WebhookDeliveryStatus.SENDING,
        locked_until__gt=timezone.now(),
    ).exists()


def key_filter(endpoint_id: int, device_id: int | None) -> Q:
    return Q(endpoint_id=endpoint_id) & (
        Q(device__isnull=True) if device_id is None else Q(device_id=device_id)
    )


def enqueue_waiting_on_commit(endpoint) -> None:
    """Once committed, a drain of each of the endpoint's queues that has something waiting."""
    for device_id in set(
        endpoint.deliveries.filter(status__in=["pending", "retrying"]).values_list("device_id", flat=True)
    ):
        enqueue_on_commit(endpoint.pk, device_id)


def requeue_stalled() -> int:
    """Enqueue a drain for every queue with due work nobody is working on (lost tasks, dead senders,
    a broker that was down, the in-memory queue of a restarted embedded process)."""
    from messaging.models import WebhookDelivery, WebhookDeliveryStatus
    from messaging.models.webhook import UNFINISHED

    S = WebhookDeliveryStatus
    now = timezone.now()
    keys = (
        WebhookDelivery.objects.filter(
            UNFINISHED,
            Q(status__in=[S.PENDING, S.RETRYING], next_attempt_at__lte=now - timedelta(seconds=30))
            | Q(status__in=[S.PENDING, S.RETRYING], endpoint__next_probe_at__lte=now)
            | Q(status=S.SENDING, locked_until__lte=now),
        )
        .exclude(held_until__gt=now)  # release_held enqueues it, or this does once the hold has passed
        # An inactive endpoint's queue waits (update_endpoint enqueues it), a paused one's until its next
        # probe is due; test events still go.
        .filter(
            Q(endpoint__active=True, endpoint__paused_at__isnull=True)
            | Q(endpoint__active=True, endpoint__next_probe_at__lte=now)
            | Q(is_test=True)
        )
        .values_list("endpoint_id", "device_id")
        .order_by()  # the model's ordering would make each delivery distinct: one drain per queue
        .distinct()
    )
    count = 0
    for endpoint_id, device_id in keys:
        enqueue(endpoint_id, device_id)
        count += 1
    return count


def cleanup(*, now=None) -> dict:
    """Forget expired QR codes and delivery logs older than WEBHOOK_LOG_RETENTION_DAYS."""
    from messaging import retention
    from messaging.models import Device, WebhookDelivery, WebhookDeliveryStatus

    now = now or timezone.now()
    qr = (
        Device.objects.filter(qr_expires_at__lt=now)
        .exclude(qr_code="")
        .update(qr_code="", qr_expires_at=None, updated_at=now)
    )
    cutoff = now - timedelta(days=float(setting("WEBHOOK_LOG_RETENTION_DAYS", 30)))
    old = WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(
        status=WebhookDeliveryStatus.SENDING, locked_until__gt=now
    )
    # In chunks, each its own transaction: a month of logs never holds the write lock for long.
    deleted = retention.delete_in_chunks(old)
    return {"qr_codes": qr, "deliveries": deleted}
