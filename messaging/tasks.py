"""Celery tasks: webhook delivery and the periodic clean-up. Thin: the work is in messaging.webhooks."""

import logging

from waportal.celery import app

logger = logging.getLogger(__name__)


@app.task(name="messaging.deliver_webhooks", ignore_result=True)
def deliver_webhooks(endpoint_id: int, device_id: int | None) -> int:
    """Send what is due to one endpoint for one device, in order (see messaging.webhooks.drain)."""
    from messaging import webhooks

    return webhooks.drain(endpoint_id, device_id)


@app.task(name="messaging.send_test_webhook", ignore_result=True)
def send_test_event(endpoint_id: int) -> None:
    from messaging import webhooks
    from messaging.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.select_related("organization").filter(pk=endpoint_id).first()
    if endpoint is not None:
        webhooks.send_test_event(organization=endpoint.organization, endpoint=endpoint)


@app.task(name="messaging.redeliver_webhook", ignore_result=True)
def redeliver(delivery_id: int) -> None:
    from messaging import webhooks
    from messaging.models import WebhookDelivery

    delivery = WebhookDelivery.objects.select_related("organization").filter(pk=delivery_id).first()
    if delivery is not None:
        webhooks.redeliver(organization=delivery.organization, delivery=delivery)


@app.task(name="messaging.requeue_stalled_webhooks", ignore_result=True)
def requeue_stalled() -> int:
    from messaging import webhooks

    return webhooks.requeue_stalled()


@app.task(name="messaging.cleanup_expired", ignore_result=True)
def cleanup() -> dict:
    """Expired QR codes, delivery logs past WEBHOOK_LOG_RETENTION_DAYS and API idempotency keys past 24 h."""
    from messaging import webhooks
    from messaging.api import idempotency

    result = {**webhooks.cleanup(), "idempotency_keys": idempotency.forget_expired()}
    logger.info("clean-up: %s", result)
    return result


@app.task(name="messaging.announce_unheld_devices", ignore_result=True)
def announce_unheld() -> int:
    """Numbers whose session worker stopped renewing its lease show disconnected on open pages, live."""
    from messaging.services import devices

    return devices.announce_unheld()


@app.task(name="messaging.wake_up", ignore_result=True)
def wake_up() -> None:
    """Does nothing: sent to make a worker's consumer loop look at its shutdown flag now."""
