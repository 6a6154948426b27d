"""The write path for organizations, members, invitations, API keys and the audit log."""

from django.db import models, transaction

from accounts.models import AuditEvent, Organization


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record_audit(
    *,
    organization: Organization,
    action: str,
    actor=None,
    api_key=None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    ip_address: str | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Write one audit entry. Call it inside the service's transaction, so the entry and the write agree."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    return AuditEvent.objects.create(
        organization=organization,
        actor=actor if actor is not None and getattr(actor, "is_authenticated", False) else None,
        api_key=api_key,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:200],
        ip_address=ip_address,
        details=details or {},
    )


@transaction.atomic
def create_organization(*, name: str, slug: str, owner) -> Organization:
    from accounts.models import Membership, Role

    organization = Organization.objects.create(name=name, slug=slug)
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    record_audit(organization=organization, action="organization.create", actor=owner, obj=organization)
    return organization
