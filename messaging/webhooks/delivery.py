"""Webhook delivery: events stored as deliveries per endpoint, queued, claimed one at a time, retried.

`dispatch_event` is the one entry point the event handler calls, inside its transaction: it stores one
WebhookDelivery per matching endpoint and, once the transaction commits, enqueues a Celery task.

Delivery (`drain`, run by the task `messaging.deliver_webhooks`) keeps the order of one device's events
for one endpoint: only one sender per (endpoint, device) queue at a time, which claims a batch
(WEBHOOK_CLAIM_BATCH, oldest first) and sends it one by one, in order. At most WEBHOOK_ENDPOINT_CONCURRENCY
queues of one endpoint are in flight: a slow receiver holds that many task workers, never all of them,
and the other endpoints keep their rate. A queue held back by the cap is not polled: each sender, after
each batch, takes over the endpoint's longest-waiting queue that has no sender (turns, oldest first). The HTTP client is one pooled keep-alive client per process. A
delivery waiting for a retry does not hold the others back (order is kept "as far as retries allow"); the
Idempotency-Key header, the same on every attempt and redelivery, lets a receiver drop repeats.

Retries: network errors, 5xx and 429 are retried with exponential backoff and jitter (Retry-After honoured);
other answers are final.

A pause loses nothing (as Stripe and GitHub do it). Pausing goes by time, not by attempts: a backlog makes
many failed attempts in seconds. An endpoint is paused once every attempt has failed for
WEBHOOK_PAUSE_AFTER_HOURS, or when a delivery runs out of attempts while every attempt since the first
failure failed (the receiver is down, not refusing that one event): that delivery is then held, not given
up. A paused endpoint's events are still stored, and held. Every WEBHOOK_PROBE_SECONDS one of them goes as
a probe; the first 2xx resumes the endpoint by itself (as does its Resume button), and what was held goes
out, oldest first.

A claim is held for WEBHOOK_TIMEOUT_SECONDS + 5 (CLAIM_GRACE_SECONDS): a worker killed mid-attempt frees its
queue that soon (`requeue_stalled` runs every 10 s), and a late recording of an attempt
whose claim was taken over is dropped.

Settings (read with defaults): WEBHOOK_TIMEOUT_SECONDS (10), WEBHOOK_MAX_ATTEMPTS (10),
WEBHOOK_RETRY_BASE_SECONDS (15), WEBHOOK_RETRY_MAX_SECONDS (3600), WEBHOOK_PAUSE_AFTER_HOURS (1),
WEBHOOK_PROBE_SECONDS (60), WEBHOOK_LOG_RETENTION_DAYS (30), WEBHOOK_ALLOW_PRIVATE_TARGETS (False),
WEBHOOK_TASK_QUEUE (Celery's default), WEBHOOK_CLAIM_BATCH (20), WEBHOOK_ENDPOINT_CONCURRENCY (2).
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from messaging.webhooks import peer
from messaging.webhooks.wire import Outcome, post, setting

logger = logging.getLogger(__name__)

TEST_EVENT = "webhook.test"
# The Celery task that drains one (endpoint, device) queue (messaging.webhooks.tasks), enqueued by name so
# that this module does not import the tasks module that imports it.
DELIVER_TASK = "messaging.deliver_webhooks"
# How much longer than one attempt's time limit a claim is held: a dead worker's claim lapses that soon.
CLAIM_GRACE_SECONDS = 5

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

# Sent after each attempt is recorded (committed): sender=WebhookDelivery, delivery=, attempt=.
attempt_recorded = Signal()


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
    ids = []
    for endpoint in endpoints:
        fmt = endpoint.payload_format
        if fmt not in rendered:
            rendered[fmt] = peer.render_in(fmt, event=public, device=device, payload=payload, at=now)
        name, body = rendered[fmt]
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            organization_id=device.organization_id,
            event=name,  # as the body names it (the peer's name for a peer-format endpoint)
            device=device,
            body=body,
            created_at=now,
            next_attempt_at=now,
            held_until=held_until,
        )
        ids.append(delivery.pk)
        if held_until is None:
            enqueue_on_commit(endpoint.pk, device.pk)
    return ids


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


def enqueue(endpoint_id: int, device_id: int | None, *, countdown: float | None = None) -> None:
    """Ask the task worker to drain this (endpoint, device) queue. A broker failure is only logged: the
    delivery is stored, and `requeue_stalled` picks up what was never enqueued."""
    from waportal.celery import app

    # WEBHOOK_TASK_QUEUE: a dedicated queue (workers started with -Q); unset, Celery's default queue.
    queue = setting("WEBHOOK_TASK_QUEUE", None) or None
    try:
        app.send_task(DELIVER_TASK, (endpoint_id, device_id), countdown=countdown, queue=queue)
    except Exception:
        logger.exception("could not enqueue webhook delivery for endpoint %s", endpoint_id)


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

    return WebhookDelivery.objects.filter(
        _key_filter(endpoint_id, device_id),
        status=WebhookDeliveryStatus.SENDING,
        locked_until__gt=timezone.now(),
    ).exists()


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Delay before the next try after `attempt` failed: base * 2^(attempt-1), half of it jittered, capped;
    never sooner than Retry-After asks."""
    base = float(setting("WEBHOOK_RETRY_BASE_SECONDS", 15))
    cap = float(setting("WEBHOOK_RETRY_MAX_SECONDS", 3600))
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = delay / 2 + random.uniform(0, delay / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def _key_filter(endpoint_id: int, device_id: int | None) -> Q:
    return Q(endpoint_id=endpoint_id) & (
        Q(device__isnull=True) if device_id is None else Q(device_id=device_id)
    )


def _pause_after() -> timedelta:
    return timedelta(hours=float(setting("WEBHOOK_PAUSE_AFTER_HOURS", 1)))


def _probe_every() -> timedelta:
    return timedelta(seconds=float(setting("WEBHOOK_PROBE_SECONDS", 60)))


def claim_seconds() -> float:
    return float(setting("WEBHOOK_TIMEOUT_SECONDS", 10)) + CLAIM_GRACE_SECONDS


_NO_DEVICE = object()
# Returned by `claim_batch` when the endpoint already has WEBHOOK_ENDPOINT_CONCURRENCY queues in flight.
AT_CAP = "at-cap"


def endpoint_concurrency() -> int:
    return max(1, int(setting("WEBHOOK_ENDPOINT_CONCURRENCY", 2)))


def claim_next(endpoint_id: int, device_id: int | None):
    """Take the oldest due delivery of this (endpoint, device), unless one is already in flight.

    Of a paused endpoint only test events go, and one probe per WEBHOOK_PROBE_SECONDS across its queues: the
    oldest held delivery that has attempts left (else the oldest), whatever its retry time."""
    claimed = claim_batch(endpoint_id, device_id, limit=1, cap=False)
    return claimed[0] if claimed else None


def claim_batch(endpoint_id: int, device_id: int | None, *, limit: int = 1, cap: bool = True):
    """Take up to `limit` due deliveries of this (endpoint, device), oldest first, to be sent one after another
    by the caller (so in order); [] when one is already in flight or nothing is due. With `cap`, AT_CAP when
    the endpoint already has WEBHOOK_ENDPOINT_CONCURRENCY other queues in flight: a slow receiver then holds
    that many task workers, never all of them. A failing or paused endpoint gets one at a time."""
    from django.db.models import F

    from messaging.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint

    S = WebhookDeliveryStatus
    in_flight = WebhookDelivery.objects.filter(
        _key_filter(endpoint_id, device_id), status=S.SENDING, locked_until__gt=timezone.now()
    )
    if in_flight.exists():
        # Read without the write lock, so the many tasks of a busy queue leave quickly: its sender claims
        # again after recording, in its own locked transaction, and so sees every delivery stored before now.
        return []
    with transaction.atomic():
        # The endpoint row lock serializes claims for it (SQLite serializes write transactions anyway).
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        if endpoint is None:
            return []
        now = timezone.now()
        queue = WebhookDelivery.objects.filter(_key_filter(endpoint_id, device_id))
        if queue.filter(status=S.SENDING, locked_until__gt=now).exists():
            return []  # its sender takes ours next
        due = queue.filter(
            Q(status__in=[S.PENDING, S.RETRYING], next_attempt_at__lte=now)
            | Q(status=S.SENDING, locked_until__lte=now)  # its sender died
        )
        held = queue.filter(held_until__gt=now).order_by("id").values_list("id", flat=True).first()
        probing = (
            endpoint.active
            and endpoint.paused_at is not None
            and (endpoint.next_probe_at is None or endpoint.next_probe_at <= now)
        )
        claimed = []
        if probing:
            waiting = queue.filter(
                Q(status__in=[S.PENDING, S.RETRYING]) | Q(status=S.SENDING, locked_until__lte=now),
                is_test=False,
            )
            if held is not None:
                waiting = waiting.filter(id__lt=held)
            max_attempts = int(setting("WEBHOOK_MAX_ATTEMPTS", 10))
            # Not the one event the receiver may be refusing again and again, if there is another.
            delivery = (
                waiting.filter(attempts__lt=max_attempts).order_by("id").first()
                or waiting.order_by("id").first()
            )
            if delivery is not None:
                endpoint.next_probe_at = now + _probe_every()
                endpoint.save(update_fields=["next_probe_at", "updated_at"])
                claimed = [delivery]
        if not claimed:
            if not endpoint.receiving:
                due = due.filter(is_test=True)  # a test event still goes to a paused or inactive endpoint
            if held is not None:
                due = due.filter(id__lt=held)  # what came after a held delivery waits for it, in order
            if endpoint.failing_since is not None or endpoint.paused_at is not None:
                limit = 1  # each attempt may wait for the whole timeout: see how the first one goes
            claimed = list(due.order_by("id")[:limit])  # ids grow in the order events were stored
            if claimed and cap and endpoint.receiving:
                others = (
                    WebhookDelivery.objects.filter(
                        endpoint_id=endpoint_id, status=S.SENDING, locked_until__gt=now
                    )
                    .exclude(_key_filter(endpoint_id, device_id))
                    .values("device_id")
                    .distinct()
                    .count()
                )
                if others >= endpoint_concurrency():
                    return AT_CAP
        if not claimed:
            return []
        locked_until = now + timedelta(seconds=claim_seconds())
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
            status=S.SENDING, attempts=F("attempts") + 1, locked_until=locked_until, updated_at=now
        )
        for delivery in claimed:
            delivery.status = S.SENDING
            delivery.attempts += 1
            delivery.locked_until = locked_until
            delivery.updated_at = now
            delivery.endpoint = endpoint
        return claimed


