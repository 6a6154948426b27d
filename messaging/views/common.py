"""What every dashboard view of messaging shares: the tenant's device, role checks for templates, errors."""

from __future__ import annotations

import importlib

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _

from accounts.models import Role
from messaging.whatsapp import protocol
from waportal.i18n import localize


def service(name: str):
    """A service module, imported when used: services land independently of the pages that call them."""
    return importlib.import_module(name)


def picture_upload(upload, kind: str) -> tuple[bytes | None, str]:
    """An uploaded profile or group picture (`kind` "avatar" or "photo"), checked as the API checks it: its
    bytes, or None and what is wrong with it, in the user's language."""
    from django.template.defaultfilters import filesizeformat

    from messaging.services import media

    if upload is None:
        return None, _("Choose an image.")
    limit = media.max_bytes(kind)
    data = upload.read(limit + 1)
    try:
        media.check(data, kind, declared=upload.content_type or "", filename=upload.name or "")
    except media.MediaRefused as refused:
        if refused.reason == "too_large":
            return None, _("The file is too large: at most %(size)s for this kind.") % {
                "size": filesizeformat(limit)
            }
        return None, _("Choose a JPEG, PNG or WebP image.")
    return data, ""


def org_device(request, device_id: int):
    """The current organization's device, or 404 (another organization's device does not exist here)."""
    return get_object_or_404(request.organization.devices.select_related("lease"), pk=device_id)


def can_write(request) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.has_role(Role.OPERATOR))


def page_context(request, **extra) -> dict:
    return {"can_write": can_write(request), **extra}


def error_text(exc: Exception) -> str:
    """A sentence for the page out of a service or WhatsApp refusal."""
    if isinstance(exc, ValidationError):
        if hasattr(exc, "message_dict"):
            return "; ".join(
                f"{field}: {' '.join(localize(m) for m in msgs)}" for field, msgs in exc.message_dict.items()
            )
        return " ".join(localize(m) for m in exc.messages)
    if isinstance(exc, protocol.WhatsAppError):
        if exc.code == protocol.ErrorCode.NOT_CONNECTED:
            return _("The device is not connected. Link it or reconnect it, then try again.")
        if exc.code == protocol.ErrorCode.TIMEOUT:
            return _("WhatsApp did not answer in time; try again shortly.")
        if exc.code == protocol.ErrorCode.UNAVAILABLE:
            return _("The session workers cannot be reached right now; try again in a few seconds.")
        return localize(exc.message)
    return localize(str(exc))


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {field: [localize(m) for m in msgs] for field, msgs in exc.message_dict.items()}
    return {"__all__": [localize(m) for m in exc.messages]}


def done(request, text: str, to: str, *, error: bool = False):
    """After a write: flash the outcome and go back (an htmx request gets HX-Redirect, so the flash shows too)."""
    (messages.error if error else messages.success)(request, text)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = to
        return response
    return redirect(to)


WRITE_ERRORS = (ValidationError, protocol.WhatsAppError, ValueError)
