"""GET /chats and GET /chat/{chat_jid}/messages: the device's stored history (no WhatsApp round trip)."""

from __future__ import annotations

from django.db.models import Q
from ninja import Path, Query, Router, Schema
from pydantic import Field

from messaging.api.common import AUTH, ApiError, Envelope, acting, ok
from messaging.api.fields import Jid
from messaging.events import message_payload, rfc3339
from messaging.models import Chat

router = Router(tags=["chat"], auth=AUTH)


class Page(Schema):
    limit: int = Field(25, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)
    search: str = Field("", max_length=200)


def _chat_row(chat: Chat) -> dict:
    return {
        "jid": chat.jid,
        "name": chat.name,
        "is_group": chat.is_group,
        "unread_count": chat.unread_count,
        "last_message_at": rfc3339(chat.last_message_at),
        "last_message": chat.last_message_preview,
    }


def _page(total: int, page: Page, data: list) -> dict:
    return {"data": data, "pagination": {"limit": page.limit, "offset": page.offset, "total": total}}


@router.get("/chats", response=Envelope, summary="The device's chats, most recent first")
def chats(request, page: Query[Page]):
    ctx = acting(request)
    rows = Chat.objects.filter(device=ctx.device)
    if page.search.strip():
        term = page.search.strip()
        rows = rows.filter(Q(name__icontains=term) | Q(jid__icontains=term))
    total = rows.count()
    rows = rows.order_by("-last_message_at", "-id")[page.offset : page.offset + page.limit]
    return ok(_page(total, page, [_chat_row(c) for c in rows]))


@router.get("/chat/{chat_jid}/messages", response=Envelope, summary="Messages of one chat, newest first")
def chat_messages(request, page: Query[Page], chat_jid: Path[Jid]):
    ctx = acting(request)
    chat = Chat.objects.filter(device=ctx.device, jid=chat_jid).first()
    if chat is None:
        raise ApiError(404, "NOT_FOUND", "chat_jid: no such chat on this device.", field="chat_jid")
    rows = chat.messages.filter(deleted_for_me_at__isnull=True)
    if page.search.strip():
        term = page.search.strip()
        rows = rows.filter(Q(text__icontains=term) | Q(caption__icontains=term))
    total = rows.count()
    found = rows.order_by("-timestamp", "-id")[page.offset : page.offset + page.limit]
    data = []
    for message in found:
        message.chat = chat
        row = message_payload(message)
        row.update(
            reactions=message.reactions or {},
            starred=message.starred,
            is_forwarded=message.is_forwarded,
            edited_at=rfc3339(message.edited_at),
            revoked=message.revoked_at is not None,
        )
        data.append(row)
    return ok({**_page(total, page, data), "chat": _chat_row(chat)})