def renew_claims(deliveries) -> None:
    """Hold the claims of a batch's unsent deliveries for another claim period (the batch is still going)."""
    from messaging.models import WebhookDelivery, WebhookDeliveryStatus

    now = timezone.now()
    locked_until = now + timedelta(seconds=claim_seconds())
    for delivery in deliveries:
        WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDeliveryStatus.SENDING, attempts=delivery.attempts
        ).update(locked_until=locked_until, updated_at=now)
        delivery.locked_until = locked_until


def release_claims(deliveries) -> None:
    """Give back a batch's unsent deliveries, as they were: due now, their attempt not counted."""
    from messaging.models import WebhookDelivery, WebhookDeliveryStatus

    S = WebhookDeliveryStatus
    now = timezone.now()
    for delivery in deliveries:
        WebhookDelivery.objects.filter(pk=delivery.pk, status=S.SENDING, attempts=delivery.attempts).update(
            status=S.RETRYING if delivery.attempts > 1 else S.PENDING,
            attempts=delivery.attempts - 1,
            locked_until=None,
            updated_at=now,
        )


def record(delivery, outcome: Outcome):
    """Write the attempt, move the delivery on (done, retry later, failed, held) and the endpoint's state:
    failing since when, paused, resumed by a probe that got through."""
    from accounts.services import record_audit
    from messaging.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint

    S = WebhookDeliveryStatus
    now = timezone.now()
    retry_at = None
    resumed = False
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=delivery.endpoint_id).first()
        if endpoint is None:
            return None  # deleted while we were sending
        counts = not delivery.is_test
        # Every attempt since an earlier one failed: the receiver is down, not refusing this one event.
        was_failing = endpoint.failing_since is not None
        if outcome.succeeded:
            delivery.status = S.SUCCEEDED
            delivery.delivered_at = now
        elif outcome.retryable and delivery.attempts < int(setting("WEBHOOK_MAX_ATTEMPTS", 10)):
            retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, outcome.retry_after))
            delivery.status = S.RETRYING
            delivery.next_attempt_at = retry_at
        elif outcome.retryable and counts and (endpoint.paused_at is not None or was_failing):
            # Out of attempts while the receiver is down: held (the endpoint pauses, below), not given up.
            retry_at = now + _probe_every()
            delivery.status = S.RETRYING
            delivery.next_attempt_at = retry_at
        else:
            delivery.status = S.FAILED
        delivery.locked_until = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error[:500]
        # Only while the claim is still ours: once it lapsed (CLAIM_GRACE_SECONDS) another sender may have
        # taken the delivery over, and this late result must not overwrite what that one records.
        still_there = WebhookDelivery.objects.filter(
            pk=delivery.pk, status=S.SENDING, attempts=delivery.attempts
        ).update(
            status=delivery.status,
            delivered_at=delivery.delivered_at,
            next_attempt_at=delivery.next_attempt_at,
            locked_until=None,
            last_status_code=outcome.status_code,
            last_error=delivery.last_error,
            updated_at=now,
        )
        if not still_there:
            return None  # cleaned up, or taken over, while we were sending
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            attempted_at=now - timedelta(milliseconds=outcome.duration_ms),
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            response_excerpt=outcome.excerpt,
            error=outcome.error[:500],
            succeeded=outcome.succeeded,
            retry_at=retry_at,
        )
        # A healthy endpoint's state does not change with each success: its row is written at most once a
        # second then (last_success_at), not once per delivery.
        unchanged = (
            outcome.succeeded
            and endpoint.consecutive_failures == 0
            and endpoint.failing_since is None
            and endpoint.paused_at is None
            and endpoint.last_success_at is not None
            and now - endpoint.last_success_at < timedelta(seconds=1)
        )
        if counts and not unchanged:
            if outcome.succeeded:
                endpoint.consecutive_failures = 0
                endpoint.last_success_at = now
                endpoint.failing_since = None
                if endpoint.paused_at is not None:  # a probe got through: the receiver is back
                    resumed = True
                    _lift_pause(endpoint, now)
                    record_audit(
                        organization=endpoint.organization,
                        action="webhook.resume",
                        obj=endpoint,
                        details={"by": "probe", "delivery": delivery.pk},
                    )
                    logger.info("webhook endpoint %s answered a probe: resumed", endpoint.pk)
            else:
                endpoint.consecutive_failures += 1
                endpoint.last_failure_at = now
                if endpoint.failing_since is None:
                    endpoint.failing_since = now - timedelta(milliseconds=outcome.duration_ms)
                failing_for = now - endpoint.failing_since
                out_of_attempts = delivery.status == S.RETRYING and delivery.attempts >= int(
                    setting("WEBHOOK_MAX_ATTEMPTS", 10)
                )
                if endpoint.paused_at is None and (failing_for >= _pause_after() or out_of_attempts):
                    endpoint.paused_at = now
                    endpoint.next_probe_at = now + _probe_every()
                    endpoint.pause_reason = (
                        f"every attempt failed for {_duration(failing_for)}; last: "
                        f"{outcome.status_code or outcome.error}"
                    )[:300]
                    record_audit(
                        organization=endpoint.organization,
                        action="webhook.pause",
                        obj=endpoint,
                        details={
                            "failing_since": endpoint.failing_since.isoformat(),
                            "failures": endpoint.consecutive_failures,
                        },
                    )
                    logger.warning("webhook endpoint %s paused: %s", endpoint.pk, endpoint.pause_reason)
            endpoint.save(
                update_fields=[
                    "consecutive_failures",
                    "last_success_at",
                    "last_failure_at",
                    "failing_since",
                    "paused_at",
                    "pause_reason",
                    "next_probe_at",
                    "updated_at",
                ]
            )
            if resumed:
                enqueue_waiting_on_commit(endpoint)
        transaction.on_commit(
            lambda: attempt_recorded.send(WebhookDelivery, delivery=delivery, attempt=attempt)
        )
    if endpoint.paused_at is not None and counts:
        retry_at = endpoint.next_probe_at  # its next probe: nothing of it goes before then
    if retry_at is not None:
        enqueue(
            delivery.endpoint_id,
            delivery.device_id,
            countdown=max(0.0, (retry_at - timezone.now()).total_seconds()),
        )
    return attempt


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _lift_pause(endpoint, now) -> None:
    """Unpause `endpoint` (the caller saves it, locked): what it held is due now, to go out oldest first."""
    from messaging.models import WebhookDeliveryStatus

    endpoint.paused_at = None
    endpoint.pause_reason = ""
    endpoint.next_probe_at = None
    endpoint.consecutive_failures = 0
    endpoint.failing_since = None
    endpoint.deliveries.filter(
        status=WebhookDeliveryStatus.RETRYING, next_attempt_at__gt=now, is_test=False
    ).update(next_attempt_at=now)


