"""Webhook delivery: events stored as deliveries per endpoint, queued, claimed a batch at a time, sent, retried.

`dispatch_event` is the one entry point the event handler calls, inside its transaction: it stores one
WebhookDelivery per matching endpoint and, once the transaction commits, enqueues a Celery task.

Delivery (`drain`, run by the task `messaging.deliver_webhooks`) keeps the order of one device's events
for one endpoint: only one sender per (endpoint, device) queue at a time, which claims a batch
(WEBHOOK_CLAIM_BATCH, oldest first) and sends it one by one, in order. At most WEBHOOK_ENDPOINT_CONCURRENCY
queues of one endpoint are in flight: a slow receiver holds that many task workers, never all of them,
and the other endpoints keep their rate. A queue held back by the cap is not polled: each sender, after
each batch, takes over the endpoint's longest-waiting queue that has no sender (turns, oldest first). The
HTTP client is one pooled keep-alive client per process. A delivery waiting for a retry does not hold the
others back (order is kept "as far as retries allow"); the Idempotency-Key header, the same on every attempt
and redelivery, lets a receiver drop repeats.

A batch's successes are recorded together, in one transaction: once the batch is sent, at once after a
failure, and otherwise once the oldest unrecorded answer is RECORD_EVERY_SECONDS old. A crash between sending
and recording leaves them claimed; they are sent again once the claim lapses, with the same Idempotency-Key
(at least once, nothing lost).

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
queue that soon (`requeue_stalled` runs every 10 s), and a late recording of an attempt whose claim was taken
over is dropped.

Settings (read with defaults): WEBHOOK_TIMEOUT_SECONDS (10), WEBHOOK_MAX_ATTEMPTS (10),
WEBHOOK_RETRY_BASE_SECONDS (15), WEBHOOK_RETRY_MAX_SECONDS (3600), WEBHOOK_PAUSE_AFTER_HOURS (1),
WEBHOOK_PROBE_SECONDS (60), WEBHOOK_LOG_RETENTION_DAYS (30), WEBHOOK_ALLOW_PRIVATE_TARGETS (False),
WEBHOOK_TASK_QUEUE (Celery's default), WEBHOOK_CLAIM_BATCH (20), WEBHOOK_ENDPOINT_CONCURRENCY (2).

The parts, each a module here: `queueing` (store, enqueue, pick up stalled queues, clean up), `claiming`
(claim a batch, the cap, turns), `recording` (attempts, retries, pause and resume); this module drains a
queue with them, and keeps their public names importable from here.
"""

from __future__ import annotations

import logging
import time

from messaging.webhooks import claiming, recording
from messaging.webhooks.claiming import (  # noqa: F401  (names importable from here, as before the split)
    AT_CAP,
    CLAIM_GRACE_SECONDS,
    claim_batch,
    claim_batch_size,
    claim_next,
    claim_seconds,
    endpoint_concurrency,
    release_claims,
    renew_claims,
)
from messaging.webhooks.queueing import (  # noqa: F401
    DELIVER_TASK,
    EVENT_NAMES,
    TEST_EVENT,
    cleanup,
    dispatch_event,
    enqueue,
    enqueue_on_commit,
    enqueue_waiting_on_commit,
    matching_endpoints,
    release_held,
    requeue_stalled,
)
from messaging.webhooks.recording import attempt_recorded, backoff_seconds, record, record_batch, resume  # noqa: F401
from messaging.webhooks.wire import post, setting

logger = logging.getLogger(__name__)

# Waits between tries to record attempts the database refused (busy, restarting): the receiver has them, and
# a delivery left `sending` would hold its queue until its claim lapses, then be sent again.
RECORD_RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0)
# The longest a sent delivery waits to be recorded with those sent after it (the batch's successes are
# recorded in one transaction): what the dashboard shows lags that much at most, and it is what a crash may
# send again.
RECORD_EVERY_SECONDS = 0.25


def drain(endpoint_id: int, device_id: int | None) -> int:
    """Deliver what is due for this (endpoint, device), oldest first, one at a time; returns how many attempts.

    Claims a batch (WEBHOOK_CLAIM_BATCH) at once and sends it in order: one claim's queries serve many
    deliveries, and so does one recording transaction. After a failure the rest of the batch is given back and
    claimed again (a failing endpoint goes one at a time). When the endpoint already has
    WEBHOOK_ENDPOINT_CONCURRENCY queues in flight, this task leaves at once; after each batch a sender takes
    its turn on the endpoint's longest-waiting queue without a sender (its own again when none waits longer),
    so the capped queues are served in turn."""
    done = 0
    tried_empty: set[int | None] = set()
    while True:
        batch = claiming.claim_batch(endpoint_id, device_id, limit=claiming.claim_batch_size())
        if batch == claiming.AT_CAP:
            return done  # a sender of this endpoint takes this queue over after its batch
        if not batch:
            tried_empty.add(device_id)
            waiting = claiming.waiting_queue(endpoint_id, besides=tried_empty)
            if waiting is None:
                return done
            device_id = waiting
            continue
        done += _send_batch(batch)
        # Turns: a queue that waits longer than ours (held back by the cap) goes next; ours waits its turn.
        waiting = claiming.waiting_queue(endpoint_id, besides=tried_empty | {device_id}, older_than=device_id)
        if waiting is not None:
            device_id = waiting


def _send_batch(batch) -> int:
    """Send a claimed batch in order, recording as it goes; returns how many were sent."""
    timeout = float(setting("WEBHOOK_TIMEOUT_SECONDS", 10))
    lease_ends = time.monotonic() + claiming.claim_seconds()
    sent: list[tuple] = []  # (delivery, outcome) sent and not yet recorded
    first_sent_at = 0.0
    for index, delivery in enumerate(batch):
        rest = batch[index + 1 :]
        if index and lease_ends - time.monotonic() < timeout + 1:
            # A slow receiver: hold the rest of the batch (and what awaits recording) for one more attempt.
            claiming.renew_claims([*(d for d, _ in sent), delivery, *rest])
            lease_ends = time.monotonic() + claiming.claim_seconds()
        outcome = post(delivery, delivery.endpoint)
        if not sent:
            first_sent_at = time.monotonic()
        sent.append((delivery, outcome))
        if rest and outcome.succeeded and time.monotonic() - first_sent_at < RECORD_EVERY_SECONDS:
            continue  # recorded with the next ones
        attempts = _record_until_stored(sent)
        sent = []
        if rest and (None in attempts or not outcome.succeeded):
            claiming.release_claims(rest)  # claimed again (or held by a pause) by the next round
            return index + 1
    return len(batch)


def _record_until_stored(sent: list[tuple]) -> list:
    from django.db import InterfaceError, OperationalError, close_old_connections

    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return recording.record_batch(sent)
        except (OperationalError, InterfaceError):
            if delay is None:
                raise  # their claims lapse (CLAIM_GRACE_SECONDS) and they are sent again, with the same key
            logger.warning(
                "recording %d attempt(s) of deliveries from %s failed; again in %gs",
                len(sent),
                sent[0][0].pk,
                delay,
            )
            close_old_connections()
            time.sleep(delay)
