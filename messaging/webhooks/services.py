"""The write path of the webhook pages (and the API, should it manage webhooks): each in a transaction,
each audited."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from messaging import safe_fetch
from messaging.webhooks.peer import render_in
from messaging.webhooks.queueing import TEST_EVENT, enqueue_on_commit
from messaging.webhooks.recording import resume


def create_endpoint(
    *,
    organization,
    url,
    events,
    devices=(),
    description="",
    active=True,
    payload_format=None,
    actor=None,
    ip_address=None,
):
    from accounts.services import record_audit
    from messaging.models import WebhookEndpoint

    url = safe_fetch.validate_public_url(url, field="url")
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            organization=organization,
            url=url,
            description=description,
            events=sorted(set(events)),
            active=active,
            payload_format=_checked_format(payload_format or "waportal"),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        endpoint.devices.set(organization.devices.filter(pk__in=[d.pk for d in devices]))
        record_audit(
            organization=organization,
            action="webhook.create",
            actor=actor,
            obj=endpoint,
            ip_address=ip_address,
            details={
                "events": endpoint.events,
                "devices": [d.pk for d in devices],
                "payload_format": endpoint.payload_format,
            },
        )
    return endpoint


def _checked_format(value: str) -> str:
    from django.core.exceptions import ValidationError
    from django.utils.translation import gettext as _

    from messaging.models import WebhookFormat

    if value not in WebhookFormat.values:
        raise ValidationError(
            {
                "payload_format": _("%(value)s is not a payload format; these are: %(names)s.")
                % {"value": value, "names": ", ".join(WebhookFormat.values)}
            }
        )
    return value


def update_endpoint(
    *,
    organization,
    endpoint,
    url,
    events,
    devices=(),
    description="",
    active=True,
    payload_format=None,
    actor=None,
    ip_address=None,
):
    """Change the endpoint; `payload_format` None keeps its format (it applies to events stored from now on)."""
    from accounts.services import record_audit

    url = safe_fetch.validate_public_url(url, field="url")
    with transaction.atomic():
        endpoint = organization.webhook_endpoints.select_for_update().get(pk=endpoint.pk)
        endpoint.url = url
        endpoint.description = description
        endpoint.events = sorted(set(events))
        endpoint.active = active
        if payload_format is not None:
            endpoint.payload_format = _checked_format(payload_format)
        endpoint.save()
        endpoint.devices.set(organization.devices.filter(pk__in=[d.pk for d in devices]))
        if endpoint.receiving:  # switched back on: what waited goes out now
            for device_id in set(
                endpoint.deliveries.filter(status__in=["pending", "retrying"]).values_list(
                    "device_id", flat=True
                )
            ):
                enqueue_on_commit(endpoint.pk, device_id)
        record_audit(
            organization=organization,
            action="webhook.update",
            actor=actor,
            obj=endpoint,
            ip_address=ip_address,
            details={
                "events": endpoint.events,
                "devices": [d.pk for d in devices],
                "active": active,
                "payload_format": endpoint.payload_format,
            },
        )
    return endpoint


def delete_endpoint(*, organization, endpoint, actor=None, ip_address=None) -> None:
    from accounts.services import record_audit

    with transaction.atomic():
        # Locked, as a sender locks it to record an attempt: an attempt is never written for a delivery that
        # this delete is removing (a foreign-key violation at commit, on PostgreSQL).
        endpoint = organization.webhook_endpoints.select_for_update().get(pk=endpoint.pk)
        record_audit(
            organization=organization,
            action="webhook.delete",
            actor=actor,
            obj=endpoint,
            ip_address=ip_address,
        )
        endpoint.delete()


def rotate_secret(*, organization, endpoint, actor=None, ip_address=None):
    from accounts.services import record_audit
    from messaging.models import new_webhook_secret

    with transaction.atomic():
        endpoint = organization.webhook_endpoints.select_for_update().get(pk=endpoint.pk)
        endpoint.secret = new_webhook_secret()
        endpoint.save(update_fields=["secret", "updated_at"])
        record_audit(
            organization=organization,
            action="webhook.rotate_secret",
            actor=actor,
            obj=endpoint,
            ip_address=ip_address,
        )
    return endpoint


def resume_endpoint(*, organization, endpoint, actor=None, ip_address=None):
    """Lift a pause: the failure count starts again and what was held is delivered, oldest first."""
    from accounts.services import record_audit

    with transaction.atomic():
        endpoint = organization.webhook_endpoints.select_for_update().get(pk=endpoint.pk)
        resume(endpoint)
        record_audit(
            organization=organization,
            action="webhook.resume",
            actor=actor,
            obj=endpoint,
            ip_address=ip_address,
        )
    return endpoint


def send_test_event(*, organization, endpoint, actor=None, ip_address=None):
    """Queue a `webhook.test` delivery (sent even to a paused or inactive endpoint, so it can be checked)."""
    from accounts.services import record_audit
    from messaging.models import WebhookDelivery

    with transaction.atomic():
        endpoint = organization.webhook_endpoints.get(pk=endpoint.pk)
        payload = {"message": "This is a test event from waportal.", "endpoint_id": endpoint.pk}
        _, body = render_in(
            endpoint.payload_format, event=TEST_EVENT, device=None, payload=payload, at=timezone.now()
        )
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            organization=organization,
            event=TEST_EVENT,
            device=None,
            body=body,
            is_test=True,
        )
        record_audit(
            organization=organization, action="webhook.test", actor=actor, obj=endpoint, ip_address=ip_address
        )
        enqueue_on_commit(endpoint.pk, None)
    return delivery


def redeliver(*, organization, delivery, actor=None, ip_address=None):
    """Send a delivery again as a new delivery (its own attempts and retries) with the same body and
    Idempotency-Key, so a receiver that already has it can drop it."""
    from accounts.services import record_audit
    from messaging.models import WebhookDelivery

    with transaction.atomic():
        original = WebhookDelivery.objects.select_related("endpoint").get(
            pk=delivery.pk, organization=organization
        )
        again = WebhookDelivery.objects.create(
            endpoint=original.endpoint,
            organization=organization,
            event=original.event,
            device_id=original.device_id,
            body=original.body,
            idempotency_key=original.idempotency_key,
            is_test=original.is_test,
            redelivery_of=original,
        )
        record_audit(
            organization=organization,
            action="webhook.redeliver",
            actor=actor,
            obj=original.endpoint,
            ip_address=ip_address,
            details={"delivery": original.pk, "redelivery": again.pk, "event": original.event},
        )
        enqueue_on_commit(again.endpoint_id, again.device_id)
    return again
