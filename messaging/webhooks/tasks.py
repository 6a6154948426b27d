"""Celery tasks of the webhooks: deliver a queue, send a test event, redeliver, pick up stalled queues.

Thin: the work is in messaging.webhooks.delivery and .services. The task names are the contract with
queued messages (a broker may hold tasks sent by the previous version): they never change.
"""

from waportal.celery import app


@app.task(name="messaging.deliver_webhooks", ignore_result=True)
def deliver_webhooks(endpoint_id: int, device_id: int | None) -> int:
    """Send what is due to one endpoint for one device, in order (see messaging.webhooks.delivery.drain)."""
    from messaging.webhooks import delivery, queueing

    queueing.draining(endpoint_id, device_id)
    return delivery.drain(endpoint_id, device_id)


@app.task(name="messaging.send_test_webhook", ignore_result=True)
def send_test_event(endpoint_id: int) -> None:
    from messaging.models import WebhookEndpoint
    from messaging.webhooks import services

    endpoint = WebhookEndpoint.objects.select_related("organization").filter(pk=endpoint_id).first()
    if endpoint is not None:
        services.send_test_event(organization=endpoint.organization, endpoint=endpoint)


@app.task(name="messaging.redeliver_webhook", ignore_result=True)
def redeliver(delivery_id: int) -> None:
    from messaging.models import WebhookDelivery
    from messaging.webhooks import services

    delivery = WebhookDelivery.objects.select_related("organization").filter(pk=delivery_id).first()
    if delivery is not None:
        services.redeliver(organization=delivery.organization, delivery=delivery)


@app.task(name="messaging.requeue_stalled_webhooks", ignore_result=True)
def requeue_stalled() -> int:
    from messaging.webhooks import delivery

    return delivery.requeue_stalled()
