"""Recording webhook attempts: the attempt log, the delivery moved on (done, retry later, failed, held) and
the endpoint's state (failing since when, paused, resumed by a probe that got through).

Several attempts of one queue are recorded in one transaction (`record_batch`): the drain sends a batch's
deliveries one after another and records the successes together, so a healthy receiver costs a few
queries per batch, not a transaction per delivery.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from datetime import timedelta

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from messaging.webhooks import queueing
from messaging.webhooks.claiming import probe_every
from messaging.webhooks.wire import Outcome, setting

logger = logging.getLogger(__name__)

# Sent after each attempt is recorded (committed): sender=WebhookDelivery, delivery=, attempt=.
attempt_recorded = Signal()


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


def _pause_after() -> timedelta:
    return timedelta(hours=float(setting("WEBHOOK_PAUSE_AFTER_HOURS", 1)))


def record(delivery, outcome: Outcome):
    """Record one attempt (see `record_batch`): the attempt, or None when it was not ours to record."""
    return record_batch([(delivery, outcome)])[0]


# What `record_batch` writes on an endpoint whose state changed.
ENDPOINT_STATE_FIELDS = [
    "consecutive_failures",
    "last_success_at",
    "last_failure_at",
    "failing_since",
    "paused_at",
    "pause_reason",
    "next_probe_at",
    "updated_at",
]


def record_batch(items: list[tuple]) -> list:
    """Record attempts of one endpoint, (delivery, outcome) in the order they were sent, in one transaction:
    write each attempt, move each delivery on (done, retry later, failed, held) and the endpoint's state
    (failing since when, paused, resumed by a probe that got through). Returns the attempts, None for one
    that was not ours to record (its claim lapsed and was taken over, or it was cleaned up meanwhile).

    A batch of successes costs a handful of queries: the endpoint and delivery rows locked, one UPDATE per
    kind of result, one INSERT of the attempts, and the endpoint's row at most once a second."""
    from messaging.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint

    S = WebhookDeliveryStatus
    now = timezone.now()
    attempts: list = [None] * len(items)
    retry_at = None  # the earliest retry among them: one drain of the queue then serves them all
    with transaction.atomic():
        endpoint_id = items[0][0].endpoint_id
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        if endpoint is None:
            return attempts  # deleted while we were sending
        # Only while the claim is still ours: once it lapsed (CLAIM_GRACE_SECONDS) another sender may have
        # taken the delivery over, and this late result must not overwrite what that one records.
        claimed = dict(
            WebhookDelivery.objects.select_for_update()
            .filter(pk__in=[delivery.pk for delivery, _ in items], status=S.SENDING)
            .values_list("pk", "attempts")
        )
        endpoint_changed = resumed = False
        recorded = []
        changes = defaultdict(list)  # the columns an UPDATE sets -> the deliveries it sets them on
        for index, (delivery, outcome) in enumerate(items):
            if claimed.get(delivery.pk) != delivery.attempts:
                continue
            attempt_retry_at = _move_on(delivery, outcome, endpoint, now)
            columns = {
                "status": delivery.status,
                "last_status_code": outcome.status_code,
                "last_error": delivery.last_error,
                "delivered_at": delivery.delivered_at,
            }
            if attempt_retry_at is not None:
                columns["next_attempt_at"] = delivery.next_attempt_at
            changes[tuple(sorted(columns.items()))].append(delivery.pk)
            # When the answer came (a batch's first answers are recorded a moment later).
            at = outcome.answered_at or now
            attempts[index] = WebhookAttempt(
                delivery=delivery,
                number=delivery.attempts,
                attempted_at=at - timedelta(milliseconds=outcome.duration_ms),
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                response_excerpt=outcome.excerpt,
                error=outcome.error[:500],
                succeeded=outcome.succeeded,
                retry_at=attempt_retry_at,
            )
            recorded.append((delivery, attempts[index]))
            changed, lifted = _update_endpoint(endpoint, delivery, outcome, at)
            endpoint_changed |= changed
            resumed |= lifted
            if attempt_retry_at is not None:
                retry_at = attempt_retry_at if retry_at is None else min(retry_at, attempt_retry_at)
        if not recorded:
            return attempts
        # One UPDATE per kind of result (a batch of successes: one), one INSERT of the attempts. Not
        # bulk_update: its CASE per row costs more CPU to build than the rest of the batch's recording.
        for columns, pks in changes.items():
            WebhookDelivery.objects.filter(pk__in=pks).update(
                **dict(columns), locked_until=None, updated_at=now
            )
        WebhookAttempt.objects.bulk_create([attempt for _, attempt in recorded])
        if endpoint_changed:
            endpoint.save(update_fields=ENDPOINT_STATE_FIELDS)
        if resumed:
            queueing.enqueue_waiting_on_commit(endpoint)  # what the pause held goes out, oldest first

        def announce() -> None:
            for delivery, attempt in recorded:
                attempt_recorded.send(WebhookDelivery, delivery=delivery, attempt=attempt)

        transaction.on_commit(announce)
    if endpoint.paused_at is not None and any(not delivery.is_test for delivery, _ in recorded):
        retry_at = endpoint.next_probe_at  # its next probe: nothing of it goes before then
    if retry_at is not None:
        delivery = recorded[0][0]
        queueing.enqueue(
            delivery.endpoint_id,
            delivery.device_id,
            countdown=max(0.0, (retry_at - timezone.now()).total_seconds()),
        )
    return attempts


