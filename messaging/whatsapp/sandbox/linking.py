"""Linking devices to simulated phones: QR and pairing codes, from the phone's side and the device's."""

from __future__ import annotations

import hashlib
import re
import secrets

from django.db import transaction
from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp.protocol import (
    Forbidden,
    InvalidRequest,
    NotFound,
)
from messaging.whatsapp.sandbox import tenancy
from messaging.whatsapp.sandbox.actors import _Actor
from messaging.whatsapp.sandbox.network import (
    DEFAULT_PRIVACY,
    PAIR_ALPHABET,
    PAIR_CODE_SECONDS,
    _phone,
    _user_jid,
    now,
)
from messaging.whatsapp.sandbox.seeding import (
    _network,
    fresh_phone,
)
from messaging.whatsapp.sandbox.waking import _wake_sync


def _phone_account(phone: str, push_name: str = ""):
    """The account of a phone that links devices; created (registered, with the peers as contacts) if new."""
    from messaging.models import SandboxAccount, SandboxNewsletter

    account = SandboxAccount.objects.filter(phone=phone).first()
    if account is not None:
        if not account.registered:
            account.registered = True
            account.save(update_fields=["registered"])
        return account
    contacts = list(
        _user_jid(ph)
        for ph in SandboxAccount.objects.filter(kind="peer", registered=True)
        .order_by("id")
        .values_list("phone", flat=True)
    )
    account = SandboxAccount.objects.create(
        phone=phone,
        push_name=push_name or f"Sandbox {phone[-4:]}",
        about="Hey there! I am using WhatsApp.",
        picture_id=str(int(hashlib.sha256(phone.encode()).hexdigest()[:9], 16)),
        kind="phone",
        privacy=dict(DEFAULT_PRIVACY),
        contacts=contacts,
    )
    first = SandboxNewsletter.objects.order_by("id").first()
    if first is not None:  # a new phone follows the network's news, as new WhatsApp users are nudged to
        _Actor(phone).follow_newsletter(jid=first.jid)
    return account


def _link(device_id: int, phone: str) -> dict:
    from messaging.models import SandboxSession

    if SandboxSession.objects.filter(device_id=device_id).exists():
        raise InvalidRequest(_noop("This device is already linked."))
    organization_id = tenancy.require_link(phone, device_id=device_id)
    account = _phone_account(phone)
    if not tenancy.claim(account, organization_id):  # another organization linked it a moment ago
        raise Forbidden(_noop("phone: %(reason)s") % {"reason": tenancy.REFUSALS[tenancy.FOREIGN]})
    SandboxSession.objects.create(device_id=device_id, phone=account.phone, push_name=account.push_name)
    return {
        "device_id": device_id,
        "jid": account.jid,
        "phone": account.phone,
        "push_name": account.push_name,
    }


def phone_scan(*, qr_code: str, phone: str | None = None) -> dict:
    """A simulated phone scans a device's QR code: links the device to `phone` (a new number if None).

    Sync, any process. Raises InvalidRequest for an unknown, used or expired code. Returns
    {"device_id", "jid", "phone", "push_name"}; the device's client then emits PairedEvent and ConnectedEvent.
    """
    from messaging.models import SandboxLinkCode

    _network()
    phone = _phone(phone) if phone else fresh_phone()
    with transaction.atomic():
        code = (
            SandboxLinkCode.objects.select_for_update()
            .filter(kind="qr", code=(qr_code or "").strip())
            .first()
        )
        if code is None or code.used_at is not None:
            raise InvalidRequest(_noop("This QR code is not valid; scan the code the device shows now."))
        if code.expires_at <= now():
            raise InvalidRequest(_noop("This QR code has expired; scan the new one."))
        result = _link(code.device_id, phone)
        SandboxLinkCode.objects.filter(device_id=code.device_id).update(used_at=now())
    _wake_sync([code.device_id])
    return result


