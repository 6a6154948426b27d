"""Claiming a webhook queue's due deliveries: a batch in order, one sender per queue, a cap of queues in
flight per endpoint, a paused endpoint's probes; claims held for a time and given back.

A claim is held for WEBHOOK_TIMEOUT_SECONDS + 5 (CLAIM_GRACE_SECONDS): a worker killed mid-attempt frees its
queue that soon (`requeue_stalled` runs every 10 s), and a late recording of an attempt whose claim was
taken over is dropped (messaging.webhooks.recording).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messaging.webhooks.queueing import key_filter
from messaging.webhooks.wire import setting

# How much longer than one attempt's time limit a claim is held: a dead worker's claim lapses that soon.
CLAIM_GRACE_SECONDS = 5


def probe_every() -> timedelta:
    return timedelta(seconds=float(setting("WEBHOOK_PROBE_SECONDS", 60)))


def claim_seconds() -> float:
    return float(setting("WEBHOOK_TIMEOUT_SECONDS", 10)) + CLAIM_GRACE_SECONDS


_NO_DEVICE = object()
# Returned by `claim_batch` when the endpoint already has WEBHOOK_ENDPOINT_CONCURRENCY queues in flight.
AT_CAP = "at-cap"


def endpoint_concurrency() -> int:
    return max(1, int(setting("WEBHOOK_ENDPOINT_CONCURRENCY", 2)))


def claim_batch_size() -> int:
    return max(1, int(setting("WEBHOOK_CLAIM_BATCH", 20)))


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
    from messaging.models.webhook import UNFINISHED

    S = WebhookDeliveryStatus
    in_flight = WebhookDelivery.objects.filter(
        UNFINISHED, key_filter(endpoint_id, device_id), status=S.SENDING, locked_until__gt=timezone.now()
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
        # Every read of the queue here is of what is still to send: through the partial index of those.
        queue = WebhookDelivery.objects.filter(UNFINISHED, key_filter(endpoint_id, device_id))
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
                endpoint.next_probe_at = now + probe_every()
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
                        UNFINISHED, endpoint_id=endpoint_id, status=S.SENDING, locked_until__gt=now
                    )
                    .exclude(key_filter(endpoint_id, device_id))
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


def waiting_queue(endpoint_id: int, *, besides: set, older_than=_NO_DEVICE) -> int | None:
    """The device of the endpoint's queue whose oldest due delivery is the oldest, among queues nobody is
    sending (and not in `besides`); with `older_than`, only if it waited longer than that device's queue."""
    from messaging.models import WebhookDelivery, WebhookDeliveryStatus
    from messaging.models.webhook import UNFINISHED

    S = WebhookDeliveryStatus
    now = timezone.now()
    busy = WebhookDelivery.objects.filter(
        UNFINISHED, endpoint_id=endpoint_id, status=S.SENDING, locked_until__gt=now, device__isnull=False
    ).values("device_id")
    due = WebhookDelivery.objects.filter(
        UNFINISHED,
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
            due.filter(key_filter(endpoint_id, older_than))
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        if ours is not None and ours < candidate[1]:
            return None
    return candidate[0]