def resume(endpoint, now=None) -> None:
    """Lift a pause by hand (the Resume button): inside the caller's transaction, `endpoint` row-locked."""
    now = now or timezone.now()
    _lift_pause(endpoint, now)
    endpoint.save(
        update_fields=[
            "paused_at",
            "pause_reason",
            "next_probe_at",
            "consecutive_failures",
            "failing_since",
            "updated_at",
        ]
    )
    enqueue_waiting_on_commit(endpoint)


def enqueue_waiting_on_commit(endpoint) -> None:
    """Once committed, a drain of each of the endpoint's queues that has something waiting."""
    for device_id in set(
        endpoint.deliveries.filter(status__in=["pending", "retrying"]).values_list("device_id", flat=True)
    ):
        enqueue_on_commit(endpoint.pk, device_id)


# Waits between tries to record an attempt the database refused (busy, restarting): the receiver has it, and
# a delivery left `sending` would hold its queue until its claim lapses, then be sent again.
RECORD_RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0)


def claim_batch_size() -> int:
    return max(1, int(setting("WEBHOOK_CLAIM_BATCH", 20)))


def drain(endpoint_id: int, device_id: int | None) -> int:
    """Deliver what is due for this (endpoint, device), oldest first, one at a time; returns how many attempts.

    Claims a batch (WEBHOOK_CLAIM_BATCH) at once and sends it in order: one claim's queries serve many
    deliveries. After a failure the rest of the batch is given back and claimed again (a failing endpoint
    goes one at a time). When the endpoint already has WEBHOOK_ENDPOINT_CONCURRENCY queues in flight, this
    task leaves at once; after each batch a sender takes its turn on the endpoint's longest-waiting queue
    without a sender (its own again when none waits longer), so the capped queues are served in turn."""
    done = 0
    tried_empty: set[int | None] = set()
    while True:
        batch = claim_batch(endpoint_id, device_id, limit=claim_batch_size())
        if batch == AT_CAP:
            return done  # a sender of this endpoint takes this queue over after its batch
        if not batch:
            tried_empty.add(device_id)
            waiting = _waiting_queue(endpoint_id, besides=tried_empty)
            if waiting is None:
                return done
            device_id = waiting
            continue
        timeout = float(setting("WEBHOOK_TIMEOUT_SECONDS", 10))
        lease_ends = time.monotonic() + claim_seconds()
        for index, delivery in enumerate(batch):
            rest = batch[index + 1 :]
            if index and lease_ends - time.monotonic() < timeout + 1:
                # A slow receiver: hold the rest of the batch for as long as one more attempt may take.
                renew_claims([delivery, *rest])
                lease_ends = time.monotonic() + claim_seconds()
            outcome = post(delivery, delivery.endpoint)
            attempt = _record_until_stored(delivery, outcome)
            done += 1
            if rest and (attempt is None or not outcome.succeeded):
                release_claims(rest)  # claimed again (or held by a pause) by the next round
                break
        # Turns: a queue that waits longer than ours (held back by the cap) goes next; ours waits its turn.
        waiting = _waiting_queue(endpoint_id, besides=tried_empty | {device_id}, older_than=device_id)
        if waiting is not None:
            device_id = waiting


