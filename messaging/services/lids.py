"""Phone numbers behind WhatsApp's hidden user IDs (`…@lid`): each linked number's LID ↔ phone map, filled from
every event that carries both, and the merge of a person's chat under their LID into the one under their number.

WhatsApp names more and more people by a LID only. Until it tells a device which number a LID stands for, the
chat, its messages and their payloads carry the LID (shown as "Unknown number (LID)", never as a made-up
number). Once it does (a later message with both addresses, neonize's store, a `LidMappingEvent`), `learn`
stores the pair and moves the LID chat's messages into the number's chat, in the transaction of the event that
told it, the device row locked by `events.persist`: no other received event of the device is stored meanwhile.

The map is the device's: a pair one number learnt is never used for another number, nor another organization.
"""

from __future__ import annotations

import logging

from django.db import transaction

from messaging.models import Chat, LidMapping, Message
from messaging.models.chat import BY_LID
from messaging.whatsapp import protocol

logger = logging.getLogger(__name__)

# The live event of a merge (not a webhook event): the inbox drops the LID chat's row and shows the number's.
CHAT_MERGED = "chat.merged"


def _bare(jid: str) -> str:
    """`user@server` without a device part (`123:4@lid` names the same person as `123@lid`)."""
    user, _, server = (jid or "").partition("@")
    return f"{user.split(':', 1)[0]}@{server}" if server else ""


def _pair(lid: str, phone: str) -> tuple[str, str] | None:
    lid, phone = _bare(lid), _bare(phone)
    if not protocol.is_lid(lid) or not phone.endswith("@" + protocol.USER_SERVER):
        return None
    if not protocol.jid_user(lid).isdigit() or not protocol.jid_user(phone).isdigit():
        return None
    return lid, phone


# ------------------------------------------------------------------------------------------ reads


def phone_for(device, jid: str) -> str:
    """The phone-number JID a LID stands for on `device`, when known; any other JID (or an unknown LID) as is."""
    if not protocol.is_lid(jid or ""):
        return jid
    found = (
        LidMapping.objects.filter(device_id=device.pk, lid=_bare(jid)).values_list("phone", flat=True).first()
    )
    return found or jid


def lid_for(device, jid: str) -> str:
    """The LID a phone-number JID is known by on `device` ("" when none is known)."""
    if not (jid or "").endswith("@" + protocol.USER_SERVER):
        return ""
    return (
        LidMapping.objects.filter(device_id=device.pk, phone=_bare(jid))
        .order_by("-updated_at")
        .values_list("lid", flat=True)
        .first()
        or ""
    )


# ------------------------------------------------------------------------------------------ writes


def note_message(device, msg: protocol.IncomingMessage) -> list:
    """Before a received message is stored (in `events.persist`'s transaction): learn the pairs it carries, and
    address it by phone number wherever the map knows one. Returns the outcomes of the merges that caused."""
    outcomes = []
    for lid, phone in pairs_in(msg):
        outcomes += learn(device, lid=lid, phone=phone)
    if protocol.is_lid(msg.sender):
        msg.sender_lid = msg.sender_lid or _bare(msg.sender)
        msg.sender = phone_for(device, msg.sender_lid)
    if protocol.is_lid(msg.chat):
        msg.chat_lid = msg.chat_lid or _bare(msg.chat)
        msg.chat = phone_for(device, msg.chat_lid)
    return outcomes


def pairs_in(msg: protocol.IncomingMessage) -> list[tuple[str, str]]:
    """The (LID, phone number) pairs a message tells: its sender's, and its chat's when that names someone else."""
    pairs = []
    if msg.sender_lid and not protocol.is_lid(msg.sender):
        pairs.append((msg.sender_lid, msg.sender))
    told_by_chat = (msg.chat_lid, msg.chat) != (msg.sender_lid, msg.sender)  # (a 1:1 chat names them twice)
    if told_by_chat and msg.chat_lid and not protocol.is_lid(msg.chat) and not protocol.is_group(msg.chat):
        pairs.append((msg.chat_lid, msg.chat))
    return pairs


def learn_from_history(device, messages) -> list:
    """The pairs that history messages tell, for LIDs the device has no number for yet (sync; the runtime's DB
    threads). Each new pair is learnt in a transaction that locks the device row, as a live event's is; a
    known LID keeps its number, since history is older than what the live events said. The merge outcomes."""
    from messaging.models import Device

    told: dict[str, str] = {}
    for msg in messages:
        for lid, phone in pairs_in(msg):
            if (pair := _pair(lid, phone)) is not None:
                told[pair[0]] = pair[1]  # (oldest first: the newest pair of a LID wins)
    if not told:
        return []
    known = set(
        LidMapping.objects.filter(device_id=device.pk, lid__in=list(told)).values_list("lid", flat=True)
    )
    outcomes = []
    for lid, phone in told.items():
        if lid in known:
            continue
        with transaction.atomic():
            Device.objects.select_for_update().filter(pk=device.pk).first()
            outcomes += learn(device, lid=lid, phone=phone)
    return outcomes