def phone_enter_code(*, phone: str, code: str) -> dict:
    """The simulated phone `phone` enters a pairing code: works only on the number the code was asked for."""
    from messaging.models import SandboxLinkCode

    _network()
    phone = _phone(phone)
    typed = re.sub(r"[^A-Z0-9]", "", (code or "").upper())
    if len(typed) != 8:
        raise InvalidRequest(_noop("code: a pairing code has 8 letters and digits (like ABCD-EFGH)"))
    formatted = f"{typed[:4]}-{typed[4:]}"
    with transaction.atomic():
        row = (
            SandboxLinkCode.objects.select_for_update()
            .filter(kind="pair", code=formatted, used_at__isnull=True)
            .first()
        )
        if row is None:
            raise NotFound(_noop("This pairing code is not valid; request a new one."))
        if row.expires_at <= now():
            raise InvalidRequest(_noop("This pairing code has expired; request a new one."))
        if row.phone != phone:
            raise Forbidden(_noop("This code was requested for another phone number."))
        result = _link(row.device_id, phone)
        SandboxLinkCode.objects.filter(device_id=row.device_id).update(used_at=now())
    _wake_sync([row.device_id])
    return result


def phone_unlink(*, device_id: int) -> None:
    """The phone removes the linked device (Settings > Linked devices > Log out): the device is logged out."""
    from messaging.models import SandboxSession

    if not SandboxSession.objects.filter(device_id=device_id).delete()[0]:
        raise NotFound(_noop("This device is not linked."))
    _wake_sync([device_id])


def store_session(*, device_id: int, phone: str, push_name: str = "") -> dict:
    """Record a device as linked to `phone` without a scan (the demo): its client connects at start."""
    from messaging.models import Device, SandboxSession

    _network()
    phone = _phone(phone)
    account = _phone_account(phone, push_name)
    organization_id = Device.objects.filter(pk=device_id).values_list("organization_id", flat=True).first()
    tenancy.claim(account, organization_id)  # the demo's own number: claimed, never refused
    session, _ = SandboxSession.objects.update_or_create(
        device_id=device_id, defaults=dict(phone=account.phone, push_name=account.push_name, announced=True)
    )
    return {
        "device_id": device_id,
        "jid": account.jid,
        "phone": account.phone,
        "push_name": account.push_name,
    }


def _session_state(device_id: int) -> dict | None:
    """The device's session, marking it announced; "announce" says whether PairedEvent is still due, and
    then "history_upto" which messages the phone holds now (its history is what it held when linked)."""
    from messaging.models import SandboxMessage, SandboxSession

    _network()
    with transaction.atomic():
        session = SandboxSession.objects.select_for_update().filter(device_id=device_id).first()
        if session is None:
            return None
        announce = not session.announced
        if announce:
            session.announced = True
            session.save(update_fields=["announced"])
        return {
            "jid": session.jid,
            "phone": session.phone,
            "push_name": session.push_name,
            "announce": announce,
            # Read before the client says it is connected: whatever is sent after that arrives live only.
            "history_upto": (SandboxMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0)
            if announce
            else None,
        }


def _new_qr(device_id: int, seconds: float) -> str:
    from messaging.models import SandboxLinkCode

    code = "2@sandbox:" + secrets.token_urlsafe(24)
    stamp = now()
    # Codes long expired are of no use to anyone: keep the table small while a device waits to be linked.
    SandboxLinkCode.objects.filter(device_id=device_id, kind="qr", expires_at__lt=stamp - 300).delete()
    SandboxLinkCode.objects.create(device_id=device_id, kind="qr", code=code, expires_at=stamp + seconds)
    return code


def _new_pair_code(device_id: int, phone: str) -> str:
    from messaging.models import SandboxLinkCode

    raw = "".join(secrets.choice(PAIR_ALPHABET) for _ in range(8))
    code = f"{raw[:4]}-{raw[4:]}"
    SandboxLinkCode.objects.create(
        device_id=device_id, kind="pair", code=code, phone=phone, expires_at=now() + PAIR_CODE_SECONDS
    )
    return code


def _is_registered_or_new(phone: str) -> bool:
    """Pairing works for any number that is on WhatsApp or a new simulated phone (not a known unregistered one)."""
    from messaging.models import SandboxAccount

    account = SandboxAccount.objects.filter(phone=phone).first()
    return account is None or account.registered


def _forget_session(device_id: int) -> None:
    from messaging.models import SandboxDelivery, SandboxLinkCode, SandboxSession

    SandboxSession.objects.filter(device_id=device_id).delete()
    SandboxLinkCode.objects.filter(device_id=device_id).delete()
    SandboxDelivery.objects.filter(device_id=device_id).delete()