def _move_on(delivery, outcome: Outcome, endpoint, now):
    """Set the delivery's state after this attempt (in memory); returns when it is tried again, if it is."""
    from messaging.models import WebhookDeliveryStatus

    S = WebhookDeliveryStatus
    retry_at = None
    # Every attempt since an earlier one failed: the receiver is down, not refusing this one event.
    was_failing = endpoint.failing_since is not None
    if outcome.succeeded:
        delivery.status = S.SUCCEEDED
        delivery.delivered_at = now
    elif outcome.retryable and delivery.attempts < int(setting("WEBHOOK_MAX_ATTEMPTS", 10)):
        retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, outcome.retry_after))
        delivery.status = S.RETRYING
        delivery.next_attempt_at = retry_at
    elif outcome.retryable and not delivery.is_test and (endpoint.paused_at is not None or was_failing):
        # Out of attempts while the receiver is down: held (the endpoint pauses, below), not given up.
        retry_at = now + probe_every()
        delivery.status = S.RETRYING
        delivery.next_attempt_at = retry_at
    else:
        delivery.status = S.FAILED
    delivery.locked_until = None
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:500]
    return retry_at


def _update_endpoint(endpoint, delivery, outcome: Outcome, now) -> tuple[bool, bool]:
    """Move the endpoint's state on after this attempt (in memory, locked); returns whether it changed and
    whether a pause was lifted."""
    from accounts.services import record_audit
    from messaging.models import WebhookDeliveryStatus

    if delivery.is_test:
        return False, False  # a test event says nothing about the endpoint's health
    # A healthy endpoint's state does not change with each success: its row is written at most once a
    # second then (last_success_at), not once per delivery.
    if (
        outcome.succeeded
        and endpoint.consecutive_failures == 0
        and endpoint.failing_since is None
        and endpoint.paused_at is None
        and endpoint.last_success_at is not None
        and now - endpoint.last_success_at < timedelta(seconds=1)
    ):
        return False, False
    if outcome.succeeded:
        endpoint.consecutive_failures = 0
        endpoint.last_success_at = now
        endpoint.failing_since = None
        if endpoint.paused_at is not None:  # a probe got through: the receiver is back
            _lift_pause(endpoint, now)
            record_audit(
                organization=endpoint.organization,
                action="webhook.resume",
                obj=endpoint,
                details={"by": "probe", "delivery": delivery.pk},
            )
            logger.info("webhook endpoint %s answered a probe: resumed", endpoint.pk)
            return True, True
        return True, False
    endpoint.consecutive_failures += 1
    endpoint.last_failure_at = now
    if endpoint.failing_since is None:
        endpoint.failing_since = now - timedelta(milliseconds=outcome.duration_ms)
    failing_for = now - endpoint.failing_since
    out_of_attempts = delivery.status == WebhookDeliveryStatus.RETRYING and delivery.attempts >= int(
        setting("WEBHOOK_MAX_ATTEMPTS", 10)
    )
    if endpoint.paused_at is None and (failing_for >= _pause_after() or out_of_attempts):
        endpoint.paused_at = now
        endpoint.next_probe_at = now + probe_every()
        endpoint.pause_reason = (
            f"every attempt failed for {_duration(failing_for)}; last: {outcome.status_code or outcome.error}"
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
    return True, False


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
    queueing.enqueue_waiting_on_commit(endpoint)
