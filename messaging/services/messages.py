"""Acting on messages already in a chat (revoke, react, edit, read, star, delete for me): WhatsApp first, then our copy.

Each function checks the device belongs to the organization (Http404 otherwise), asks the worker holding the
device through `gateway.call` (outside any transaction: the worker writes events while it runs), then updates
the stored Message, if we have it, and records the audit entry in one transaction. Bad input raises
ValidationError naming the field (`chat`, `message_id`, `emoji`, `text`); WhatsApp's refusals propagate as
`protocol.WhatsAppError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services import record_audit
from messaging import gateway
from messaging.models import Device, Message, MessageStatus, SentMessageId
from messaging.whatsapp import protocol
from waportal.i18n import localize

logger = logging.getLogger(__name__)

__all__ = [
    "device_of",
    "normalize_chat",
    "revoke_message",
    "react_message",
    "edit_message",
    "mark_read",
    "star_message",
    "delete_message_for_me",
    "resend_message",
    "forward_message",
]

MAX_MESSAGE_ID = 128
MAX_TEXT = 65536


def device_of(organization, device) -> Device:
    """The organization's device (by instance or pk); Http404 for another organization's or a missing one."""
    pk = device if isinstance(device, int) else getattr(device, "pk", None)
    found = organization.devices.filter(pk=pk).first() if pk is not None else None
    if found is None:
        raise Http404("No such device in this organization.")
    return found


def normalize_chat(value, *, field: str = "chat") -> str:
    """A chat JID from a JID or bare phone digits; ValidationError naming `field` otherwise."""
    if not isinstance(value, str):
        raise ValidationError({field: "must be a WhatsApp ID or a phone number."})
    try:
        return protocol.normalize_jid(value)
    except ValueError as exc:
        raise ValidationError({field: localize(str(exc))}) from None


def _message_id(value) -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if not value:
        raise ValidationError({"message_id": "is required."})
    if len(value) > MAX_MESSAGE_ID or any(c.isspace() for c in value):
        raise ValidationError({"message_id": "is not a WhatsApp message ID."})
    return value


@dataclass(slots=True)
class _Target:
    device: Device
    chat: str
    message_id: str
    message: Message | None  # our stored copy, when we have one
    sender: str  # JID of the message's author
    from_me: bool


def _target(organization, device, chat, message_id, *, assume_mine: bool) -> _Target:
    device = device_of(organization, device)
    chat = normalize_chat(chat)
    message_id = _message_id(message_id)
    message = Message.objects.filter(device=device, wa_id=message_id, chat__jid=chat).first()
    if message is not None:
        from_me = message.from_me
        sender = message.sender_jid or (device.jid if from_me else chat)
    elif assume_mine:  # only one's own messages can be revoked or edited
        from_me, sender = True, device.jid
    else:
        from_me, sender = False, chat
    return _Target(device, chat, message_id, message, sender, from_me)


def _refuse_if_revoked(target: _Target, problem: str) -> None:
    if target.message is not None and target.message.revoked_at is not None:
        raise ValidationError({"message_id": problem})


def _audit(organization, action, target: _Target, *, actor, api_key, **details) -> None:
    record_audit(
        organization=organization,
        action=action,
        actor=actor,
        api_key=api_key,
        obj=target.message,
        object_type="" if target.message else "messaging.message",
        object_id="" if target.message else target.message_id,
        details={
            "chat": target.chat,
            "message_id": target.message_id,
            "device_id": target.device.pk,
            **details,
        },
    )


def revoke_message(
    *, organization, device, chat: str, message_id: str, actor=None, api_key=None
) -> Message | None:
    """Delete for everyone. Returns our stored copy (marked revoked) or None when we never stored it."""
    target = _target(organization, device, chat, message_id, assume_mine=True)
    gateway.call(
        target.device, "revoke", chat=target.chat, message_id=target.message_id, sender=target.sender
    )
    with transaction.atomic():
        if target.message is not None:
            # Deleted for everyone: its reactions and our star go with it (as on the phone).
            target.message.revoked_at = timezone.now()
            target.message.reactions, target.message.starred = {}, False
            target.message.save(update_fields=["revoked_at", "reactions", "starred"])
        _audit(organization, "message.revoke", target, actor=actor, api_key=api_key)
    return target.message


def react_message(
    *, organization, device, chat: str, message_id: str, emoji: str, actor=None, api_key=None
) -> Message | None:
    """React with `emoji` ("" removes our reaction)."""
    if not isinstance(emoji, str) or len(emoji) > 16 or any(c.isspace() for c in emoji):
        raise ValidationError({"emoji": "must be one emoji (or empty to remove the reaction)."})
    target = _target(organization, device, chat, message_id, assume_mine=False)
    _refuse_if_revoked(target, _("A message deleted for everyone cannot be reacted to."))
    gateway.call(
        target.device,
        "react",
        chat=target.chat,
        message_id=target.message_id,
        sender=target.sender,
        emoji=emoji,
    )
    with transaction.atomic():
        if target.message is not None:
            message = Message.objects.select_for_update().get(pk=target.message.pk)
            reactions = dict(message.reactions or {})
            me = target.device.jid or "me"
            if emoji:
                reactions[me] = emoji
            else:
                reactions.pop(me, None)
            message.reactions = reactions
            message.save(update_fields=["reactions"])
            target.message = message
        _audit(organization, "message.react", target, actor=actor, api_key=api_key, emoji=emoji)
    return target.message


def edit_message(
    *, organization, device, chat: str, message_id: str, text: str, actor=None, api_key=None
) -> Message | None:
    """Edit one of our sent messages (text, or a media caption)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError({"text": "the new text is empty."})
    if len(text) > MAX_TEXT:
        raise ValidationError({"text": f"is longer than {MAX_TEXT} characters."})
    target = _target(organization, device, chat, message_id, assume_mine=True)
    if target.message is not None and not target.message.from_me:
        raise ValidationError({"message_id": "only messages sent from this number can be edited."})
    gateway.call(target.device, "edit", chat=target.chat, message_id=target.message_id, text=text)
    with transaction.atomic():
        message = target.message
        if message is not None:
            if message.kind in (protocol.MessageKind.TEXT, protocol.MessageKind.LINK):
                message.text = text
            else:
                message.caption = text
            message.edited_at = timezone.now()
            message.save(update_fields=["text", "caption", "edited_at"])
        _audit(organization, "message.edit", target, actor=actor, api_key=api_key)
    return target.message


