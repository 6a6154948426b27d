"""The simulated phone (sandbox backend only): scan a QR, enter a pairing code, write to our numbers as a peer."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
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


def peers(organization) -> list[dict]:
    """The simulated contacts the phone may write or call as: {"phone": digits (the value a form sends),
    "label": "Zeynep Schmidt (+1 555-776-3170)"}. Named as the other pages name them: the name the team saved
    for the contact, else the name the contact gives itself on the simulated network."""
    from messaging.selectors import names_for
    from messaging.templatetags.dashboard import phone as formatted

    try:
        sandbox = service(SANDBOX)
        phones = list(sandbox.peer_phones())
        own_names = {p["phone"]: p["name"] for p in sandbox.network_summary()["peers"]}
    except Exception:  # the simulated network is seeded by the worker; an empty list is fine meanwhile
        return []
    known = names_for(organization, [f"{digits}@s.whatsapp.net" for digits in phones])
    choices = []
    for digits in phones:
        name = known.get(f"{digits}@s.whatsapp.net") or own_names.get(digits, "")
        number = formatted(digits)
        choices.append({"phone": digits, "label": f"{name} ({number})" if name else number})
    return choices


def groups_of(device) -> list[dict]:
    """The simulated groups the number is in (what the phone may ask to join or set approval on)."""
    if not device.jid:
        return []
    try:
        return list(service(SANDBOX).groups_of(device.jid))
    except Exception:  # as peers(): nothing to offer until the network is seeded
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
    for device in devices:
        device.sandbox_groups = groups_of(device)
    return render(
        request,
        "messaging/sandbox.html",
        page_context(request, devices=devices, peers=peers(request.organization)),
    )


@member_required(write=True)
@require_GET
def sandbox_phone(request, device_id: int):
    """One number's simulated phone as it is now: what a page re-fetches when the number connects or is logged
    out (the forms it offers change), whichever page holds it (the panel, the number's page)."""
    _require_sandbox()
    device = org_device(request, device_id)
    device.sandbox_groups = groups_of(device)
    page = urlsplit(request.htmx.current_url if request.htmx and request.htmx.current_url else "").path
    context = page_context(
        request,
        device=device,
        peers=peers(request.organization),
        back=page if page.startswith("/dashboard/") else "",
    )
    return render(request, "messaging/sandbox.html#phone", context)


def _number(value: str, label: str) -> tuple[str, str]:
    """The digits of a typed number, or "" and what is wrong with it, naming the field by its label."""
    try:
        return protocol.normalize_phone(value), ""
    except ValueError:
        return "", _("%(field)s: enter a phone number with its country code, like +90 555 111 22 33.") % {
            "field": label
        }


def _simulated_contact(request, raw: str, label: str) -> tuple[str, str]:
    """The simulated contact a form names, as digits, and "" or what is wrong: not a number, or a number another
    organization holds (the simulated network is shared; only its contacts may be written as)."""
    phone, error = _number(raw, label)
    if not error and service(SANDBOX).send_refusal(phone, organization_id=request.organization.pk):
        error = _("%(field)s: +%(phone)s is another organization's number; pick a simulated contact.") % {
            "field": label,
            "phone": phone,
        }
    return phone, error


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
    shown = (request.POST.get("qr_code") or "").strip()
    if shown and shown != device.qr_code:
        return done(
            request,
            _("The number shows a new QR code now (they change every few seconds); scan again."),
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
    label = pgettext("sender of a message", "From")  # Kimden, not the audit log's Nereden (where from)
    from_phone = (request.POST.get("from_phone") or "").strip()
    text = (request.POST.get("text") or "").strip()
    if not device.jid:
        return done(request, _("This number is not linked yet."), _back(request, device), error=True)
    if not from_phone or not text:
        return done(
            request, _("Pick a simulated contact and write something."), _back(request, device), error=True
        )
    from_phone, error = _simulated_contact(request, from_phone, label)
    sandbox = service(SANDBOX)
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


def _device_group(request, device, label: str) -> tuple[dict | None, str]:
    """The group picked in the form, if it is one of this number's groups; else None and what is wrong."""
    if not device.jid:
        return None, _("This number is not linked yet.")
    wanted = (request.POST.get("group") or "").strip()
    group = next((g for g in groups_of(device) if g["jid"] == wanted), None)
    if group is None:
        return None, _("%(field)s: pick one of this number's groups.") % {"field": label}
    return group, ""


@member_required(write=True)
@require_POST
def sandbox_join_request(request, device_id: int):
    """A simulated contact follows a group's invite link: where admins approve new members, that is a request
    to join the group's page shows; elsewhere the contact simply joins."""
    _require_sandbox()
    device = org_device(request, device_id)
    group, error = _device_group(request, device, _("Group"))
    label = _("Contact asking to join")
    from_phone = (request.POST.get("from_phone") or "").strip()
    if not error and not from_phone:
        error = _("%(field)s: pick a simulated contact.") % {"field": label}
    if not error:
        from_phone, error = _simulated_contact(request, from_phone, label)
    sandbox = service(SANDBOX)
    if error:
        return done(request, error, _back(request, device), error=True)
    try:
        sandbox.peer_join_request(from_phone=from_phone, group=group["jid"])
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    if group["join_approval"]:
        text = _("+%(phone)s asked to join %(group)s: the request waits for an admin on the group's page.")
    else:
        text = _("+%(phone)s joined %(group)s (its admins do not approve new members).")
    return done(request, text % {"phone": from_phone, "group": group["name"]}, _back(request, device))


@member_required(write=True)
@require_POST
def sandbox_join_approval(request, device_id: int):
    """Turn "admins approve new members" on or off for one of this number's groups."""
    _require_sandbox()
    device = org_device(request, device_id)
    group, error = _device_group(request, device, _("Group"))
    if error:
        return done(request, error, _back(request, device), error=True)
    approval = request.POST.get("approval") == "on"
    try:
        service(SANDBOX).set_join_approval(group=group["jid"], approval=approval)
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    if approval:
        text = _("Admins of %(group)s now approve new members.")
    else:
        text = _("New members join %(group)s without an admin's approval now.")
    return done(request, text % {"group": group["name"]}, _back(request, device))


@member_required(write=True)
@require_POST
def sandbox_peer_number(request, device_id: int):
    """A simulated contact hides its number (its messages arrive by hidden user ID, …@lid) or shares it again
    (WhatsApp then tells the numbers it wrote to who the LID is, and their chats merge)."""
    _require_sandbox()
    device = org_device(request, device_id)
    label = _("Contact")
    from_phone, error = _simulated_contact(request, (request.POST.get("from_phone") or "").strip(), label)
    sandbox = service(SANDBOX)
    if error:
        return done(request, error, _back(request, device), error=True)
    hidden = request.POST.get("hidden") == "1"
    try:
        sandbox.peer_hide_phone(phone=from_phone, hidden=hidden)
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    if hidden:
        return done(request, _("The contact now writes by hidden ID (LID) only."), _back(request, device))
    return done(
        request,
        _("The contact shares its number again: your numbers learn who the LID is."),
        _back(request, device),
    )


@member_required(write=True)
@require_POST
def sandbox_peer_call(request, device_id: int):
    """A simulated contact calls the number (the number's auto-reject setting answers it, as on WhatsApp)."""
    _require_sandbox()
    device = org_device(request, device_id)
    label = _("Caller")
    from_phone = (request.POST.get("from_phone") or "").strip()
    if not device.jid:
        return done(request, _("This number is not linked yet."), _back(request, device), error=True)
    if not from_phone:
        return done(
            request,
            _("%(field)s: pick a simulated contact.") % {"field": label},
            _back(request, device),
            error=True,
        )
    from_phone, error = _simulated_contact(request, from_phone, label)
    sandbox = service(SANDBOX)
    if error:
        return done(request, error, _back(request, device), error=True)
    try:
        sandbox.peer_call(
            from_phone=from_phone,
            to_jid=device.jid,
            is_video=bool(request.POST.get("is_video")),
            organization_id=request.organization.pk,
        )
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), _back(request, device), error=True)
    return done(request, _("The simulated contact is calling the number."), _back(request, device))


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
