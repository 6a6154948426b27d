"""The write path for organizations, members, invitations, API keys and the audit log.

Who may change whom (the rule the organization page and these functions share):
- owners and admins manage members, invitations and API keys; operators and viewers may not;
- only an owner may grant the owner role, or change or remove an owner: an admin cannot make
  themselves (or anyone) an owner, nor push an owner out;
- the last owner of an organization can be neither demoted nor removed, so an organization is
  never left without someone who can manage it;
- anyone may leave an organization (remove their own membership), except its last owner.
Refusals of rank raise PermissionDenied (403); refusals of the last-owner rule and bad input raise
ValidationError with a sentence for the person.
"""

import base64
import binascii
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from accounts.models import (
    HISTORY_DAYS_CHOICES,
    ApiKey,
    ApiKeyAccess,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    PasswordResetRequest,
    Role,
    User,
    hash_api_key,
)
from waportal import fast_insert

INVITATION_DAYS = 7
# last_used_at is written at most this often per key, so a busy key does not write on every call.
API_KEY_TOUCH_SECONDS = 30


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
    return fast_insert.insert(
        AuditEvent(
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
    )


# --- organizations -------------------------------------------------------------------------------


def unique_slug(name: str) -> str:
    base = (slugify(name) or "org")[:50]
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def create_organization(
    *, name: str, owner, slug: str | None = None, ip_address: str | None = None
) -> Organization:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the organization a name.")})
    organization = Organization.objects.create(name=name[:120], slug=slug or unique_slug(name))
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    record_audit(
        organization=organization,
        action="organization.create",
        actor=owner,
        obj=organization,
        ip_address=ip_address,
    )
    return organization


@transaction.atomic
def rename_organization(
    *, organization: Organization, name: str, actor, ip_address: str | None = None
) -> Organization:
    _require_manager(organization, actor)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the organization a name.")})
    old = organization.name
    organization.name = name[:120]
    organization.save(update_fields=["name"])
    record_audit(
        organization=organization,
        action="organization.rename",
        actor=actor,
        obj=organization,
        ip_address=ip_address,
        details={"from": old, "to": organization.name},
    )
    return organization


def set_history_days(
    *, organization: Organization, days, actor, ip_address: str | None = None
) -> Organization:
    """How far back a newly linked number's history is imported: one of HISTORY_DAYS_CHOICES ("all" or ""
    for everything)."""
    _require_manager(organization, actor)
    allowed = {value for value, _label in HISTORY_DAYS_CHOICES}
    raw = "" if days is None else str(days).strip().lower()
    if raw in ("", "all"):
        value = None
    elif raw.isdigit() and int(raw) in allowed:
        value = int(raw)
    else:
        choices = ", ".join("all" if v is None else str(v) for v, _label in HISTORY_DAYS_CHOICES)
        raise ValidationError({"history_days": _("Choose one of: %(choices)s.") % {"choices": choices}})
    old = organization.history_days
    organization.history_days = value
    organization.save(update_fields=["history_days"])
    record_audit(
        organization=organization,
        action="organization.history_days",
        actor=actor,
        obj=organization,
        ip_address=ip_address,
        details={"from": old, "to": value},
    )
    return organization


# --- members -------------------------------------------------------------------------------------


def _membership_of(organization: Organization, user) -> Membership | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return organization.memberships.filter(user=user).first()


def _require_manager(organization: Organization, actor) -> Membership:
    membership = _membership_of(organization, actor)
    if membership is None or not membership.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only owners and admins may do this."))
    return membership


def _owner_count(organization: Organization) -> int:
    # Lock the owner rows so two concurrent demotions cannot both see "another owner is left".
    return len(
        list(
            organization.memberships.select_for_update().filter(role=Role.OWNER).values_list("id", flat=True)
        )
    )


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError({"role": _("Choose one of the roles.")})
    return role


@transaction.atomic
def change_role(
    *, organization: Organization, membership: Membership, role: str, actor, ip_address: str | None = None
) -> Membership:
    if membership.organization_id != organization.id:
        raise Membership.DoesNotExist
    actor_membership = _require_manager(organization, actor)
    role = _check_role(role)
    if membership.role == role:
        return membership
    touches_owner = role == Role.OWNER or membership.role == Role.OWNER
    if touches_owner and actor_membership.role != Role.OWNER:
        raise PermissionDenied(_("Only an owner may make or unmake owners."))
    if membership.role == Role.OWNER and _owner_count(organization) <= 1:
        raise ValidationError(
            _("%(email)s is the last owner. Make someone else an owner first.")
            % {"email": membership.user.email}
        )
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    record_audit(
        organization=organization,
        action="member.role_change",
        actor=actor,
        obj=membership,
        object_repr=membership.user.email,
        ip_address=ip_address,
        details={"from": old, "to": role},
    )
    return membership


@transaction.atomic
def remove_member(
    *, organization: Organization, membership: Membership, actor, ip_address: str | None = None
) -> None:
    if membership.organization_id != organization.id:
        raise Membership.DoesNotExist
    leaving = membership.user_id == getattr(actor, "pk", None)
    if not leaving:
        actor_membership = _require_manager(organization, actor)
        if membership.role == Role.OWNER and actor_membership.role != Role.OWNER:
            raise PermissionDenied(_("Only an owner may remove an owner."))
    if membership.role == Role.OWNER and _owner_count(organization) <= 1:
        raise ValidationError(
            _("%(email)s is the last owner and cannot be removed.") % {"email": membership.user.email}
        )
    record_audit(
        organization=organization,
        action="member.leave" if leaving else "member.remove",
        actor=actor,
        obj=membership,
        object_repr=membership.user.email,
        ip_address=ip_address,
        details={"role": membership.role},
    )
    # Its deletion also ends the member's open live sockets in this organization, once committed
    # (messaging.live listens for it: the dashboard must not keep showing them anything).
    membership.delete()


# --- invitations ---------------------------------------------------------------------------------


@transaction.atomic
def invite_member(
    *, organization: Organization, email: str, role: str, actor, ip_address: str | None = None
) -> Invitation:
    actor_membership = _require_manager(organization, actor)
    role = _check_role(role)
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise PermissionDenied(_("Only an owner may invite an owner."))
    email = User.objects.normalize_email((email or "").strip()).lower()
    try:
        from django.core.validators import validate_email

        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": _("Enter a valid email address.")}) from None
    if organization.memberships.filter(user__email__iexact=email).exists():
        raise ValidationError({"email": _("%(email)s is already a member.") % {"email": email}})
    # A new invitation replaces any open one for the same address: one live link per person.
    now = timezone.now()
    organization.invitations.filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        invited_by=actor,
        expires_at=now + timedelta(days=INVITATION_DAYS),
    )
    record_audit(
        organization=organization,
        action="invitation.create",
        actor=actor,
        obj=invitation,
        ip_address=ip_address,
        details={"email": email, "role": role},
    )
    return invitation


