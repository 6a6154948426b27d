"""Celery tasks of the messaging app: the periodic clean-up and liveness work; the webhooks' own tasks live in
messaging.webhooks.tasks (imported here, where Celery's autodiscovery looks)."""

import logging

from messaging.webhooks import tasks as webhook_tasks  # noqa: F401  (registers the webhook tasks)
from waportal.celery import app

logger = logging.getLogger(__name__)


@app.task(name="messaging.cleanup_expired", ignore_result=True)
def cleanup() -> dict:
    """Expired QR codes, delivery logs past WEBHOOK_LOG_RETENTION_DAYS and API idempotency keys past 24 h."""
    from messaging.api import idempotency
    from messaging.webhooks import delivery

    result = {**delivery.cleanup(), "idempotency_keys": idempotency.forget_expired()}
    logger.info("clean-up: %s", result)
    return result


@app.task(name="messaging.apply_retention", ignore_result=True)
def apply_retention() -> dict:
    """Media files past MEDIA_RETENTION_DAYS, audit events past AUDIT_RETENTION_DAYS (messaging.retention)."""
    from messaging import retention

    return retention.apply_retention()


@app.task(name="messaging.announce_unheld_devices", ignore_result=True)
def announce_unheld() -> int:
    """Numbers whose session worker stopped renewing its lease show disconnected on open pages, live."""
    from messaging.services import devices

    return devices.announce_unheld()


@app.task(name="messaging.wake_up", ignore_result=True)
def wake_up() -> None:
    """Does nothing: sent to make a worker's consumer loop look at its shutdown flag now."""
