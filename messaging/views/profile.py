"""A number's own profile (avatar, push name, presence, privacy, contacts, newsletters) and lookups of others."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.tenancy import member_required
from messaging.views.common import (
    WRITE_ERRORS,
    done,
    error_text,
    org_device,
    page_context,
    picture_upload,
    service,
)
from messaging.whatsapp import protocol
from waportal.i18n import localize

PROFILE = "messaging.services.profile"
SECTIONS = ("avatar", "privacy", "contacts", "newsletters")  # as messaging.services.profile.PROFILE_SECTIONS


@member_required()
@require_GET
def profile(request, device_id: int):
    device = org_device(request, device_id)
    return render(request, "messaging/profile.html", page_context(request, device=device, sections=SECTIONS))


@member_required()
@require_GET
def profile_section(request, device_id: int, section: str):
    """One section read live from WhatsApp (lazy-loaded, so a disconnected number still shows the page)."""
    device = org_device(request, device_id)
    if section not in SECTIONS:
        raise Http404("No such section.")
    error, value = "", None
    try:
        value = service(PROFILE).read_profile_section(
            organization=request.organization, device=device, section=section
        )
    except WRITE_ERRORS as exc:
        error = error_text(exc)
    return render(
        request,
        f"messaging/profile.html#{section}",
        page_context(request, device=device, value=value, section_error=error),
    )


@member_required()
@require_GET
def profile_lookup(request, device_id: int):
    """Is a number on WhatsApp, its user info and avatar: reads, so viewers may use it too."""
    device = org_device(request, device_id)
    phone = request.GET.get("phone", "").strip()
    context = page_context(request, device=device, phone=phone)
    try:
        jid = protocol.normalize_jid(phone)
    except ValueError as exc:
        context["lookup_error"] = localize(str(exc))
        return render(request, "messaging/profile.html#lookup_result", context)
    try:
        found = service(PROFILE).look_up_number(organization=request.organization, device=device, jid=jid)
        context.update(check=found.check, info=found.info, avatar=found.avatar)
    except WRITE_ERRORS as exc:
        context["lookup_error"] = error_text(exc)
    return render(request, "messaging/profile.html#lookup_result", context)


def _write(request, device_id: int, func: str, ok: str, **kwargs):
    device = org_device(request, device_id)
    back = reverse("messaging:profile", args=[device.pk])
    try:
        getattr(service(PROFILE), func)(
            organization=request.organization, device=device, actor=request.user, **kwargs
        )
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), back, error=True)
    return done(request, ok, back)


@member_required(write=True)
@require_POST
def profile_avatar(request, device_id: int):
    image, problem = picture_upload(request.FILES.get("avatar"), "avatar")
    if image is None:
        org_device(request, device_id)
        return done(request, problem, reverse("messaging:profile", args=[device_id]), error=True)
    return _write(request, device_id, "set_avatar", _("Avatar changed."), image=image)


@member_required(write=True)
@require_POST
def profile_push_name(request, device_id: int):
    return _write(
        request, device_id, "set_push_name", _("Name changed."), name=request.POST.get("push_name", "")
    )


@member_required(write=True)
@require_POST
def profile_presence(request, device_id: int):
    return _write(
        request, device_id, "set_presence", _("Presence changed."), presence=request.POST.get("presence", "")
    )


@member_required(write=True)
@require_POST
def profile_unfollow(request, device_id: int):
    return _write(
        request,
        device_id,
        "unfollow_newsletter",
        _("Newsletter unfollowed."),
        newsletter=request.POST.get("newsletter_id", ""),
    )