def send_invitation_email(invitation: Invitation, link: str) -> bool:
    """Mail the link through Django's email backend. False when the mail could not be handed over
    (the page shows the link anyway, so the inviter can pass it on)."""
    inviter = invitation.invited_by.email if invitation.invited_by else "waportal"
    subject = _("You are invited to %(organization)s on waportal") % {
        "organization": invitation.organization.name
    }
    body = _(
        "%(inviter)s invited you to join %(organization)s on waportal as %(role)s.\n\n"
        "Open this link to accept (valid until %(expires)s):\n%(link)s\n"
    ) % {
        "inviter": inviter,
        "organization": invitation.organization.name,
        "role": invitation.get_role_display(),
        "expires": timezone.localtime(invitation.expires_at).strftime("%Y-%m-%d %H:%M %Z"),
        "link": link,
    }
    try:
        send_mail(subject, body, getattr(settings, "DEFAULT_FROM_EMAIL", None), [invitation.email])
    except Exception:  # noqa: BLE001 - an unreachable mail server must not lose the invitation
        return False
    return True


@transaction.atomic
def revoke_invitation(
    *, organization: Organization, invitation: Invitation, actor, ip_address: str | None = None
) -> Invitation:
    if invitation.organization_id != organization.id:
        raise Invitation.DoesNotExist
    actor_membership = _require_manager(organization, actor)
    if invitation.role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise PermissionDenied(_("Only an owner may withdraw an owner's invitation."))
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record_audit(
            organization=organization,
            action="invitation.revoke",
            actor=actor,
            obj=invitation,
            ip_address=ip_address,
        )
    return invitation


def invitation_problem(invitation: Invitation) -> str | None:
    """Why this invitation can no longer be used, in words for the person holding the link."""
    if invitation.accepted_at is not None:
        return _("This invitation has already been used.")
    if invitation.revoked_at is not None:
        return _("This invitation was withdrawn.")
    if invitation.expires_at <= timezone.now():
        return _("This invitation has expired. Ask for a new one.")
    return None


