"""Calls on the simulated network: a simulated contact rings a device's number; the device may reject it.

There is no audio: a call is a row that rings (the device gets a CallOfferEvent) until the device rejects it.
The caller's side (the dashboard's simulated phone, and tests) sees the rejection in `calls_to`.
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.protocol import InvalidRequest, NotFound
from messaging.whatsapp.sandbox import tenancy
from messaging.whatsapp.sandbox.actors import _Actor
from messaging.whatsapp.sandbox.network import _jid, _phone, _user_jid, now
from messaging.whatsapp.sandbox.seeding import _network
from messaging.whatsapp.sandbox.waking import _wake_sync

RINGING = "ringing"
REJECTED = "rejected"


def peer_call(
    *, from_phone: str, to_jid: str, is_video: bool = False, organization_id: int | None = None
) -> str:
    """A simulated account calls a device's number (`to_jid`); the devices linked as it get a CallOfferEvent.
    Returns the call's ID. `organization_id`: the simulated phone is that organization's, which may not call
    as another's number."""
    from messaging.models import SandboxCall

    _network()
    actor = _Actor(_phone(from_phone, field="from_phone"))
    actor.account()  # must exist
    if organization_id is not None:
        tenancy.require_send_as(actor.phone, organization_id=organization_id)
    to = _jid(to_jid, field="to")
    if p.is_group(to) or not to.endswith("@" + p.USER_SERVER):
        raise InvalidRequest(_noop("to: a call goes to a phone number."))
    if to == actor.jid:
        raise InvalidRequest(_noop("to: an account cannot call itself."))
    callee = p.jid_user(to)
    _Actor(callee).account()  # must exist
    call_id = secrets.token_hex(16).upper()
    stamp = now()
    with transaction.atomic():
        SandboxCall.objects.create(
            call_id=call_id, caller=actor.phone, callee=callee, is_video=bool(is_video), created_at=stamp
        )
        actor._deliver(
            [callee],
            p.CallOfferEvent(call_id=call_id, caller=actor.jid, is_video=bool(is_video), timestamp=stamp),
        )
    _wake_sync(actor.wake)
    return call_id


def reject_call(phone: str, *, caller: str, call_id: str) -> None:
    """The account `phone` declines a call ringing on it (sync; the device client's DB thread)."""
    from messaging.models import SandboxCall

    with transaction.atomic():
        call = SandboxCall.objects.select_for_update().filter(call_id=call_id, callee=phone).first()
        if call is None or (caller and _user_jid(call.caller) != caller):
            raise NotFound(
                _noop("There is no call %(call_id)s from %(caller)s to this number.")
                % {"call_id": call_id, "caller": caller}
            )
        if call.state != RINGING:
            raise InvalidRequest(
                _noop("The call %(call_id)s is not ringing any more (%(state)s).")
                % {"call_id": call_id, "state": call.state}
            )
        call.state = REJECTED
        call.ended_at = now()
        call.save(update_fields=["state", "ended_at"])


def calls_to(phone: str, *, limit: int = 10) -> list[dict]:
    """The latest calls to the number `phone`, newest first, as the callers saw them: ringing or rejected, and
    the first message the number sent each caller after a rejection (its auto-reply, once sent)."""
    from messaging.models import SandboxCall, SandboxMessage

    phone = _phone(phone)
    out = []
    for call in SandboxCall.objects.filter(callee=phone).order_by("-id")[:limit]:
        reply = None
        if call.state == REJECTED:
            reply = (
                SandboxMessage.objects.filter(
                    sender=_user_jid(phone), to=_user_jid(call.caller), timestamp__gte=call.created_at
                )
                .order_by("timestamp", "id")
                .values_list("text", flat=True)
                .first()
            )
        out.append(
            {
                "call_id": call.call_id,
                "caller": call.caller,
                "is_video": call.is_video,
                "state": call.state,
                "reply": reply,
            }
        )
    return out


def recorded_proxy(device_id: int) -> str | None:
    """The proxy the device's last connection was set to use, as the network recorded it (None: no session)."""
    from messaging.models import SandboxSession

    return SandboxSession.objects.filter(device_id=device_id).values_list("proxy_url", flat=True).first()


__all__ = ["REJECTED", "RINGING", "calls_to", "peer_call", "recorded_proxy", "reject_call"]
