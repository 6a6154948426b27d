"""A chat's state (pinned, archived, disappearing timer, labels): WhatsApp first, then our Chat row.

Like messages.py: the device is checked against the organization (Http404), WhatsApp is asked through the
gateway outside any transaction (its refusals propagate as protocol.WhatsAppError, NotSupported on a backend
that cannot), then the Chat (made if this is the first we hear of it) and the audit entry are written together.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.services import record_audit
from messaging import gateway
from messaging.models import Chat, Label
from messaging.services.lids import phone_for
from messaging.services.messages import device_of, normalize_chat
from messaging.whatsapp import protocol

__all__ = ["set_chat_pinned", "set_chat_archived", "set_chat_disappearing", "set_chat_label"]

MAX_LABEL_ID = 64
MAX_LABEL_NAME = 100


def _chat(device, jid: str) -> Chat:
    jid = phone_for(device, jid)  # a LID whose number is known: the number's chat
    chat, _created = Chat.objects.get_or_create(
        device=device,
        jid=jid,
        defaults={"organization_id": device.organization_id, "is_group": protocol.is_group(jid)},
    )
    return chat


def _audit(organization, action: str, chat: Chat, *, actor, api_key, **details) -> None:
    record_audit(
        organization=organization,
        action=action,
        actor=actor,
        api_key=api_key,
        obj=chat,
        details={"chat": chat.jid, "device_id": chat.device_id, **details},
    )


def set_chat_pinned(*, organization, device, chat: str, pinned: bool, actor=None, api_key=None) -> Chat:
    device = device_of(organization, device)
    jid = normalize_chat(chat)
    gateway.call(device, "pin_chat", chat=jid, pinned=bool(pinned))
    with transaction.atomic():
        row = _chat(device, jid)
        Chat.objects.filter(pk=row.pk).update(pinned=bool(pinned))
        row.pinned = bool(pinned)
        _audit(organization, "chat.pin" if pinned else "chat.unpin", row, actor=actor, api_key=api_key)
    return row


def set_chat_archived(*, organization, device, chat: str, archived: bool, actor=None, api_key=None) -> Chat:
    device = device_of(organization, device)
    jid = normalize_chat(chat)
    gateway.call(device, "archive_chat", chat=jid, archived=bool(archived))
    with transaction.atomic():
        row = _chat(device, jid)
        Chat.objects.filter(pk=row.pk).update(archived=bool(archived))
        row.archived = bool(archived)
        _audit(
            organization, "chat.archive" if archived else "chat.unarchive", row, actor=actor, api_key=api_key
        )
    return row


def set_chat_disappearing(*, organization, device, chat: str, seconds: int, actor=None, api_key=None) -> Chat:
    """Messages of the chat disappear after `seconds`: one of WhatsApp's timers (0 turns it off)."""
    if seconds not in protocol.DISAPPEARING_TIMERS:
        raise ValidationError(
            {
                "seconds": _("must be one of WhatsApp's timers: %(timers)s (0 turns it off).")
                % {"timers": ", ".join(str(t) for t in protocol.DISAPPEARING_TIMERS)}
            }
        )
    device = device_of(organization, device)
    jid = normalize_chat(chat)
    gateway.call(device, "set_disappearing_timer", chat=jid, seconds=seconds)
    with transaction.atomic():
        row = _chat(device, jid)
        Chat.objects.filter(pk=row.pk).update(disappearing_seconds=seconds)
        row.disappearing_seconds = seconds
        _audit(organization, "chat.disappearing", row, actor=actor, api_key=api_key, seconds=seconds)
    return row


def set_chat_label(
    *,
    organization,
    device,
    chat: str,
    label_id: str,
    label_name: str = "",
    labeled: bool,
    actor=None,
    api_key=None,
) -> Label:
    """Put the device's label `label_id` on the chat, or take it off; a new label is made (named
    `label_name`) the first time its ID is used, and renamed when a name is given."""
    label_id = label_id.strip() if isinstance(label_id, str) else ""
    if not label_id or len(label_id) > MAX_LABEL_ID or any(c.isspace() for c in label_id):
        raise ValidationError({"label_id": _("is required: WhatsApp's ID of the label (no spaces).")})
    label_name = (label_name or "").strip()
    if len(label_name) > MAX_LABEL_NAME:
        raise ValidationError({"label_name": _("is longer than %(n)s characters.") % {"n": MAX_LABEL_NAME}})
    device = device_of(organization, device)
    jid = normalize_chat(chat)
    gateway.call(
        device, "label_chat", chat=jid, label_id=label_id, label_name=label_name, labeled=bool(labeled)
    )
    with transaction.atomic():
        row = _chat(device, jid)
        label, created = Label.objects.get_or_create(
            device=device,
            label_id=label_id,
            defaults={"organization_id": device.organization_id, "name": label_name},
        )
        if not created and label_name and label.name != label_name:
            Label.objects.filter(pk=label.pk).update(name=label_name)
            label.name = label_name
        if labeled:
            row.labels.add(label)
        else:
            row.labels.remove(label)
        _audit(
            organization,
            "chat.label" if labeled else "chat.unlabel",
            row,
            actor=actor,
            api_key=api_key,
            label_id=label_id,
        )
    return label
