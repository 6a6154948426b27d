"""One webhook per device, as the peer server's clients manage it (GET/PATCH /devices/{id}/webhook).

It is an ordinary webhook endpoint of the organization, limited to the device and marked by its description,
made, changed and removed through messaging.webhooks' services (so audited and delivered like any other). One
made here sends the peer's payload format (messaging.webhooks.peer): its clients are the peer's; the dashboard
can switch it to ours.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from messaging import webhooks
from messaging.models import WebhookEndpoint, WebhookFormat

# The peer's event names that differ from ours; the others (message, message.reaction, ...) are the same.
PEER_EVENTS = {"message.ack": "message.receipt", "chat_presence": "chat.presence"}
# Taken too, though shown under our name: the peer's group.joined is our group.participants (adding this number).
PEER_ALIASES = {"group.joined": "group.participants"}
DESCRIPTION = "Webhook of device {pk} (set through the API)"
MIN_SECRET = 8
MAX_SECRET = 100


def device_webhook(*, organization, device) -> WebhookEndpoint | None:
    return (
        organization.webhook_endpoints.filter(description=DESCRIPTION.format(pk=device.pk), devices=device)
        .order_by("pk")
        .first()
    )


def _events(names) -> list[str]:
    if not names:
        return sorted(webhooks.EVENT_NAMES)  # none named: every event, as the peer sends them all
    events = []
    for name in names:
        ours = PEER_EVENTS.get(name) or PEER_ALIASES.get(name, name)
        if ours not in webhooks.EVENT_NAMES:
            raise ValidationError(
                {
                    "webhook_events": _("%(name)s is not an event; these are: %(names)s.")
                    % {"name": name, "names": ", ".join(sorted(webhooks.EVENT_NAMES))}
                }
            )
        events.append(ours)
    return events


def set_device_webhook(
    *, organization, device, url: str, secret: str | None = None, events=None, actor=None
) -> WebhookEndpoint | None:
    """Point the device's webhook at `url` ("" removes it); `secret` (optional) replaces its signing secret,
    `events` (None keeps them; empty: every event) the events it receives. Returns it, or None once removed."""
    current = device_webhook(organization=organization, device=device)
    url = (url or "").strip()
    if not url:
        if current is not None:
            webhooks.delete_endpoint(organization=organization, endpoint=current, actor=actor)
        return None
    if secret is not None and not (MIN_SECRET <= len(secret) <= MAX_SECRET):
        raise ValidationError(
            {
                "webhook_secret": _("must be %(min)s to %(max)s characters.")
                % {"min": MIN_SECRET, "max": MAX_SECRET}
            }
        )
    chosen = _events(events) if events is not None or current is None else current.events
    with transaction.atomic():
        if current is None:
            endpoint = webhooks.create_endpoint(
                organization=organization,
                url=url,
                events=chosen,
                devices=[device],
                description=DESCRIPTION.format(pk=device.pk),
                payload_format=WebhookFormat.PEER,
                actor=actor,
            )
        else:
            endpoint = webhooks.update_endpoint(
                organization=organization,
                endpoint=current,
                url=url,
                events=chosen,
                devices=[device],
                description=current.description,
                active=current.active,
                actor=actor,
            )
        if secret is not None and secret != endpoint.secret:
            # The webhook services rotate secrets but take none from outside; the peer's clients choose theirs.
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=secret)
            endpoint.secret = secret
    return endpoint
