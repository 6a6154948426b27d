"""Incoming calls on the worker's side: the number's auto-reject setting, and its reply queued in the outbox."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.services import record_audit
from messaging import events, gateway
from messaging.models import Chat, Device, Message, MessageStatus
from messaging.services.messages import device_of
from messaging.services.outbox import _touch_chat
from messaging.whatsapp import protocol
from waportal import fast_insert


def call_settings(device_id: int) -> tuple[bool, str]:
    """Whether the number declines calls, and the text it answers a declined caller with ("" for none)."""
    row = Device.objects.filter(pk=device_id).values_list("reject_calls", "reject_call_message").first()
    if row is None:
        return False, ""
    return bool(row[0]), (row[1] or "").strip()


def queue_call_reply(device_id: int, *, caller: str, call_id: str, text: str) -> str | None:
    """Store the reply to a declined caller as a queued message (the worker's drain sends it, like any send:
    a number offline now sends it once connected). Returns its WhatsApp ID; None when the device is gone.
    Sync (the worker's DB thread)."""
    device = Device.objects.filter(pk=device_id).select_related("organization").first()
    if device is None:
        return None
    to = protocol.normalize_jid(caller)
    now = timezone.now()
    preview = events.preview_of("text", text, "")
    message = Message(
        organization_id=device.organization_id,
        device=device,
        wa_id=protocol.generate_message_id(),
        from_me=True,
        sender_jid=device.jid,
        sender_name=device.push_name,
        kind=str(protocol.MessageKind.TEXT),
        text=text,
        payload={"call_reply": call_id},
        status=MessageStatus.QUEUED,
        timestamp=now,
    )
    with transaction.atomic():
        chat_id = _touch_chat(device.pk, to, now, preview)
        if chat_id is None:
            chat, created = Chat.objects.get_or_create(
                device=device,
                jid=to,
                defaults={
                    "organization_id": device.organization_id,
                    "is_group": protocol.is_group(to),
                    "last_message_at": now,
                    "last_message_preview": preview,
                },
            )
            chat_id = chat.pk if created else _touch_chat(device.pk, to, now, preview)
        message.chat_id = chat_id
        fast_insert.insert(message)
        record_audit(
            organization=device.organization,
            action="call.reply",
            obj=message,
            details={"to": to, "call_id": call_id, "device_id": device.pk},
        )
    return message.wa_id


REJECT_TIMEOUT = 10.0  # seconds a rejection may take before the call counts as not rejected


async def answer_call(client: protocol.WhatsAppClient, event: protocol.CallOfferEvent) -> bool:
    """Apply the number's auto-reject setting to a ringing call (on the session worker's loop): reject it when
    the setting is on and, when it also has a reply text, queue that reply to the caller. Fills the event's
    `rejected`, `reply_sent` and `reject_error` (the call.offer webhook tells them). Returns whether a reply was
    queued (the worker then drains the outbox)."""
    import asyncio
    import logging

    from messaging import runtime

    reject, text = await runtime.db(call_settings, event.device_id)
    if not reject:
        return False
    try:
        # The ID the offer named the caller by: whatsmeow answers on it (a hidden @lid one included).
        await asyncio.wait_for(
            client.reject_call(caller=event.caller_lid or event.caller, call_id=event.call_id), REJECT_TIMEOUT
        )
    except Exception as exc:  # NotSupported, NotConnected, a timeout: the webhook says so, the call rings on
        event.reject_error = (getattr(exc, "message", "") or str(exc) or type(exc).__name__)[:200]
        logging.getLogger(__name__).warning(
            "device %s could not reject call %s: %s", event.device_id, event.call_id, event.reject_error
        )
        return False
    event.rejected = True
    if not text or event.is_group:  # a group call has no one caller's chat to answer in
        return False
    event.reply_sent = bool(
        await runtime.db(
            queue_call_reply, event.device_id, caller=event.caller, call_id=event.call_id, text=text
        )
    )
    return event.reply_sent


def reject_call(*, organization, device, caller: str, call_id: str, actor=None, api_key=None) -> None:
    """Decline a ringing call on the number (POST /call/reject): WhatsApp is told, then the audit entry."""
    device = device_of(organization, device)
    gateway.call(device, "reject_call", caller=caller, call_id=call_id)
    with transaction.atomic():
        record_audit(
            organization=organization,
            action="call.reject",
            actor=actor,
            api_key=api_key,
            obj=device,
            details={"caller": caller, "call_id": call_id},
        )