def mark_read(
    *, organization, device, chat: str, message_id: str, actor=None, api_key=None
) -> Message | None:
    """Send a read receipt for the message (and, on our side, everything before it in the chat)."""
    target = _target(organization, device, chat, message_id, assume_mine=False)
    gateway.call(
        target.device, "mark_read", chat=target.chat, message_ids=[target.message_id], sender=target.sender
    )
    with transaction.atomic():
        now = timezone.now()
        message = target.message
        if message is not None:
            message.read_by_me_at = message.read_by_me_at or now
            Message.objects.filter(
                chat_id=message.chat_id,
                from_me=False,
                read_by_me_at__isnull=True,
                timestamp__lte=message.timestamp,
            ).update(read_by_me_at=now)
            message.save(update_fields=["read_by_me_at"])
            chat_row = message.chat
            chat_row.unread_count = chat_row.messages.filter(
                from_me=False, read_by_me_at__isnull=True
            ).count()
            chat_row.save(update_fields=["unread_count"])
        _audit(organization, "message.read", target, actor=actor, api_key=api_key)
    return target.message


def clear_unread(*, organization, chat) -> bool:
    """Someone opened the chat on the dashboard: its unread count goes to 0 (no read receipt is sent; that is
    mark_read). One conditional UPDATE, so two people opening it at once do no harm; True when it changed.

    A chat read as having none unread is not written at all: the page shows what was read, and a write statement
    (even one that changes no row) waits for SQLite's one write lock behind whatever the worker is storing."""
    from messaging.models import Chat

    if not chat.unread_count:
        return False
    changed = Chat.objects.filter(organization=organization, pk=chat.pk, unread_count__gt=0).update(
        unread_count=0
    )
    chat.unread_count = 0
    return bool(changed)


def star_message(
    *, organization, device, chat: str, message_id: str, starred: bool = True, actor=None, api_key=None
) -> Message | None:
    """Star (or, with starred=False, unstar) a message."""
    target = _target(organization, device, chat, message_id, assume_mine=False)
    if starred:
        _refuse_if_revoked(target, _("A message deleted for everyone cannot be starred."))
    gateway.call(
        target.device,
        "star",
        chat=target.chat,
        message_id=target.message_id,
        sender=target.sender,
        from_me=target.from_me,
        starred=bool(starred),
    )
    with transaction.atomic():
        if target.message is not None:
            target.message.starred = bool(starred)
            target.message.save(update_fields=["starred"])
        _audit(
            organization,
            "message.star" if starred else "message.unstar",
            target,
            actor=actor,
            api_key=api_key,
        )
    return target.message


