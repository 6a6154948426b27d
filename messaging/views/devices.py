"""Linked numbers: the list with live status, linking by QR or pairing code, reconnect, log out, rename, remove."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.tenancy import member_required
from messaging.models import HistorySync
from messaging.views.common import WRITE_ERRORS, done, error_text, org_device, page_context, service
from messaging.whatsapp import protocol
from waportal.i18n import localize

DEVICES = "messaging.services.devices"


class DeviceNameForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=80)


class PairForm(forms.Form):
    phone = forms.CharField(label=gettext_lazy("Phone number"), max_length=32)

    def clean_phone(self):
        try:
            return protocol.normalize_phone(self.cleaned_data["phone"])
        except ValueError as exc:
            raise forms.ValidationError(localize(str(exc))) from None


def sandbox_enabled() -> bool:
    return getattr(settings, "WA_BACKEND", "") == "sandbox"


def _list(request, form):
    devices = request.organization.devices.select_related("lease").order_by("created_at", "id")
    return render(request, "messaging/devices.html", page_context(request, devices=devices, form=form))


@member_required()
@require_GET
def device_list(request):
    return _list(request, DeviceNameForm())


@member_required(write=True)
@require_POST
def device_create(request):
    form = DeviceNameForm(request.POST)
    if form.is_valid():
        try:
            device = service(DEVICES).create_device(
                organization=request.organization, name=form.cleaned_data["name"], actor=request.user
            )
        except WRITE_ERRORS as exc:
            form.add_error("name", error_text(exc))
        else:
            return _link_new(request, device)
    return _list(request, form)


def _link_new(request, device):
    """ "Add and link" is one step: linking starts at once and the number's page opens on its QR code (or
    says why there is none: linking could not start, or WhatsApp cannot be reached)."""
    to = reverse("messaging:device", args=[device.pk])
    try:
        # With the channel layer down the page could not be told the QR code either: say so, not "in a moment".
        device = service(DEVICES).start_linking(
            organization=request.organization, device=device, actor=request.user, say_unavailable=True
        )
    except WRITE_ERRORS as exc:
        return done(
            request,
            _("Number added, but linking did not start: %(why)s") % {"why": error_text(exc)},
            to,
            error=True,
        )
    if device.qr_code:
        return done(request, _("Number added. Scan the QR code with WhatsApp on your phone."), to)
    return done(request, _("Number added. The QR code appears in a moment."), to)


@member_required()
@require_GET
def device_detail(request, device_id: int):
    device = org_device(request, device_id)
    context = page_context(request, device=device, sandbox=sandbox_enabled())
    devices = service(DEVICES)
    context["can_unlink"] = devices.may_unlink(request.organization, actor=request.user)
    if context["can_unlink"]:
        context["removal"] = devices.removal_summary(device)  # said before the Remove button
    if context["sandbox"]:
        from messaging.views.sandbox import groups_of, peers

        device.sandbox_groups = groups_of(device)
        context.update(peers=peers(request.organization))
    context["history_sync"] = HistorySync.objects.filter(device=device).first()
    return render(request, "messaging/device_detail.html", context)


@member_required()
@require_GET
def device_history(request, device_id: int):
    """The history import's progress as it is now (what the page re-fetches after its socket comes back)."""
    device = org_device(request, device_id)
    history_sync = HistorySync.objects.filter(device=device).first()
    return render(
        request,
        "messaging/device_detail.html#history",
        page_context(request, device=device, history_sync=history_sync),
    )


@member_required()
@require_GET
def device_fragment(request, device_id: int):
    """Status and link panel as they are now: what the page re-fetches after its socket comes back."""
    device = org_device(request, device_id)
    return render(request, "messaging/device_detail.html#live", page_context(request, device=device))


def _link_panel(request, device, *, error: str = ""):
    return render(
        request, "messaging/device_detail.html#live", page_context(request, device=device, link_error=error)
    )


@member_required(write=True)
@require_POST
def device_link(request, device_id: int):
    device = org_device(request, device_id)
    error = ""
    try:
        service(DEVICES).start_linking(
            organization=request.organization, device=device, actor=request.user, say_unavailable=True
        )
    except WRITE_ERRORS as exc:
        error = error_text(exc)
    device.refresh_from_db()
    if not request.htmx:
        return done(
            request,
            error or _("Linking started: the QR code appears in a moment."),
            reverse("messaging:device", args=[device.pk]),
            error=bool(error),
        )
    return _link_panel(request, device, error=error)


@member_required(write=True)
@require_POST
def device_pair(request, device_id: int):
    device = org_device(request, device_id)
    form = PairForm(request.POST)
    if form.is_valid():
        try:
            service(DEVICES).pair_device(
                organization=request.organization,
                device=device,
                phone=form.cleaned_data["phone"],
                actor=request.user,
            )
        except WRITE_ERRORS as exc:
            form.add_error("phone", error_text(exc))
    device.refresh_from_db()
    error = " ".join(form.errors.get("phone", []))
    if not request.htmx:
        to = reverse("messaging:device", args=[device.pk])
        return done(request, error or _("Enter the code shown on your phone."), to, error=bool(error))
    return _link_panel(request, device, error=error)


def _action(request, device_id: int, func: str, ok: str, **kwargs):
    device = org_device(request, device_id)
    try:
        getattr(service(DEVICES), func)(
            organization=request.organization, device=device, actor=request.user, **kwargs
        )
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), reverse("messaging:device", args=[device.pk]), error=True)
    return done(request, ok, reverse("messaging:device", args=[device.pk]))


@member_required(write=True)
@require_POST
def device_reconnect(request, device_id: int):
    return _action(request, device_id, "reconnect_device", _("Reconnecting."))


# Logging out and removing: any member reaches the service (another organization's number is 404 first),
# which refuses all but owners and admins with a sentence saying so (403).
@member_required()
@require_POST
def device_logout(request, device_id: int):
    return _action(request, device_id, "logout_device", _("Logged out. Link it again to use it."))


@member_required(write=True)
@require_POST
def device_rename(request, device_id: int):
    form = DeviceNameForm(request.POST)
    if not form.is_valid():
        org_device(request, device_id)
        return done(
            request, _("A name is required."), reverse("messaging:device", args=[device_id]), error=True
        )
    return _action(request, device_id, "rename_device", _("Renamed."), name=form.cleaned_data["name"])


@member_required()
@require_POST
def device_remove(request, device_id: int):
    device = org_device(request, device_id)
    try:
        service(DEVICES).remove_device(organization=request.organization, device=device, actor=request.user)
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), reverse("messaging:device", args=[device.pk]), error=True)
    return done(request, _("Removed."), reverse("messaging:devices"))
