"""The simulated phone (sandbox backend only): scan a QR, enter a pairing code, write to our numbers as a peer."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.tenancy import member_required
from messaging.views.common import WRITE_ERRORS, done, error_text, org_device, page_context, service
from messaging.views.devices import sandbox_enabled
from messaging.whatsapp import protocol

SANDBOX = "messaging.whatsapp.sandbox"
CHATS = "messaging.services.chats"


def _require_sandbox():
    if not sandbox_enabled():
        raise Http404("The simulated phone exists only on the sandbox backend.")


def peers() -> list[str]:
    try:
        return list(service(SANDBOX).peer_phones())
    except Exception:  # the simulated network is seeded by the worker; an empty list is fine meanwhile
        return []


def _back(request, device) -> str:
    nxt = request.POST.get("next", "")
    if nxt.startswith("/dashboard/"):
        return nxt
    return reverse("messaging:device", args=[device.pk])


@member_required()
@require_GET
def sandbox_panel(request):
    _require_sandbox()
    devices = list(request.organization.devices.select_related("lease").order_by("created_at", "id"))
    return render(request, "messaging/sandbox.html", page_context(request, devices=devices, peers=peers()))


def _number(value: str, label: str) -> tuple[str, str]:
    """The digits of a typed number, or "" and what is wrong with it, naming the field by its label."""
    try:
        return protocol.normalize_phone(value), ""
    except ValueError:
        return "", _("%(field)s: enter a phone number with its country code, like +90 555 111 22 33.") % {
            "field": label
        }


def _link_refusal(request, phone: str, label: str) -> str:
    """Why this organization may not link a device as `phone` ("" when it may): another organization's
    number, or a simulated contact's. Names the field and the number typed, nothing of anyone else's."""
    sandbox = service(SANDBOX)
    reason = sandbox.link_refusal(phone, organization_id=request.organization.pk)
    if reason == sandbox.CONTACT:
        return _("%(field)s: +%(phone)s is a simulated contact's number; no device can be linked as it.") % {
            "field": label,
            "phone": phone,
        }
    if reason:
        return _("%(field)s: +%(phone)s is another organization's number; use a number of your own.") % {
            "field": label,
            "phone": phone,
        }
    return ""


@member_required(write=True)
@require_POST
def sandbox_scan(request, device_id: int):
    _require_sandbox()
    device = org_device(request, device_id)
    label = _("Phone scanning the QR")
    phone = (request.POST.get("phone") or "").strip()
    if not device.qr_code:
        return done(
            request,
            _("There is no QR code to scan: start linking first."),
            _back(request, device),
            error=True,
        )
    if phone:  # no number given: the simulated network makes a new phone for it
        phone, error = _number(phone, label)
        error = error or _link_refusal(request, phone, label)
        if error:
            return done(request, error, _back(request, device), error=True)
    try:
        service(SANDBOX).phone_scan(qr_code=device.qr_code, phone=phone or None)
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    return done(request, _("The simulated phone scanned the QR code."), _back(request, device))


@member_required(write=True)
@require_POST
def sandbox_enter_code(request, device_id: int):
    _require_sandbox()
    device = org_device(request, device_id)
    label = _("Phone entering the code")
    code = (request.POST.get("code") or device.pair_code).strip()
    phone = (request.POST.get("phone") or "").strip()
    if not code or not phone:
        return done(
            request,
            _("The phone number and the pairing code are both needed."),
            _back(request, device),
            error=True,
        )
    phone, error = _number(phone, label)
    error = error or _link_refusal(request, phone, label)
    if error:
        return done(request, error, _back(request, device), error=True)
    try:
        service(SANDBOX).phone_enter_code(phone=phone, code=code)
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    return done(request, _("The simulated phone entered the code."), _back(request, device))


@member_required(write=True)
@require_POST
def sandbox_peer_send(request, device_id: int):
    _require_sandbox()
    device = org_device(request, device_id)
    label = _("From")
    from_phone = (request.POST.get("from_phone") or "").strip()
    text = (request.POST.get("text") or "").strip()
    if not device.jid:
        return done(request, _("This number is not linked yet."), _back(request, device), error=True)
    if not from_phone or not text:
        return done(
            request, _("Pick a simulated contact and write something."), _back(request, device), error=True
        )
    from_phone, error = _number(from_phone, label)
    sandbox = service(SANDBOX)
    if not error and sandbox.send_refusal(from_phone, organization_id=request.organization.pk):
        error = _("%(field)s: +%(phone)s is another organization's number; pick a simulated contact.") % {
            "field": label,
            "phone": from_phone,
        }
    if error:
        return done(request, error, _back(request, device), error=True)
    try:
        # The network checks again as it sends: the number may have been linked elsewhere meanwhile.
        sandbox.peer_send(
            from_phone=from_phone, to_jid=device.jid, text=text, organization_id=request.organization.pk
        )
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    return done(request, _("The simulated contact sent the message."), _back(request, device))


@member_required(write=True)
@require_POST
def sandbox_phone_label(request, device_id: int):
    """On the linked phone itself: put a label (by name; made on the phone if new) on a contact's chat, as
    WhatsApp Business on the phone does. Every linked device hears label.edit, then label.association."""
    _require_sandbox()
    device = org_device(request, device_id)
    label = _("Chat")
    name = (request.POST.get("label_name") or "").strip()
    chat = (request.POST.get("chat") or "").strip()
    if not device.jid or not device.phone:
        return done(request, _("This number is not linked yet."), _back(request, device), error=True)
    if not name or not chat or len(name) > 100:
        return done(request, _("Pick a chat and name the label."), _back(request, device), error=True)
    chat, error = _number(chat, label)
    if error:
        return done(request, error, _back(request, device), error=True)
    known = device.labels.filter(name__iexact=name).first()
    if known is not None:
        label_id, color = known.label_id, known.color
    else:
        label_id, color = (
            service(CHATS).next_label_id(device),
            device.labels.count() % len(protocol.LABEL_COLORS),
        )
    sandbox = service(SANDBOX)
    try:
        if known is None:
            sandbox.phone_edit_label(phone=device.phone, label_id=label_id, name=name, color=color)
        sandbox.phone_label_chat(phone=device.phone, chat=f"{chat}@s.whatsapp.net", label_id=label_id)
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    return done(request, _("The phone put the label on the chat."), _back(request, device))
