"""Reads that take more than one query, shared by the REST API, the MCP tools and the dashboard (no WhatsApp trip).

A device's stored chats and messages (API and MCP shapes), and the names of the people and chats a page shows,
fetched in bulk (one query per page, however many rows), so templates never look a name up one by one."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import prefetch_related_objects

from messaging import history
from messaging.events import message_payload, rfc3339
from messaging.models import Chat, Message


def chat_row(chat: Chat) -> dict:
    return {
        "jid": chat.jid,
        # The person's number (digits) and hidden user ID when known; an unresolved LID chat has no number.
        "phone": chat.jid.split("@", 1)[0] if chat.jid.endswith("@s.whatsapp.net") else "",
        "chat_lid": chat.lid,
        "name": chat.name,
        "is_group": chat.is_group,
        "unread_count": chat.unread_count,
        "last_message_at": rfc3339(chat.last_message_at),
        "last_message": chat.last_message_preview,
        "pinned": chat.pinned,
        "archived": chat.archived,
        "ephemeral_expiration": chat.disappearing_seconds,
        "labels": [{"label_id": label.label_id, "name": label.name} for label in chat.labels.all()],
        "assigned_to": chat.assigned_to.email if chat.assigned_to_id else None,  # our extension
    }


def message_row(message: Message) -> dict:
    """A stored message as the API shows it: the webhook payload plus what happened to it since."""
    row = message_payload(message)
    row.update(
        # Deleted for everyone: no reactions or star left on it (rows stored before they were cleared too).
        reactions={} if message.revoked_at else message.reactions or {},
        starred=message.starred and not message.revoked_at,
        is_forwarded=message.is_forwarded,
        edited_at=rfc3339(message.edited_at),
        revoked=message.revoked_at is not None,
    )
    return row


def page(total: int, limit: int, offset: int, data: list) -> dict:
    return {"data": data, "pagination": {"limit": limit, "offset": offset, "total": total}}


def chat_page(
    device,
    *,
    search: str = "",
    archived: bool | None = None,
    has_media: bool = False,
    limit: int = 25,
    offset: int = 0,
) -> dict:
    """The device's chats, most recent first, filtered (see `history.device_chats`), with their labels."""
    rows, total = history.device_chats(
        device, search=search, archived=archived, has_media=has_media, offset=offset, limit=limit
    )
    prefetch_related_objects(rows, "labels", "assigned_to")
    return page(total, limit, offset, [chat_row(c) for c in rows])


def chat_of(device, jid: str) -> Chat | None:
    from messaging.services.lids import phone_for

    # A LID whose number is known names the number's chat (its LID chat was merged into it).
    return Chat.objects.filter(device=device, jid=phone_for(device, jid)).first()


def message_page(
    chat: Chat, filters: history.MessageFilter | None = None, *, limit: int = 25, offset: int = 0
) -> dict:
    """One chat's messages, newest first (those deleted for me left out), filtered (see `history`)."""
    found, total = history.chat_messages(chat, filters or history.MessageFilter(), offset=offset, limit=limit)
    return {**page(total, limit, offset, [message_row(m) for m in found]), "chat": chat_row(chat)}


def search_messages(device, term: str, *, limit: int = 25, offset: int = 0) -> dict:
    """Messages of every chat of the device that match `term` (see `history.search_messages`), newest first."""
    rows = history.search_messages(Message.objects.filter(history.VISIBLE, device=device), term)
    found, total = history.offset_page(rows, ("-timestamp", "-id"), offset=offset, limit=limit)
    chats = Chat.objects.in_bulk({m.chat_id for m in found})
    for message in found:
        message.chat = chats[message.chat_id]
    return page(total, limit, offset, [message_row(m) for m in found])


# ------------------------------------------------------------------------------------------ names (dashboard)


def names_for(organization, jids: Iterable[str], *, device=None) -> dict[str, str]:
    """{jid: best known name} for the JIDs given: the address-book name, else the push or business name of a
    contact, else a chat's name (a group's subject, a peer's push name). JIDs with no name are left out."""
    from messaging.models import Chat, Contact

    wanted = {j for j in jids if j}
    if not wanted:
        return {}
    names: dict[str, str] = {}
    chats = Chat.objects.filter(organization=organization, jid__in=wanted).exclude(name="")
    contacts = Contact.objects.filter(organization=organization, jid__in=wanted)
    if device is not None:
        chats = chats.filter(device=device)
        contacts = contacts.filter(device=device)
    for jid, name in chats.values_list("jid", "name"):
        names.setdefault(jid, name)
    # Contacts last, and winning: the name the team saved beats the name a peer gave themselves.
    for jid, name, push_name, business_name in contacts.values_list(
        "jid", "name", "push_name", "business_name"
    ):
        best = name or push_name or business_name
        if best and (name or jid not in names):
            names[jid] = best
    return names


def message_names(device, messages: Iterable) -> dict[str, str]:
    """{jid: name} of the people a page of messages shows: senders in a group, who reacted, who voted on a poll
    (one lookup for the whole page, see `names_for`; none when nobody is to be named)."""
    jids: set[str] = set()
    for message in messages:
        # A sender is named by the page only in a group, when the message carries no name of its own.
        if not message.from_me and not message.sender_name and message.sender_jid != message.chat.jid:
            jids.add(message.sender_jid)
        jids.update(message.reactions or {})
        jids.update((message.payload or {}).get("poll_votes") or {})
    return names_for(device.organization_id, jids, device=device) if jids else {}


def name_chats(device, chats: list) -> list:
    """Put `known_name` on chats with no name of their own, from the number's contacts (one query)."""
    nameless = {c.jid for c in chats if not c.name}
    if nameless:
        found = {}
        for jid, name, push_name, business_name in device.contacts.filter(jid__in=nameless).values_list(
            "jid", "name", "push_name", "business_name"
        ):
            found[jid] = name or push_name or business_name
        for chat in chats:
            chat.known_name = found.get(chat.jid, "")
    return chats


RECIPIENTS_LIMIT = 500  # the picker's choices: the most recent chats, then other contacts; typing still works


def recipients(device) -> list[tuple[str, str]]:
    """Choices for a "to" field, as (what to send to, how a person knows it): recent chats first (groups by
    their subject), then the number's other contacts; two queries whatever their number."""
    from django.db.models.functions import Coalesce

    from messaging.templatetags.dashboard import jid_name, phone

    chats = list(
        device.chats.annotate(activity=Coalesce("last_message_at", "created_at"))
        .order_by("-activity", "-id")
        .only("jid", "name", "is_group")[:RECIPIENTS_LIMIT]
    )
    names = {c.jid: c.name for c in chats if c.name}
    jids = [c.jid for c in chats]
    seen = set(jids)
    for jid, name, push_name, business_name in device.contacts.order_by(
        "name", "push_name", "jid"
    ).values_list("jid", "name", "push_name", "business_name")[:RECIPIENTS_LIMIT]:
        best = name or push_name or business_name
        if best:
            names[jid] = best
        if jid not in seen:
            seen.add(jid)
            jids.append(jid)
    choices = []
    for jid in jids[:RECIPIENTS_LIMIT]:
        number = phone(jid)
        value = jid.split("@", 1)[0] if number else jid
        name = names.get(jid, "")
        label = f"{name} · {number}" if name and number else jid_name(jid, names)
        choices.append((value, label))
    return choices
