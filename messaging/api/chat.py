"""GET /chats and GET /chat/{chat_jid}/messages: the device's stored history (no WhatsApp round trip)."""

from __future__ import annotations

from ninja import Path, Query, Router, Schema
from pydantic import Field

from messaging import selectors
from messaging.api.common import AUTH, ApiError, Envelope, acting, ok
from messaging.api.fields import Jid

router = Router(tags=["chat"], auth=AUTH)


class Page(Schema):
    limit: int = Field(25, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)
    search: str = Field("", max_length=200)


@router.get("/chats", response=Envelope, summary="The device's chats, most recent first")
def chats(request, page: Query[Page]):
    ctx = acting(request)
    return ok(selectors.chat_page(ctx.device, search=page.search, limit=page.limit, offset=page.offset))


@router.get("/chat/{chat_jid}/messages", response=Envelope, summary="Messages of one chat, newest first")
def chat_messages(request, page: Query[Page], chat_jid: Path[Jid]):
    ctx = acting(request)
    chat = selectors.chat_of(ctx.device, chat_jid)
    if chat is None:
        raise ApiError(404, "NOT_FOUND", "chat_jid: no such chat on this device.", field="chat_jid")
    return ok(selectors.message_page(chat, search=page.search, limit=page.limit, offset=page.offset))
