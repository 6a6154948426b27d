"""GET /chats and GET /chat/{chat_jid}/messages: the device's stored history (no WhatsApp round trip); and
POST /chat/{chat_jid}/pin|archive|disappearing|label: a chat's state, on WhatsApp and here."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from ninja import Path, Query, Router, Schema
from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from messaging import history, selectors
from messaging.api.common import AUTH, ApiError, Envelope, acting, ok
from messaging.api.fields import Jid
from messaging.services import chats as chat_services

router = Router(tags=["chat"], auth=AUTH)


class Page(Schema):
    limit: int = Field(25, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)
    search: str = Field("", max_length=200)


class ChatsPage(Page):
    archived: bool | None = Field(None, description="Only archived chats (true) or only the others (false).")
    has_media: bool = Field(False, description="Only chats with at least one media message.")


# A time as the peer's clients give it: RFC 3339 (2026-01-31T09:30:00Z), or Unix seconds.
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
UNIX_SECONDS = r"^[0-9]{1,12}$"


def _when(value):
    if value is not None and not (re.search(RFC3339, str(value)) or re.search(UNIX_SECONDS, str(value))):
        raise ValueError("is not a time: RFC 3339 (2026-01-31T09:30:00Z) or Unix seconds")
    return value


When = Annotated[
    datetime | None,
    BeforeValidator(_when),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time", "examples": ["2026-01-31T09:30:00Z"]},
                {"type": "string", "pattern": UNIX_SECONDS},
            ]
        }
    ),
]


class MessageQuery(Page):
    """The peer's filters: media only, mine or theirs, a time range (RFC 3339, or Unix seconds)."""

    media_only: bool = False
    is_from_me: bool | None = None
    start_time: When = None
    end_time: When = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """In UTC: PostgreSQL refuses an offset past 15:59 (RFC 3339 allows 23:59), and the time itself is kept."""
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # the year 1 with an offset east of UTC: before any time a message can have
            raise ValueError("is not a time a message can have") from None


@router.get(
    "/chats",
    response=Envelope,
    summary="The device's chats, most recent first",
    description="`pagination.total`: as for GET /chat/{chat_jid}/messages (exact up to 1000 rows past the page).",
)
def chats(request, page: Query[ChatsPage]):
    ctx = acting(request)
    return ok(
        selectors.chat_page(
            ctx.device,
            search=page.search,
            archived=page.archived,
            has_media=page.has_media,
            limit=page.limit,
            offset=page.offset,
        )
    )


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
    filters = history.MessageFilter(
        search=page.search,
        media_only=page.media_only,
        is_from_me=page.is_from_me,
        start_time=page.start_time,
        end_time=page.end_time,
    )
    return ok(selectors.message_page(chat, filters, limit=page.limit, offset=page.offset))


def _state(request, service, chat_jid: str, done: str, **kwargs) -> dict:
    """Run one chat-state service for the chosen device; answer the peer's shape (status, chat_jid, the value)."""
    ctx = acting(request, write=True)
    target = chat_jid  # made a JID by its type (Jid)
    request.api_field_names = {"chat": "chat_jid", "seconds": "timer_seconds"}
    service(chat=target, **kwargs, **ctx.service_kwargs())
    return {"status": "success", "message": done, "chat_jid": target}


class PinIn(Schema):
    pinned: bool = Field(description="true pins the chat, false unpins it.")


@router.post("/chat/{chat_jid}/pin", response=Envelope, summary="Pin or unpin a chat")
def pin(request, payload: PinIn, chat_jid: Path[Jid]):
    done = "Chat pinned." if payload.pinned else "Chat unpinned."
    row = _state(request, chat_services.set_chat_pinned, chat_jid, done, pinned=payload.pinned)
    return ok({**row, "pinned": payload.pinned}, done)


class ArchiveIn(Schema):
    archived: bool = Field(description="true archives the chat, false brings it back.")


@router.post("/chat/{chat_jid}/archive", response=Envelope, summary="Archive or unarchive a chat")
def archive(request, payload: ArchiveIn, chat_jid: Path[Jid]):
    done = "Chat archived." if payload.archived else "Chat unarchived."
    row = _state(request, chat_services.set_chat_archived, chat_jid, done, archived=payload.archived)
    return ok({**row, "archived": payload.archived}, done)


class DisappearingIn(Schema):
    timer_seconds: Literal[0, 86400, 604800, 7776000] = Field(
        description="0 (off), 86400 (24 hours), 604800 (7 days) or 7776000 (90 days)."
    )


@router.post(
    "/chat/{chat_jid}/disappearing", response=Envelope, summary="Set the chat's disappearing-messages timer"
)
def disappearing(request, payload: DisappearingIn, chat_jid: Path[Jid]):
    done = "Disappearing messages turned off." if not payload.timer_seconds else "Disappearing messages set."
    row = _state(request, chat_services.set_chat_disappearing, chat_jid, done, seconds=payload.timer_seconds)
    return ok({**row, "timer_seconds": payload.timer_seconds}, done)


class LabelIn(Schema):
    label_id: str = Field(
        max_length=64, pattern=r"^\S+$", description="WhatsApp's ID of the label (no blanks)."
    )
    label_name: str = Field("", max_length=100, description="Its name (makes or renames the label).")
    labeled: bool = Field(True, description="true puts the label on the chat, false takes it off.")


@router.post("/chat/{chat_jid}/label", response=Envelope, summary="Put a label on a chat (or take it off)")
def label(request, payload: LabelIn, chat_jid: Path[Jid]):
    done = "Label added to the chat." if payload.labeled else "Label removed from the chat."
    row = _state(
        request,
        chat_services.set_chat_label,
        chat_jid,
        done,
        label_id=payload.label_id,
        label_name=payload.label_name,
        labeled=payload.labeled,
    )
    return ok({**row, "label_id": payload.label_id, "labeled": payload.labeled}, done)


class AssignIn(Schema):
    email: str = Field(
        "", max_length=254, description="The e-mail address of a member of the organization; empty unassigns."
    )


@router.post(
    "/chat/{chat_jid}/assign",
    response=Envelope,
    summary="Give a chat to a member of the organization to look after (our extension)",
    description='Shown on the dashboard\'s inbox ("Assigned to me"); WhatsApp knows nothing of it.',
)
def assign(request, payload: AssignIn, chat_jid: Path[Jid]):
    email = payload.email.strip()
    done = "Chat assigned." if email else "Chat unassigned."
    row = _state(request, chat_services.assign_chat, chat_jid, done, assignee=email, field="email")
    return ok({**row, "assigned_to": email.lower() or None}, done)
