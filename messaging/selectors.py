"""Reads of a device's stored chats and messages, shared by the REST API and the MCP tools (no WhatsApp trip)."""

from __future__ import annotations

from django.db.models import Q

from messaging.events import message_payload, rfc3339
from messaging.models import Chat, Message


def chat_row(chat: Chat) -> dict:
    return {
        "jid": chat.jid,
        "name": chat.name,
        "is_group": chat.is_group,
        "unread_count": chat.unread_count,
        "last_message_at": rfc3339(chat.last_message_at),
        "last_message": chat.last_message_preview,
    }


def message_row(message: Message) -> dict:
    """A stored message as the API shows it: the webhook payload plus what happened to it since."""
    row = message_payload(message)
    row.update(
        reactions=message.reactions or {},
        starred=message.starred,
        is_forwarded=message.is_forwarded,
        edited_at=rfc3339(message.edited_at),
        revoked=message.revoked_at is not None,
    )
    return row


def page(total: int, limit: int, offset: int, data: list) -> dict:
    return {"data": data, "pagination": {"limit": limit, "offset": offset, "total": total}}


def chat_page(device, *, search: str = "", limit: int = 25, offset: int = 0) -> dict:
    """The device's chats, most recent first, filtered by name or JID."""
    rows = Chat.objects.filter(device=device)
    term = search.strip()
    if term:
        rows = rows.filter(Q(name__icontains=term) | Q(jid__icontains=term))
    total = rows.count()
    rows = rows.order_by("-last_message_at", "-id")[offset : offset + limit]
    return page(total, limit, offset, [chat_row(c) for c in rows])


def chat_of(device, jid: str) -> Chat | None:
    return Chat.objects.filter(device=device, jid=jid).first()


def message_page(chat: Chat, *, search: str = "", limit: int = 25, offset: int = 0) -> dict:
    """One chat's messages, newest first (those deleted for me left out), filtered by text or caption."""
    rows = chat.messages.filter(deleted_for_me_at__isnull=True)
    term = search.strip()
    if term:
        rows = rows.filter(Q(text__icontains=term) | Q(caption__icontains=term))
    total = rows.count()
    found = rows.order_by("-timestamp", "-id")[offset : offset + limit]
    data = []
    for message in found:
        message.chat = chat
        data.append(message_row(message))
    return {**page(total, limit, offset, data), "chat": chat_row(chat)}


def search_messages(device, term: str, *, limit: int = 25, offset: int = 0) -> dict:
    """Messages of every chat of the device whose text or caption holds `term`, newest first."""
    rows = Message.objects.filter(device=device, deleted_for_me_at__isnull=True).filter(
        Q(text__icontains=term) | Q(caption__icontains=term)
    )
    total = rows.count()
    found = rows.select_related("chat").order_by("-timestamp", "-id")[offset : offset + limit]
    return page(total, limit, offset, [message_row(m) for m in found])
