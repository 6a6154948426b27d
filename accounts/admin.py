"""The staff panel for people, organizations, invitations, keys and the audit log.

Read-mostly where secrets live: API key hashes and invitation tokens are never editable, tokens are
never shown; the audit log cannot be edited or deleted from here. Staff writes to tenant objects
are themselves audited, in the organization they touch.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User
from accounts.services import client_ip, record_audit


class AuditedAdmin(admin.ModelAdmin):
    """Records staff changes made through the panel in the organization's audit log."""

    def _organization_of(self, obj):
        return obj if isinstance(obj, Organization) else getattr(obj, "organization", None)

    def _audit(self, request, obj, verb, details=None):
        organization = self._organization_of(obj)
        if organization is None or organization.pk is None:
            return
        record_audit(
            organization=organization,
            action=f"admin.{obj._meta.model_name}.{verb}",
            actor=request.user,
            obj=obj,
            ip_address=client_ip(request),
            details=details,
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._audit(
            request,
            obj,
            "change" if change else "add",
            {"fields": sorted(form.changed_data)} if change else None,
        )

    def delete_model(self, request, obj):
        if not isinstance(obj, Organization):  # the organization's log goes with it
            self._audit(request, obj, "delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            if not isinstance(obj, Organization):
                self._audit(request, obj, "delete")
        super().delete_queryset(request, queryset)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    readonly_fields = ["last_login", "date_joined"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name")}),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["name", "key_prefix", "access", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # a key is created in the dashboard, where its raw value is shown once


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = ["name", "slug", "member_count", "device_count", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]
    inlines = [MembershipInline, ApiKeyInline]
    date_hierarchy = "created_at"

    @admin.display(description=_("members"))
    def member_count(self, obj):
        return obj.memberships.count()

    @admin.display(description=_("numbers"))
    def device_count(self, obj):
        return obj.devices.count()


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]
    readonly_fields = ["created_at"]


@admin.register(Invitation)
class InvitationAdmin(AuditedAdmin):
    list_display = [
        "email",
        "organization",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name", "invited_by__email"]
    list_select_related = ["organization", "invited_by"]
    # The token is the invitation link's secret: never shown, never edited here.
    exclude = ["token"]
    readonly_fields = ["organization", "email", "invited_by", "created_at", "accepted_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False  # invitations are made on the organization page, which mails the link


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    list_display = [
        "name",
        "organization",
        "key_prefix",
        "access",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["access", "organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key_prefix", "organization__name", "created_by__email"]
    list_select_related = ["organization", "created_by"]
    # Only the hash is stored; it is shown read-only. Staff may rename, change access, or revoke with
    # the action (a revoked key is never brought back: its holder gets a new one).
    fields = [
        "organization",
        "name",
        "access",
        "key_prefix",
        "key_hash",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = [
        "organization",
        "key_prefix",
        "key_hash",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    date_hierarchy = "created_at"
    actions = ["revoke_keys"]

    def has_add_permission(self, request):
        return False  # created in the dashboard, where the raw key is shown once

    @admin.action(description=_("Revoke the selected API keys"))
    def revoke_keys(self, request, queryset):
        now = timezone.now()
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("organization"):
            api_key.revoked_at = now
            api_key.save(update_fields=["revoked_at"])
            self._audit(request, api_key, "revoke")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "organization",
        "actor",
        "api_key",
        "action",
        "object_type",
        "object_repr",
        "ip_address",
    ]
    list_filter = ["action", "object_type", "organization"]
    search_fields = ["action", "object_repr", "object_id", "actor__email", "organization__name", "ip_address"]
    list_select_related = ["organization", "actor", "api_key"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
