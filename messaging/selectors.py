"""Reads of a device's stored chats and messages, shared by the REST API and the MCP tools (no WhatsApp trip)."""

from __future__ import annotations

from messaging import history
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
    """The device's chats, most recent first, filtered by name or JID (see `history.device_chats`)."""
    rows, total = history.device_chats(device, search=search, offset=offset, limit=limit)
    return page(total, limit, offset, [chat_row(c) for c in rows])


def chat_of(device, jid: str) -> Chat | None:
    return Chat.objects.filter(device=device, jid=jid).first()


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
