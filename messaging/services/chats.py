"""A chat's state (pinned, archived, disappearing timer, labels, assigned member) and a number's labels:
WhatsApp first, then our rows. The REST API and the dashboard both call these.

Like messages.py: the device is checked against the organization (Http404), WhatsApp is asked through the
gateway outside any transaction (its refusals propagate as protocol.WhatsAppError, NotSupported on a backend
that cannot), then the Chat (made if this is the first we hear of it) and the audit entry are written together.
Once committed, the organization's open pages are told (live, no webhook: webhooks tell what WhatsApp did).
The assigned member is ours alone: no WhatsApp trip.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext as _

from accounts.services import record_audit
from messaging import events, gateway
from messaging.models import Chat, Label
from messaging.services.lids import phone_for
from messaging.services.messages import device_of, normalize_chat
from messaging.whatsapp import protocol

__all__ = [
    "assign_chat",
    "delete_label",
    "next_label_id",
    "save_label",
    "set_chat_archived",
    "set_chat_disappearing",
    "set_chat_label",
    "set_chat_pinned",
]

logger = logging.getLogger(__name__)

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


def _announce(name: str, device, payload: dict, **extra) -> None:
    """Once committed, push `name` live to the organization's open pages (best effort, see events.publish)."""
    outcome = events.Outcome(name, device.organization_id, device.pk, payload, extra, webhook=False)

    def push():
        try:
            gateway.run_sync(lambda: events.publish(outcome), timeout=5)
        except Exception:  # noqa: BLE001 - the pages show it on their next load
            logger.warning("live push of %s for device %s failed", name, device.pk, exc_info=True)

    transaction.on_commit(push)


def _chat_changed(row: Chat) -> None:
    _announce("chat.state", row.device, {"chat_id": row.jid}, chat_pk=row.pk)


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
        _chat_changed(row)
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
        _chat_changed(row)
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
        _chat_changed(row)
    return label


# ------------------------------------------------------------------------------------------ labels of a number


def _label_fields(name, color) -> tuple[str, int]:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError({"name": _("is required.")})
    if len(name) > MAX_LABEL_NAME:
        raise ValidationError({"name": _("is longer than %(n)s characters.") % {"n": MAX_LABEL_NAME}})
    try:
        color = int(color)
    except (TypeError, ValueError):
        color = -1
    if not 0 <= color < len(protocol.LABEL_COLORS):
        raise ValidationError(
            {"color": _("must be one of WhatsApp's %(n)s label colours.") % {"n": len(protocol.LABEL_COLORS)}}
        )
    return name, color


def next_label_id(device) -> str:
    """WhatsApp numbers a number's labels 1, 2, 3...: the next free one."""
    numbers = [int(i) for i in device.labels.values_list("label_id", flat=True) if i.isdigit()]
    return str(max(numbers, default=0) + 1)


def save_label(*, organization, device, name, color, label=None, actor=None, api_key=None) -> Label:
    """Make a label on the number (`label` None) or rename and recolour `label` (a Label or its pk), on
    WhatsApp first. A name the number already uses for another label is refused (field `name`)."""
    device = device_of(organization, device)
    name, color = _label_fields(name, color)
    existing = None
    if label is not None:
        pk = label.pk if isinstance(label, Label) else label
        existing = device.labels.filter(pk=pk).first()
        if existing is None:
            raise Http404("No such label on this number.")
    clash = device.labels.filter(name__iexact=name)
    if existing is not None:
        clash = clash.exclude(pk=existing.pk)
    if clash.exists():
        raise ValidationError({"name": _("another label of this number is called that.")})
    label_id = existing.label_id if existing is not None else next_label_id(device)
    gateway.call(device, "edit_label", label_id=label_id, name=name, color=color, deleted=False)
    with transaction.atomic():
        if existing is None:
            row = Label.objects.create(
                organization_id=device.organization_id,
                device=device,
                label_id=label_id,
                name=name,
                color=color,
            )
        else:
            Label.objects.filter(pk=existing.pk).update(name=name, color=color)
            existing.name, existing.color = name, color
            row = existing
        record_audit(
            organization=organization,
            action="label.create" if existing is None else "label.update",
            actor=actor,
            api_key=api_key,
            obj=row,
            details={"device_id": device.pk, "label_id": label_id, "name": name, "color": color},
        )
        _announce(
            "label.edit", device, {"label_id": label_id, "name": name, "color": color, "deleted": False}
        )
    return row


def delete_label(*, organization, device, label, actor=None, api_key=None) -> None:
    """Delete a label of the number (on WhatsApp first); it goes from every chat that had it."""
    device = device_of(organization, device)
    pk = label.pk if isinstance(label, Label) else label
    row = device.labels.filter(pk=pk).first()
    if row is None:
        raise Http404("No such label on this number.")
    gateway.call(device, "edit_label", label_id=row.label_id, name=row.name, color=row.color, deleted=True)
    with transaction.atomic():
        record_audit(
            organization=organization,
            action="label.delete",
            actor=actor,
            api_key=api_key,
            obj=row,
            details={"device_id": device.pk, "label_id": row.label_id, "name": row.name},
        )
        Label.objects.filter(pk=row.pk).delete()
        _announce("label.edit", device, {"label_id": row.label_id, "name": row.name, "deleted": True})


# ------------------------------------------------------------------------------------------ assigned member


def _member(organization, assignee, *, field: str):
    """The user behind `assignee` (a User, a user pk as an int, or an e-mail address) if a member of the
    organization; None for "" or None (nobody). ValidationError naming `field` otherwise."""
    from accounts.models import User

    if assignee in (None, ""):
        return None
    members = User.objects.filter(memberships__organization=organization)
    if isinstance(assignee, User):
        found = members.filter(pk=assignee.pk).first()
    elif isinstance(assignee, int) and not isinstance(assignee, bool):
        found = members.filter(pk=assignee).first()
    elif isinstance(assignee, str):
        found = members.filter(email__iexact=assignee.strip()).first()
    else:
        found = None
    if found is None:
        raise ValidationError({field: _("is not a member of this organization.")})
    return found


def assign_chat(
    *, organization, device, chat: str, assignee, actor=None, api_key=None, field: str = "assignee"
) -> Chat:
    """Give the chat to a member of the organization to look after (`assignee`: a User, a user pk or an
    e-mail address), or to nobody ("" or None). `field`: the input's name in errors ("email" for the API)."""
    device = device_of(organization, device)
    jid = normalize_chat(chat)
    user = _member(organization, assignee, field=field)
    with transaction.atomic():
        row = _chat(device, jid)
        Chat.objects.filter(pk=row.pk).update(assigned_to=user)
        row.assigned_to = user
        details = {"assignee": user.email} if user is not None else {}
        _audit(
            organization,
            "chat.assign" if user is not None else "chat.unassign",
            row,
            actor=actor,
            api_key=api_key,
            **details,
        )
        _chat_changed(row)
    return row
