"""Webhook endpoints of an organization, and the log of what was delivered to them (deliveries and attempts)."""

import secrets
import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from messaging.models.lookups import LiteralIn

__all__ = [
    "UNFINISHED",
    "WEBHOOK_EVENTS",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
    "WebhookFormat",
    "new_webhook_secret",
]

# The events a customer can subscribe to: public name -> label. The names are part of the webhook contract.
WEBHOOK_EVENTS = {
    "message": _("Message received"),
    "message.sent": _("Message sent"),
    "message.failed": _("Message failed to send"),
    "message.unknown": _("Message sending cut off (sent?)"),
    "message.receipt": _("Receipt (delivered, read, played)"),
    "message.edited": _("Message edited"),
    "message.revoked": _("Message revoked"),
    "message.reaction": _("Reaction"),
    "chat.presence": _("Typing in a chat (chat presence)"),
    "message.poll_vote": _("Poll vote"),
    "group.participants": _("Group participants changed"),
    "group.settings": _("Group settings changed"),
    "group.join_request": _("Group join request"),
    "device.connected": _("Device connected"),
    "device.disconnected": _("Device disconnected"),
    "device.logged_out": _("Device logged out"),
    "device.qr": _("QR code updated"),
    "history.synced": _("History imported after linking"),
    "call.offer": _("Incoming call (rejected or not)"),
    "label.edit": _("Label made, changed or deleted"),
    "label.association": _("Label put on a chat or taken off"),
}


class WebhookFormat(models.TextChoices):
    """The shape of the JSON body: ours, or the reference server's (go-whatsapp-web-multidevice v9), whose
    receivers then work unchanged (messaging.webhooks.peer)."""

    WAPORTAL = "waportal", _("waportal (ours)")
    PEER = "peer", _("go-whatsapp-web-multidevice (the reference server)")


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    # Shared with the receiver, which checks X-Hub-Signature-256 with it; shown to admins, rotatable.
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    # Public event names (WEBHOOK_EVENTS keys) this endpoint receives.
    events = models.JSONField(default=list, blank=True)
    # Only events of these devices; none selected means every device of the organization.
    devices = models.ManyToManyField("messaging.Device", blank=True, related_name="webhook_endpoints")
    active = models.BooleanField(_("active"), default=True)
    # The body's shape, fixed when an event is stored (a change applies to events from then on; a redelivery
    # sends the body as it was sent).
    payload_format = models.CharField(
        _("payload format"), max_length=10, choices=WebhookFormat.choices, default=WebhookFormat.WAPORTAL
    )
    # Set when every attempt failed for WEBHOOK_PAUSE_AFTER_HOURS: its events are still stored, and held;
    # one of them is sent as a probe every WEBHOOK_PROBE_SECONDS, and the first 2xx (or Resume) lifts it.
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=300, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # The first failed attempt since the last success (None: the last attempt succeeded).
    failing_since = models.DateTimeField(null=True, blank=True)
    # While paused: when the next probe may go (one at a time across the endpoint's queues).
    next_probe_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.url

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def receiving(self) -> bool:
        return self.active and self.paused_at is None

    def wants(self, event: str) -> bool:
        return event in (self.events or [])


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    RETRYING = "retrying", _("Retrying")
    SUCCEEDED = "succeeded", _("Delivered")
    FAILED = "failed", _("Failed")


# The deliveries still to send (pending, retrying, sending): a few, however many sent ones the log keeps. Their
# partial index (webhook_unfinished) is what every claim, drain and sweep reads; a query names it with this
# condition, written as the index's is, because SQLite uses a partial index only when the query repeats its
# condition and a Django `status__in` sends the statuses as parameters. Without it, SQLite walked every
# delivery of the endpoint in id order (an hour of a 20-number soak: 68,000 rows, 35 ms a claim).
_UNFINISHED_STATUSES = ("pending", "retrying", "sending")
UNFINISHED = LiteralIn(F("status"), _UNFINISHED_STATUSES)


class WebhookDelivery(models.Model):
    """One event for one endpoint: the exact signed body, and where it is in its retries."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=40)
    device = models.ForeignKey(
        "messaging.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The JSON body as sent: redelivery sends the very same bytes (and signature).
    body = models.TextField()
    # Sent as the Idempotency-Key header (the same on every attempt and redelivery): receivers drop repeats.
    idempotency_key = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    # A redelivery is a new delivery (its own attempts and retries) with the original's body and key.
    redelivery_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="redeliveries"
    )
    status = models.CharField(
        max_length=12, choices=WebhookDeliveryStatus.choices, default=WebhookDeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # While SENDING: until when the sender holds it (a worker that died lets it go after this).
    locked_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    is_test = models.BooleanField(default=False)
    # A received message's delivery is stored with the message, then held (later deliveries of its queue wait
    # behind it) until its media is stored and the body names it; if that never happens (the worker died),
    # it goes as it is once this time has passed.
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        # One index for what is still to send (the log's pages read by endpoint, through its foreign key's): a
        # wider one on (endpoint, device, status, next_attempt_at) over every delivery was the planner's pick for
        # "sending now?" and walked all the sent ones of the endpoint.
        indexes = [
            models.Index(
                fields=["endpoint", "id"],
                condition=Q(status__in=_UNFINISHED_STATUSES),
                name="webhook_unfinished",
            ),
        ]

    def __str__(self):
        return f"{self.event} → {self.endpoint_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (WebhookDeliveryStatus.SUCCEEDED, WebhookDeliveryStatus.FAILED)


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery: when, what came back, how long it took."""

    EXCERPT_LIMIT = 1000

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    succeeded = models.BooleanField(default=False)
    # When the next try was scheduled (None: none).
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["attempted_at", "id"]

    def __str__(self):
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"
