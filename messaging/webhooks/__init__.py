"""Webhooks: domain events become signed HTTP deliveries to the organization's endpoints, retried until they land.

The package, by seam: `wire` (the signed envelope, one HTTP attempt), `queueing` (store an event's deliveries,
enqueue their drain), `claiming` (batches, the cap per endpoint), `recording` (attempts, retries, pause),
`delivery` (the drain that sends with them), `services` (the endpoints' write path), `pages` and `urls` (the
dashboard), `tasks` (Celery). The models are messaging.models.webhook. Events publish, webhooks subscribe:
messaging.events calls `dispatch_event` inside its write; nothing here imports messaging.events, and
`queueing` enqueues the task by name, so no module here imports another that imports it back.

The names below are the package's public surface (`from messaging import webhooks; webhooks.dispatch_event`).
"""

from messaging.webhooks.delivery import (
    DELIVER_TASK,
    EVENT_NAMES,
    TEST_EVENT,
    attempt_recorded,
    backoff_seconds,
    claim_batch,
    claim_next,
    cleanup,
    dispatch_event,
    drain,
    enqueue,
    enqueue_on_commit,
    matching_endpoints,
    record,
    release_held,
    requeue_stalled,
)
from messaging.webhooks.services import (
    create_endpoint,
    delete_endpoint,
    redeliver,
    resume_endpoint,
    rotate_secret,
    send_test_event,
    update_endpoint,
)
from messaging.webhooks.wire import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    Outcome,
    envelope,
    parse_retry_after,
    post,
    sign,
    verify_signature,
)

__all__ = [
    "DELIVER_TASK",
    "EVENT_NAMES",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TEST_EVENT",
    "Outcome",
    "attempt_recorded",
    "backoff_seconds",
    "claim_batch",
    "claim_next",
    "cleanup",
    "create_endpoint",
    "delete_endpoint",
    "dispatch_event",
    "drain",
    "enqueue",
    "enqueue_on_commit",
    "envelope",
    "matching_endpoints",
    "parse_retry_after",
    "post",
    "record",
    "redeliver",
    "release_held",
    "requeue_stalled",
    "resume_endpoint",
    "rotate_secret",
    "send_test_event",
    "sign",
    "update_endpoint",
    "verify_signature",
]
