"""GET /chats and GET /chat/{chat_jid}/messages: the device's stored history (no WhatsApp round trip)."""

from __future__ import annotations

from datetime import UTC, datetime

from ninja import Path, Query, Router, Schema
from pydantic import Field, field_validator

from messaging import history, selectors
from messaging.api.common import AUTH, ApiError, Envelope, acting, field_error, ok
from messaging.api.fields import Jid

router = Router(tags=["chat"], auth=AUTH)


class Page(Schema):
    limit: int = Field(25, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)
    search: str = Field("", max_length=200)


class MessageQuery(Page):
    """The peer's filters: media only, mine or theirs, a time range (RFC 3339, or Unix seconds)."""

    media_only: bool = False
    is_from_me: bool | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get(
    "/chats",
    response=Envelope,
    summary="The device's chats, most recent first",
    description="`pagination.total`: as for GET /chat/{chat_jid}/messages (exact up to 1000 rows past the page).",
)
def chats(request, page: Query[Page]):
    ctx = acting(request)
    return ok(selectors.chat_page(ctx.device, search=page.search, limit=page.limit, offset=page.offset))


HISTORY_NOTES = (
    "`pagination.total` is exact when the history ends within 1000 rows after the page; past that it is a "
    "lower bound (offset + limit + 1000) that grows as you page, so `while offset < total` reaches the end "
    "without the server counting a whole chat on every request. `search` matches messages holding every word "
    "of it (whole words, any case) on PostgreSQL, and the text as typed (any case) on SQLite."
)


@router.get(
    "/chat/{chat_jid}/messages",
    response=Envelope,
    summary="Messages of one chat, newest first",
    description=HISTORY_NOTES,
)
def chat_messages(request, page: Query[MessageQuery], chat_jid: Path[Jid]):
    ctx = acting(request)
    chat = selectors.chat_of(ctx.device, chat_jid)
    if chat is None:
        raise ApiError(404, "NOT_FOUND", "chat_jid: no such chat on this device.", field="chat_jid")
    if page.start_time and page.end_time and page.start_time > page.end_time:
        raise field_error("end_time", "must not be before start_time.")
    filters = history.MessageFilter(
        search=page.search,
        media_only=page.media_only,
        is_from_me=page.is_from_me,
        start_time=page.start_time,
        end_time=page.end_time,
    )
    return ok(selectors.message_page(chat, filters, limit=page.limit, offset=page.offset))
