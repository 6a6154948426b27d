"""The one-time setup of a fresh install: its token (printed in the server's log, as Jupyter does) and the
first owner with their organization. Closed for good once any user exists."""

from __future__ import annotations

import hmac

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.services import create_organization


def needs_setup() -> bool:
    return not User.objects.exists()


def setup_token() -> str:
    """The same in every web process (derived from SECRET_KEY, no state to share), unguessable without it;
    worthless once a user exists."""
    return salted_hmac("waportal.first_run", "the first owner", algorithm="sha256").hexdigest()[:32]


def token_is_right(token: str) -> bool:
    return bool(token) and hmac.compare_digest(str(token), setup_token())


def setup_url(base: str) -> str:
    from django.urls import reverse

    return f"{base.rstrip('/')}{reverse('accounts:setup')}?token={setup_token()}"


def create_first_owner(
    *, token: str, email: str, password: str, organization_name: str, ip_address: str | None = None
) -> User:
    """The first user (a superuser: the admin site is theirs too) and the organization they own."""
    if not token_is_right(token):
        raise PermissionDenied(_("The setup link is not right: open the one printed in the server's log."))
    errors = {}
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = [_("Enter an email address.")]
    if not (organization_name or "").strip():
        errors["organization"] = [_("Give the organization a name.")]
    try:
        validate_password(password or "", User(email=email))
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        # Checked again at the write: a form sent after the setup was done (another tab) is refused.
        if User.objects.exists():
            raise PermissionDenied(_("This installation is already set up: sign in instead."))
        user = User.objects.create_superuser(email=email, password=password)
        create_organization(name=organization_name, owner=user, ip_address=ip_address)
    return user
