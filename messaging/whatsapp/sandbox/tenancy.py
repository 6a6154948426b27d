"""Which numbers an organization may act as on the simulated network, which every tenant shares.

On WhatsApp only the person holding a phone can link it or write from it. On the simulated network anyone can
type any number, so the network keeps the rule itself: a phone's number belongs to the organization whose device
first linked it (`SandboxAccount.organization`), and no other organization may link a device as that number
(and so read its traffic) or make the simulated phone write as it. Simulated contacts are the network's own:
anyone may write as them, nobody may link a device as them (that device would read what every tenant sends them).
Refusals name the field and the number the caller typed, never the organization or the groups behind it.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp.protocol import Forbidden

# Why a number is refused (what `link_refusal` and `send_refusal` answer), and the sentence the network says.
FOREIGN, CONTACT = "foreign", "contact"
REFUSALS = {
    FOREIGN: _noop("this number is another organization's on the simulated network; use another number."),
    CONTACT: _noop("this is a simulated contact's number; no device can be linked as it."),
}


def _account(phone: str):
    from messaging.models import SandboxAccount

    return SandboxAccount.objects.filter(phone=phone).only("kind", "organization_id").first()


def _linked_elsewhere(phone: str, organization_id: int | None) -> bool:
    from messaging.models import SandboxSession

    return (
        SandboxSession.objects.filter(phone=phone).exclude(device__organization_id=organization_id).exists()
    )


def _foreign(account, phone: str, organization_id: int | None) -> bool:
    if account is not None and account.organization_id not in (None, organization_id):
        return True
    return _linked_elsewhere(phone, organization_id)


def link_refusal(phone: str, *, organization_id: int | None) -> str:
    """Why a device of the organization may not be linked as `phone`: FOREIGN, CONTACT, or "" when it may."""
    account = _account(phone)
    if account is not None and account.kind == "peer":
        return CONTACT
    return FOREIGN if _foreign(account, phone, organization_id) else ""


def send_refusal(phone: str, *, organization_id: int | None) -> str:
    """Why the organization's simulated phone may not write as `phone`: FOREIGN, or "" when it may."""
    account = _account(phone)
    if account is not None and account.kind == "peer":
        return FOREIGN if _linked_elsewhere(phone, organization_id) else ""
    return FOREIGN if _foreign(account, phone, organization_id) else ""


def require_link(phone: str, *, device_id: int, field: str = "phone") -> int | None:
    """Refuse (Forbidden, naming `field`) to link the device as `phone`; returns the device's organization."""
    from messaging.models import Device

    organization_id = Device.objects.filter(pk=device_id).values_list("organization_id", flat=True).first()
    reason = link_refusal(phone, organization_id=organization_id)
    if reason:
        raise Forbidden(_noop("%(field)s: %(reason)s") % {"field": field, "reason": REFUSALS[reason]})
    return organization_id


def require_send_as(phone: str, *, organization_id: int, field: str = "from_phone") -> None:
    reason = send_refusal(phone, organization_id=organization_id)
    if reason:
        raise Forbidden(_noop("%(field)s: %(reason)s") % {"field": field, "reason": REFUSALS[reason]})


def claim(account, organization_id: int | None) -> bool:
    """The organization linking `account` makes the number its own unless it is already another's (then False).

    One conditional UPDATE: of two organizations linking a new number at the same moment, one gets it.
    """
    from messaging.models import SandboxAccount

    if organization_id is None or account.kind != "phone":
        return True
    SandboxAccount.objects.filter(pk=account.pk, organization__isnull=True).update(
        organization_id=organization_id
    )
    owner = SandboxAccount.objects.filter(pk=account.pk).values_list("organization_id", flat=True).first()
    account.organization_id = owner
    return owner == organization_id
