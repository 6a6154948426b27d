"""The staff panel for linked numbers, the workers holding them, and their chats, messages and contacts.

Read-mostly: connection state belongs to the session workers and the device services (a change
here would not reach WhatsApp), so only a number's name is editable. A live QR code or pairing
code would let anyone link their phone to the organization's session: never shown here.
A webhook's signing secret is never shown either: the organization's webhook page reveals and rotates it.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from accounts.services import client_ip, record_audit
from messaging.models import (
    Chat,
    Contact,
    Device,
    DeviceLease,
    Message,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from messaging.models.device import SessionWorker


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "phone",
        "status",
        "wanted",
        "holder",
        "last_seen_at",
        "connected_at",
        "created_at",
    ]
    list_filter = ["status", "wanted", "organization"]
    search_fields = ["name", "phone", "jid", "push_name", "organization__name", "organization__slug"]
    list_select_related = ["organization", "lease"]
    exclude = ["qr_code", "pair_code"]
    readonly_fields = [
        "organization",
        "jid",
        "phone",
        "push_name",
        "status",
        "status_reason",
        "wanted",
        "qr_expires_at",
        "last_seen_at",
        "connected_at",
        "created_at",
        "updated_at",
    ]
    date_hierarchy = "created_at"

    @admin.display(description=_("held by"))
    def holder(self, obj):
        lease = getattr(obj, "lease", None)
        if lease is None:
            return "—"
        return lease.worker_id if lease.is_live else _("%(worker)s (expired)") % {"worker": lease.worker_id}

    def has_add_permission(self, request):
        return False  # linking happens in the dashboard or the API, through a session worker

    def has_delete_permission(self, request, obj=None):
        return False  # removing logs the session out first: the dashboard's "remove" does that

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        record_audit(
            organization=obj.organization,
            action="admin.device.change",
            actor=request.user,
            obj=obj,
            ip_address=client_ip(request),
            details={"fields": sorted(form.changed_data)},
        )


@admin.register(DeviceLease)
class DeviceLeaseAdmin(ReadOnlyAdmin):
    list_display = ["device", "worker_id", "channel_name", "acquired_at", "expires_at", "is_live"]
    search_fields = ["worker_id", "device__name", "device__phone"]
    list_select_related = ["device"]

    @admin.display(boolean=True, description=_("live"))
    def is_live(self, obj):
        return obj.is_live


@admin.register(SessionWorker)
class SessionWorkerAdmin(ReadOnlyAdmin):
    list_display = ["worker_id", "hostname", "pid", "started_at", "heartbeat_at"]
    search_fields = ["worker_id", "hostname"]


@admin.register(Chat)
class ChatAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "jid", "device", "organization", "is_group", "unread_count", "last_message_at"]
    list_filter = ["is_group", "organization"]
    search_fields = ["jid", "name", "device__name", "device__phone", "organization__name"]
    list_select_related = ["device", "organization"]
    date_hierarchy = "last_message_at"


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["wa_id", "chat", "device", "from_me", "kind", "status", "timestamp"]
    list_filter = ["status", "kind", "from_me", "organization"]
    search_fields = ["wa_id", "text", "caption", "sender_jid", "chat__jid", "chat__name", "device__phone"]
    list_select_related = ["chat", "device"]
    date_hierarchy = "timestamp"


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "jid", "device", "organization", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["jid", "name", "push_name", "business_name", "device__phone"]
    list_select_related = ["device", "organization"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = [
        "url",
        "organization",
        "active",
        "paused_at",
        "consecutive_failures",
        "last_success_at",
        "created_at",
    ]
    list_filter = ["active", "organization"]
    search_fields = ["url", "description", "organization__name", "organization__slug"]
    list_select_related = ["organization"]
    exclude = ["secret"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "secret"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["number", "attempted_at", "status_code", "duration_ms", "succeeded", "error", "retry_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "event",
        "endpoint",
        "organization",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
        "delivered_at",
    ]
    list_filter = ["status", "event", "is_test", "organization"]
    search_fields = ["endpoint__url", "idempotency_key", "organization__name"]
    list_select_related = ["endpoint", "organization"]
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