def delete_message_for_me(
    *, organization, device, chat: str, message_id: str, actor=None, api_key=None
) -> Message | None:
    """Delete a message from this number's view only."""
    target = _target(organization, device, chat, message_id, assume_mine=False)
    gateway.call(
        target.device,
        "delete_for_me",
        chat=target.chat,
        message_id=target.message_id,
        sender=target.sender,
        from_me=target.from_me,
    )
    with transaction.atomic():
        if target.message is not None:
            target.message.deleted_for_me_at = timezone.now()
            target.message.save(update_fields=["deleted_for_me_at"])
        _audit(organization, "message.delete_for_me", target, actor=actor, api_key=api_key)
    return target.message


def resend_message(*, organization, device, chat: str, message_id: str, actor=None, api_key=None) -> Message:
    """Send again one of our messages whose sending is `unknown` (a person checked the phone: it is not there).

    Forgets the earlier attempt, so that the backend sends it, and queues it: the worker holding the number
    sends it as it sends any queued message. ValidationError (`message_id`) when its sending is not unknown.
    """
    target = _target(organization, device, chat, message_id, assume_mine=True)
    message = target.message
    if message is None or not message.from_me or message.status != MessageStatus.UNKNOWN:
        raise ValidationError({"message_id": _("Only a message whose sending is unknown can be sent again.")})
    with transaction.atomic():
        SentMessageId.objects.filter(
            device=target.device, message_id=message.wa_id, sent_at__isnull=True
        ).delete()
        Message.objects.filter(pk=message.pk, status=MessageStatus.UNKNOWN).update(
            status=MessageStatus.QUEUED, error="", attempts=0
        )
        _audit(organization, "message.resend", target, actor=actor, api_key=api_key)
    try:
        gateway.run_sync(lambda: gateway.notify_worker(target.device.pk, {"type": gateway.OUTBOX}), timeout=5)
    except Exception:  # queued in the database: the worker's heartbeat sends it all the same
        logger.warning("could not nudge the worker of device %s", target.device.pk, exc_info=True)
    message.refresh_from_db()
    return message


# What a forwarded copy keeps of the original (its kind's own fields); the rest (quote, view-once) stays behind.
_FORWARDED_FIELDS = (
    "contact_name",
    "contact_phone",
    "latitude",
    "longitude",
    "poll_question",
    "poll_options",
    "poll_max_answer",
)


def forward_message(*, organization, device, message_id: str, to: str, actor=None, api_key=None) -> Message:
    """Send a copy of a stored message (any chat of the device) to `to`, marked forwarded, through the outbox.

    Media goes with it: the stored file, or else fetched from WhatsApp first (so an offline device cannot
    forward media it never downloaded: WhatsApp's NotConnected passes through). ValidationError naming
    `message_id` when there is no such message or it cannot be sent again (a reaction, a revoke).
    """
    from messaging.services import downloads
    from messaging.services.outbox import queue_message

    device = device_of(organization, device)
    message_id = _message_id(message_id)
    original = Message.objects.filter(device=device, wa_id=message_id).order_by("-pk").first()
    if original is None:
        raise Http404(_("message_id: no message %(id)s on this device.") % {"id": message_id})
    kind = protocol.MessageKind(original.kind) if original.kind in protocol.MessageKind else None
    if kind is None or kind in (
        protocol.MessageKind.REACTION,
        protocol.MessageKind.EDIT,
        protocol.MessageKind.REVOKE,
        protocol.MessageKind.UNKNOWN,
    ):
        raise ValidationError({"message_id": _("This kind of message cannot be forwarded.")})
    payload = original.payload or {}
    outgoing = {
        "to": to,
        "kind": str(kind),
        "text": original.text,
        "caption": original.caption,
        "mime_type": original.media_mime,
        "filename": original.media_filename,
        "is_forwarded": True,
        **{key: payload[key] for key in _FORWARDED_FIELDS if key in payload},
    }
    if kind in protocol.MEDIA_KINDS:
        try:
            outgoing["media"] = downloads.media_file(device, original)
        except downloads.NoMedia as exc:
            raise ValidationError({"message_id": localize(str(exc))}) from None
    try:
        return queue_message(
            organization=organization, device=device, outgoing=outgoing, actor=actor, api_key=api_key
        )
    finally:
        if "media" in outgoing:
            outgoing["media"].close()