@transaction.atomic
def accept_invitation(
    *, invitation: Invitation, user, ip_address: str | None = None, new_user: bool = False
) -> Membership:
    # Lock the row so one link joins one person once, even when clicked twice.
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=invitation.pk)
    )
    if problem := invitation_problem(invitation):
        raise ValidationError(problem)
    if user.email.lower() != invitation.email.lower():
        raise PermissionDenied(_("This invitation is for %(email)s.") % {"email": invitation.email})
    organization = invitation.organization
    membership, created = Membership.objects.get_or_create(
        organization=organization, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    record_audit(
        organization=organization,
        action="invitation.accept",
        actor=user,
        obj=invitation,
        ip_address=ip_address,
        details={"role": membership.role, "new_user": new_user, "already_member": not created},
    )
    return membership


@transaction.atomic
def register_from_invitation(
    *, invitation: Invitation, first_name: str, last_name: str, password: str, ip_address: str | None = None
) -> tuple[User, Membership]:
    """A person new to waportal sets their name and password from the link, and joins."""
    if problem := invitation_problem(invitation):
        raise ValidationError(problem)
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ValidationError(_("An account with this email exists already: sign in to accept."))
    user = User(
        email=invitation.email.lower(), first_name=first_name.strip()[:150], last_name=last_name.strip()[:150]
    )
    from django.contrib.auth.password_validation import validate_password

    try:
        validate_password(password, user)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None
    user.set_password(password)
    user.save()
    membership = accept_invitation(invitation=invitation, user=user, ip_address=ip_address, new_user=True)
    return user, membership


# --- API keys ------------------------------------------------------------------------------------


@transaction.atomic
def create_api_key(
    *,
    organization: Organization,
    name: str,
    access: str = ApiKeyAccess.FULL,
    actor,
    ip_address: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; answer it and its raw value, which is shown once and never stored."""
    _require_manager(organization, actor)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the key a name, to recognise it later.")})
    if access not in ApiKeyAccess.values:
        raise ValidationError({"access": _("Choose full or read-only access.")})
    raw, prefix, digest = ApiKey.generate()
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name[:80],
        access=access,
        key_prefix=prefix,
        key_hash=digest,
        created_by=actor,
    )
    record_audit(
        organization=organization,
        action="api_key.create",
        actor=actor,
        obj=api_key,
        ip_address=ip_address,
        details={"access": access, "prefix": prefix},
    )
    return api_key, raw


@transaction.atomic
def revoke_api_key(
    *, organization: Organization, api_key: ApiKey, actor, ip_address: str | None = None
) -> ApiKey:
    if api_key.organization_id != organization.id:
        raise ApiKey.DoesNotExist
    _require_manager(organization, actor)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        record_audit(
            organization=organization,
            action="api_key.revoke",
            actor=actor,
            obj=api_key,
            ip_address=ip_address,
        )
    return api_key


def authenticate_api_key(raw: str | None) -> ApiKey | None:
    """The active key with this raw value (and its organization), or None. Notes when it was used."""
    if not raw:
        return None
    api_key = (
        ApiKey.objects.select_related("organization")
        .filter(key_hash=hash_api_key(raw.strip()), revoked_at__isnull=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() >= API_KEY_TOUCH_SECONDS:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def raw_api_key_from_request(request) -> str | None:
    """The key as clients send it: `Authorization: Bearer <key>`, `X-Api-Key: <key>`, or HTTP Basic
    with the key as the password (any user name)."""
    if key := request.headers.get("X-Api-Key"):
        return key.strip()
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, _colon, password = decoded.partition(":")
        return password or None
    return None


def api_key_from_request(request) -> ApiKey | None:
    return authenticate_api_key(raw_api_key_from_request(request))


# --- password reset throttling --------------------------------------------------------------------


def password_reset_wait(*, email: str, ip_address: str | None) -> int:
    """Count a password reset request for `email` from `ip_address`, or refuse it: the seconds to wait when the
    address (PASSWORD_RESET_LIMIT_PER_ADDRESS) or the client address (PASSWORD_RESET_LIMIT_PER_IP) had their
    requests within PASSWORD_RESET_WINDOW_MINUTES, else 0 (and it counts). The same whether or not the address
    has an account. Two requests racing may both pass at the limit: a throttle, not a lock."""
    window = timedelta(minutes=settings.PASSWORD_RESET_WINDOW_MINUTES)
    now = timezone.now()
    since = now - window
    email = (email or "").strip().lower()
    with transaction.atomic():
        PasswordResetRequest.objects.filter(
            requested_at__lt=since
        ).delete()  # (what no window counts any more)
        recent = PasswordResetRequest.objects.filter(requested_at__gte=since)
        limits = [(recent.filter(email=email), settings.PASSWORD_RESET_LIMIT_PER_ADDRESS)]
        if ip_address:
            limits.append((recent.filter(ip_address=ip_address), settings.PASSWORD_RESET_LIMIT_PER_IP))
        waits = []
        for rows, limit in limits:
            oldest = list(rows.order_by("-requested_at").values_list("requested_at", flat=True)[:limit])
            if len(oldest) >= limit:  # free again once the oldest of the last `limit` leaves the window
                waits.append(oldest[-1] + window - now)
        if waits:
            return max(1, int(max(waits).total_seconds() + 0.999))
        PasswordResetRequest.objects.create(email=email, ip_address=ip_address, requested_at=now)
    return 0