def _waiting_queue(endpoint_id: int, *, besides: set, older_than=_NO_DEVICE) -> int | None:
    """The device of the endpoint's queue whose oldest due delivery is the oldest, among queues nobody is
    sending (and not in `besides`); with `older_than`, only if it waited longer than that device's queue."""
    from messaging.models import WebhookDelivery, WebhookDeliveryStatus

    S = WebhookDeliveryStatus
    now = timezone.now()
    busy = WebhookDelivery.objects.filter(
        endpoint_id=endpoint_id, status=S.SENDING, locked_until__gt=now, device__isnull=False
    ).values("device_id")
    due = WebhookDelivery.objects.filter(
        endpoint_id=endpoint_id,
        status__in=[S.PENDING, S.RETRYING],
        next_attempt_at__lte=now,
        endpoint__active=True,
        endpoint__paused_at__isnull=True,
    ).exclude(held_until__gt=now)
    candidate = (
        due.filter(device__isnull=False)
        .exclude(device_id__in=busy)
        .exclude(device_id__in=[d for d in besides if d is not None])
        .order_by("id")
        .values_list("device_id", "id")
        .first()
    )
    if candidate is None:
        return None
    if older_than is not _NO_DEVICE:
        ours = (
            due.filter(_key_filter(endpoint_id, older_than))
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        if ours is not None and ours < candidate[1]:
            return None
    return candidate[0]


def _record_until_stored(delivery, outcome: Outcome):
    from django.db import InterfaceError, OperationalError, close_old_connections

    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return record(delivery, outcome)
        except (OperationalError, InterfaceError):
            if delay is None:
                raise  # its claim lapses (CLAIM_GRACE_SECONDS) and it is sent again, with the same key
            logger.warning(
                "recording attempt %s of delivery %s failed; again in %gs",
                delivery.attempts,
                delivery.pk,
                delay,
            )
            close_old_connections()
            time.sleep(delay)


def requeue_stalled() -> int:
    """Enqueue a drain for every queue with due work nobody is working on (lost tasks, dead senders,
    a broker that was down, the in-memory queue of a restarted embedded process)."""
    from messaging.models import WebhookDelivery, WebhookDeliveryStatus

    S = WebhookDeliveryStatus
    now = timezone.now()
    keys = (
        WebhookDelivery.objects.filter(
            Q(status__in=[S.PENDING, S.RETRYING], next_attempt_at__lte=now - timedelta(seconds=30))
            | Q(status__in=[S.PENDING, S.RETRYING], endpoint__next_probe_at__lte=now)
            | Q(status=S.SENDING, locked_until__lte=now)
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
