"""Sign-in, passwords (change, reset by mail), the organization page (members, invitations), API keys, the
audit log, switching organization.

Views are thin: check the tenant, call one service, render the page or, for an HTMX request, the
partial of the page that changed.
"""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from accounts import first_run, services
from accounts.models import HISTORY_DAYS_CHOICES, ApiKeyAccess, Invitation, Role, User
from accounts.signals import password_changed
from accounts.tenancy import SESSION_KEY, member_required

AUDIT_PAGE_SIZE = 50


def home(request):
    if not request.user.is_authenticated:
        # A fresh install has nobody to sign in: its one-time setup comes first.
        return redirect("accounts:setup" if first_run.needs_setup() else "accounts:login")
    if getattr(request, "membership", None) is None:
        return redirect("accounts:organization_new")
    # The dashboard's numbers page is the landing page once it exists; the organization page otherwise.
    try:
        return redirect(reverse("messaging:devices"))
    except NoReverseMatch:
        return redirect(reverse("accounts:organization"))


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "needs_setup": first_run.needs_setup()}


@require_http_methods(["GET", "POST"])
def setup(request):
    """The one-time setup of a fresh install: the first owner and their organization, behind the token the
    server printed in its log. Gone (to the sign-in page) once anyone exists."""
    if not first_run.needs_setup():
        return redirect("accounts:login")
    token = request.POST.get("token") or request.GET.get("token", "")
    context = {"token": token, "token_ok": first_run.token_is_right(token), "errors": {}, "values": {}}
    if request.method == "POST":
        values = {key: request.POST.get(key, "") for key in ("email", "organization")}
        try:
            user = first_run.create_first_owner(
                token=token,
                email=values["email"],
                password=request.POST.get("password", ""),
                organization_name=values["organization"],
                ip_address=services.client_ip(request),
            )
        except ValidationError as exc:
            context.update(errors=exc.message_dict, values=values)
            return render(request, "accounts/setup.html", context, status=400)
        except PermissionDenied as exc:
            context.update(error=str(exc), values=values)
            return render(request, "accounts/setup.html", context, status=403)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Welcome! Link your first WhatsApp number to start."))
        return redirect("home")
    return render(request, "accounts/setup.html", context, status=200 if context["token_ok"] else 403)


