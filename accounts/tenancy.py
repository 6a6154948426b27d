"""The current organization of a request, and the guards every tenant view stands behind."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from accounts.models import Membership, Role

SESSION_KEY = "organization_id"


def current_membership(request) -> Membership | None:
    if not request.user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("organization").filter(user=request.user)
    wanted = request.session.get(SESSION_KEY)
    if wanted is not None:
        found = memberships.filter(organization_id=wanted).first()
        if found:
            return found
    return memberships.order_by("created_at", "id").first()


class CurrentOrganizationMiddleware:
    """Sets request.membership and request.organization (None when signed out or in no organization)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        membership = current_membership(request)
        request.membership = membership
        request.organization = membership.organization if membership else None
        return self.get_response(request)


def member_required(role: str = Role.VIEWER, *, write: bool = False):
    """Guard a view: signed in, a member of the current organization, with at least `role`.

    `write=True` is shorthand for the operator role, the least that may change anything. A signed-out
    visitor is sent to the login page, a user in no organization to the page that creates one; a member below
    the role gets 403.
    """
    minimum = Role.OPERATOR if write and role == Role.VIEWER else role

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.membership is None:
                # In no organization yet (a fresh superuser, say): led to create one, not to a bare 404.
                return redirect("accounts:organization_new")
            if not request.membership.has_role(minimum):
                raise PermissionDenied(
                    _("This needs the %(role)s role or a higher one.") % {"role": Role(minimum).label}
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def organization_context(request):
    membership = getattr(request, "membership", None)
    memberships = []
    if membership is not None:
        memberships = Membership.objects.select_related("organization").filter(user=request.user)
    return {
        "current_organization": membership.organization if membership else None,
        "current_membership": membership,
        "user_memberships": memberships,
        # Owners and admins see the member-management pages (API keys, the audit log).
        "current_membership_manages": membership is not None and membership.has_role(Role.ADMIN),
    }