def learn(device, *, lid: str, phone: str) -> list:
    """Store that `lid` is `phone` on `device` and merge what was kept under the LID; the outcomes to publish.

    Nothing happens for a pair already known (the common case: one indexed read). Call it inside the
    transaction that locked the device row (`events.persist`)."""
    pair = _pair(lid, phone)
    if pair is None:
        return []
    lid, phone = pair
    known = LidMapping.objects.filter(device_id=device.pk, lid=lid).first()
    if known is not None and known.phone == phone:
        return []
    if known is None:
        LidMapping.objects.create(
            organization_id=device.organization_id, device_id=device.pk, lid=lid, phone=phone
        )
    else:  # the person changed numbers: WhatsApp keeps their LID
        known.phone = phone
        known.save(update_fields=["phone", "updated_at"])
    return merge_chats(device, lid=lid, phone=phone)


def merge_chats(device, *, lid: str, phone: str) -> list:
    """Make the person's LID chat part of their number's: its messages move (unread count, last message and its
    time kept right), the LID chat goes, and messages they wrote under the LID (in groups too) name the number.

    One transaction; the two chats are locked first (in id order), so a send being stored into the LID chat
    either finishes first (and is moved with the rest) or waits and then finds the number's chat
    (`outbox.queue_message` looks again). Returns the live outcome of the change ([] when nothing changed)."""
    from messaging.events import Outcome

    with transaction.atomic():
        chats = {
            c.jid: c
            for c in Chat.objects.select_for_update()
            .filter(device_id=device.pk, jid__in=[lid, phone])
            .order_by("id")
        }
        lid_chat, phone_chat = chats.get(lid), chats.get(phone)
        # Whatever they wrote under the LID (a group's messages too) names them by number from now on.
        Message.objects.filter(BY_LID, device_id=device.pk, sender_jid=lid).update(
            sender_jid=phone, sender_lid=lid
        )
        removed_pk = None
        if lid_chat is None and phone_chat is None:
            return []
        if lid_chat is None:
            if phone_chat.lid == lid:
                return []
            phone_chat.lid = lid
            phone_chat.save(update_fields=["lid"])
            chat = phone_chat
        elif phone_chat is None:  # only the LID chat: it becomes the number's
            lid_chat.jid, lid_chat.lid = phone, lid
            lid_chat.save(update_fields=["jid", "lid"])
            chat = lid_chat
        else:
            chat = _fold(lid_chat, into=phone_chat, lid=lid)
            removed_pk = lid_chat.pk
            lid_chat.delete()
        if lid_chat is not None:  # their reactions in what was their LID chat, by number too
            for message in Message.objects.filter(chat_id=chat.pk, reactions__has_key=lid).only("reactions"):
                message.reactions[phone] = message.reactions.pop(lid)
                message.save(update_fields=["reactions"])
    logger.info("device %s: %s is %s; chat %s merged into %s", device.pk, lid, phone, removed_pk, chat.pk)
    payload = {"chat_id": chat.jid, "chat_lid": lid, "merged_chat_id": lid}
    extra = {"chat_pk": chat.pk, "removed_chat_pk": removed_pk}
    return [Outcome(CHAT_MERGED, device.organization_id, device.pk, payload, extra, webhook=False)]


def _fold(lid_chat: Chat, *, into: Chat, lid: str) -> Chat:
    """Move `lid_chat`'s messages and state into `into` (both locked); returns `into`, saved."""
    chat = into
    Message.objects.filter(chat_id=lid_chat.pk).update(chat_id=chat.pk)
    chat.unread_count += lid_chat.unread_count
    if lid_chat.last_message_at is not None and (
        chat.last_message_at is None or lid_chat.last_message_at > chat.last_message_at
    ):
        chat.last_message_at = lid_chat.last_message_at
        chat.last_message_preview = lid_chat.last_message_preview
    chat.lid = lid
    chat.name = chat.name or lid_chat.name
    chat.pinned = chat.pinned or lid_chat.pinned
    chat.archived = chat.archived and lid_chat.archived  # news under either shows it again
    chat.disappearing_seconds = chat.disappearing_seconds or lid_chat.disappearing_seconds
    chat.created_at = min(chat.created_at, lid_chat.created_at)
    chat.save(
        update_fields=[
            "unread_count",
            "last_message_at",
            "last_message_preview",
            "lid",
            "name",
            "pinned",
            "archived",
            "disappearing_seconds",
            "created_at",
        ]
    )
    labels = list(lid_chat.labels.all())
    if labels:
        chat.labels.add(*labels)
    return chat