# --- passwords -----------------------------------------------------------------------------------
# Django's own views and forms (validation, one-time reset tokens, no hint whether an address has an account);
# ours only pick the templates, say what happened, and announce the change (accounts.signals).


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's password. This browser stays signed in; every other session of the user ends."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)  # also keeps this session valid (update_session_auth_hash)
        password_changed.send(sender=type(form.user), user=form.user)
        messages.success(self.request, _("Your password is changed. Your other sessions are signed out."))
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Mail a one-time link to set a new password (through the configured mailer; the log without one)."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:login")

    def form_valid(self, form):
        wait = services.password_reset_wait(
            email=form.cleaned_data["email"], ip_address=services.client_ip(self.request)
        )
        if wait:  # (said the same whether or not the address has an account)
            minutes = max(1, -(-wait // 60))
            form.add_error(
                "email",
                ngettext(
                    "Too many requests to reset a password; try again in %(minutes)d minute.",
                    "Too many requests to reset a password; try again in %(minutes)d minutes.",
                    minutes,
                )
                % {"minutes": minutes},
            )
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            response["Retry-After"] = str(wait)
            return response
        response = super().form_valid(form)
        # The same answer whether or not the address has an account: nobody learns who has one.
        messages.success(
            self.request,
            _("If %(email)s has an account, a link to set a new password is on its way. It works once.")
            % {"email": form.cleaned_data["email"]},
        )
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:login")

    def form_valid(self, form):
        response = super().form_valid(form)
        password_changed.send(sender=type(form.user), user=form.user)
        messages.success(self.request, _("Your password is set. Sign in with it."))
        return response


@require_POST
def switch_organization(request):
    if request.user.is_authenticated:
        wanted = request.POST.get("organization", "")
        if wanted.isdigit() and request.user.memberships.filter(organization_id=int(wanted)).exists():
            request.session[SESSION_KEY] = int(wanted)
    nxt = request.POST.get("next", "")
    if nxt and url_has_allowed_host_and_scheme(
        nxt, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(nxt)
    return redirect("home")


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


# --- organization page ---------------------------------------------------------------------------


def _team_context(request, **extra) -> dict:
    organization = request.organization
    can_manage = request.membership.has_role(Role.ADMIN)
    context = {
        "history_choices": [("all" if v is None else v, label) for v, label in HISTORY_DAYS_CHOICES],
        "history_value": "all" if organization.history_days is None else organization.history_days,
        "memberships": organization.memberships.select_related("user").order_by("user__email"),
        "can_manage": can_manage,
        "is_owner": request.membership.role == Role.OWNER,
        "roles": Role.choices,
        "invitations": [],
    }
    if can_manage:
        invitations = list(
            organization.invitations.select_related("invited_by").filter(
                accepted_at__isnull=True, revoked_at__isnull=True
            )
        )
        for invitation in invitations:
            invitation.link = request.build_absolute_uri(
                reverse("accounts:invitation", args=[invitation.token])
            )
        context["invitations"] = invitations
    context.update(extra)
    return context


def _team_response(request, *, error: str | None = None, notice: str | None = None, **extra):
    """The members section after a write: the partial for HTMX, else back to the page (or the page
    with the error, 400)."""
    if request.htmx:
        return render(
            request,
            "accounts/organization.html#team",
            _team_context(request, error=error, notice=notice, **extra),
        )
    if error:
        return render(
            request, "accounts/organization.html", _team_context(request, error=error, **extra), status=400
        )
    if notice:
        messages.success(request, notice)
    return redirect("accounts:organization")


@member_required()
def organization(request):
    return render(request, "accounts/organization.html", _team_context(request))


@login_required
@require_http_methods(["GET", "POST"])
def organization_new(request):
    error, name = None, ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            organization = services.create_organization(
                name=name, owner=request.user, ip_address=services.client_ip(request)
            )
        except ValidationError as e:
            error = _error_text(e)
        else:
            request.session[SESSION_KEY] = organization.id
            messages.success(
                request, _("%(name)s is created; you are its owner.") % {"name": organization.name}
            )
            return redirect("accounts:organization")
    return render(
        request,
        "accounts/organization_new.html",
        {"error": error, "name": name},
        status=400 if error else 200,
    )


@member_required(Role.ADMIN)
@require_POST
def organization_rename(request):
    try:
        services.rename_organization(
            organization=request.organization,
            name=request.POST.get("name", ""),
            actor=request.user,
            ip_address=services.client_ip(request),
        )
    except ValidationError as e:
        return _team_response(request, error=_error_text(e))
    return _team_response(request, notice=_("The organization is renamed."))


@member_required(Role.ADMIN)
@require_POST
def organization_history(request):
    try:
        services.set_history_days(
            organization=request.organization,
            days=request.POST.get("history_days", ""),
            actor=request.user,
            ip_address=services.client_ip(request),
        )
    except ValidationError as e:
        return _team_response(request, error=_error_text(e))
    return _team_response(request, notice=_("Newly linked numbers import this much history now."))


@member_required(Role.ADMIN)
@require_POST
def invite(request):
    email, role = request.POST.get("email", ""), request.POST.get("role", Role.OPERATOR)
    try:
        invitation = services.invite_member(
            organization=request.organization,
            email=email,
            role=role,
            actor=request.user,
            ip_address=services.client_ip(request),
        )
    except ValidationError as e:
        return _team_response(request, error=_error_text(e), invite_email=email, invite_role=role)
    link = request.build_absolute_uri(reverse("accounts:invitation", args=[invitation.token]))
    if services.send_invitation_email(invitation, link):
        notice = _("Invitation sent to %(email)s. You can also share the link below.") % {
            "email": invitation.email
        }
    else:
        notice = _("The email could not be sent; share the link below with %(email)s.") % {
            "email": invitation.email
        }
    return _team_response(request, notice=notice, new_invitation=invitation, new_invitation_link=link)


@member_required(Role.ADMIN)
@require_POST
def invitation_revoke(request, pk: int):
    invitation = get_object_or_404(request.organization.invitations, pk=pk)
    services.revoke_invitation(
        organization=request.organization,
        invitation=invitation,
        actor=request.user,
        ip_address=services.client_ip(request),
    )
    return _team_response(
        request, notice=_("The invitation to %(email)s is withdrawn.") % {"email": invitation.email}
    )


@member_required(Role.ADMIN)
@require_POST
def member_role(request, pk: int):
    membership = get_object_or_404(request.organization.memberships.select_related("user"), pk=pk)
    try:
        services.change_role(
            organization=request.organization,
            membership=membership,
            role=request.POST.get("role", ""),
            actor=request.user,
            ip_address=services.client_ip(request),
        )
    except ValidationError as e:
        return _team_response(request, error=_error_text(e))
    # The actor may have changed their own role: read it again for the answer.
    request.membership.refresh_from_db()
    return _team_response(
        request,
        notice=_("%(email)s is now %(role)s.")
        % {"email": membership.user.email, "role": membership.get_role_display()},
    )


@member_required()
@require_POST
def member_remove(request, pk: int):
    membership = get_object_or_404(request.organization.memberships.select_related("user"), pk=pk)
    leaving = membership.user_id == request.user.pk
    try:
        services.remove_member(
            organization=request.organization,
            membership=membership,
            actor=request.user,
            ip_address=services.client_ip(request),
        )
    except ValidationError as e:
        return _team_response(request, error=_error_text(e))
    if leaving:
        request.session.pop(SESSION_KEY, None)
        messages.success(request, _("You left %(name)s.") % {"name": request.organization.name})
        if request.htmx:
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("home")
            return response
        return redirect("home")
    return _team_response(request, notice=_("%(email)s is removed.") % {"email": membership.user.email})


# --- accepting an invitation ---------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation(request, token: str):
    invitation = get_object_or_404(
        Invitation.objects.select_related("organization", "invited_by"), token=token
    )
    context = {"invitation": invitation, "problem": services.invitation_problem(invitation)}
    if context["problem"]:
        return render(request, "accounts/invitation.html", context, status=410)
    user = request.user if request.user.is_authenticated else None
    context["wrong_user"] = user is not None and user.email.lower() != invitation.email.lower()
    context["has_account"] = user is None and User.objects.filter(email__iexact=invitation.email).exists()
    context["login_url"] = f"{reverse('accounts:login')}?next={request.path}"
    if request.method == "GET":
        return render(request, "accounts/invitation.html", context)

    ip = services.client_ip(request)
    try:
        if user is not None:
            membership = services.accept_invitation(invitation=invitation, user=user, ip_address=ip)
        else:
            if context["has_account"]:
                return redirect(context["login_url"])
            if request.POST.get("password", "") != request.POST.get("password2", ""):
                raise ValidationError({"password2": _("The two passwords differ.")})
            user, membership = services.register_from_invitation(
                invitation=invitation,
                first_name=request.POST.get("first_name", ""),
                last_name=request.POST.get("last_name", ""),
                password=request.POST.get("password", ""),
                ip_address=ip,
            )
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    except ValidationError as e:
        context.update(
            error=_error_text(e),
            first_name=request.POST.get("first_name", ""),
            last_name=request.POST.get("last_name", ""),
        )
        return render(request, "accounts/invitation.html", context, status=400)
    request.session[SESSION_KEY] = membership.organization_id
    messages.success(request, _("Welcome to %(name)s.") % {"name": membership.organization.name})
    return redirect("accounts:organization")


# --- API keys ------------------------------------------------------------------------------------


def _keys_context(request, **extra) -> dict:
    context = {
        "api_keys": request.organization.api_keys.select_related("created_by"),
        "can_manage": request.membership.has_role(Role.ADMIN),
        "access_choices": ApiKeyAccess.choices,
    }
    context.update(extra)
    return context


def _keys_response(request, *, status: int = 200, **extra):
    template = "accounts/api_keys.html#keys" if request.htmx else "accounts/api_keys.html"
    if request.htmx and status == 400:
        status = 200  # htmx swaps only successful answers; the error is in the partial
    return render(request, template, _keys_context(request, **extra), status=status)


@member_required()
def api_keys(request):
    # Owners and admins only: the list says which programs hold keys, who made them and when they last
    # acted, which the people who manage the keys need and others do not (a key itself is never shown again).
    if not request.membership.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only owners and admins may see the organization's API keys."))
    return _keys_response(request)


@member_required(Role.ADMIN)
@require_POST
def api_key_create(request):
    name, access = request.POST.get("name", ""), request.POST.get("access", ApiKeyAccess.FULL)
    try:
        api_key, raw = services.create_api_key(
            organization=request.organization,
            name=name,
            access=access,
            actor=request.user,
            ip_address=services.client_ip(request),
        )
    except ValidationError as e:
        return _keys_response(request, status=400, error=_error_text(e), form_name=name)
    # The raw key is in this one answer and nowhere else: no redirect, no session, no log.
    response = _keys_response(request, new_key=api_key, new_key_raw=raw)
    response["Cache-Control"] = "no-store"
    return response


@member_required(Role.ADMIN)
@require_POST
def api_key_revoke(request, pk: int):
    api_key = get_object_or_404(request.organization.api_keys, pk=pk)
    services.revoke_api_key(
        organization=request.organization,
        api_key=api_key,
        actor=request.user,
        ip_address=services.client_ip(request),
    )
    return _keys_response(request, notice=_("The key %(name)s is revoked.") % {"name": api_key.name})


# --- audit log -----------------------------------------------------------------------------------


def _audit_names(organization, events) -> dict[str, str]:
    """The names of the people, groups and numbers a page of the audit log mentions by JID, looked up at once
    (messaging's name lookup: the log shows names and formatted numbers, never raw JIDs)."""
    from messaging.selectors import names_for
    from messaging.templatetags.dashboard import jids_in

    jids = set()
    for event in events:
        jids |= jids_in(event.object_repr) | jids_in(event.object_id)
        for value in (event.details or {}).values():
            jids |= jids_in(value)
    return names_for(organization, jids)


@member_required(Role.ADMIN)
def audit_log(request):
    events = request.organization.audit_events.select_related("actor", "api_key")
    actions = list(
        request.organization.audit_events.order_by("action").values_list("action", flat=True).distinct()
    )
    action = request.GET.get("action", "")
    if action:
        events = events.filter(action=action)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "events": page.object_list,
        "actions": actions,
        "action": action,
        "names": _audit_names(request.organization, page.object_list),
    }
    template = (
        "accounts/audit_log.html#events"
        if request.htmx and not request.htmx.boosted
        else "accounts/audit_log.html"
    )
    return render(request, template, context)
