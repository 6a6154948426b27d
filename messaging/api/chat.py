"""GET /chats and GET /chat/{chat_jid}/messages: the device's stored history (no WhatsApp round trip); and
POST /chat/{chat_jid}/pin|archive|disappearing|label: a chat's state, on WhatsApp and here."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from ninja import Path, Query, Router, Schema
from pydantic import Field

from messaging.api.common import AUTH, ApiError, Envelope, acting, jid, ok
from messaging.events import message_payload, rfc3339
from messaging.models import Chat
from messaging.services import chats as chat_services
from messaging.whatsapp import protocol

router = Router(tags=["chat"], auth=AUTH)


class Page(Schema):
    limit: int = Field(25, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)
    search: str = Field("", max_length=200)


class ChatsPage(Page):
    archived: bool | None = Field(None, description="Only archived chats (true) or only the others (false).")
    has_media: bool = Field(False, description="Only chats with at least one media message.")


class MessagesPage(Page):
    start_time: datetime | None = Field(None, description="Only messages at or after this time (RFC 3339).")
    end_time: datetime | None = Field(None, description="Only messages at or before this time (RFC 3339).")
    media_only: bool = Field(False, description="Only media messages.")
    is_from_me: bool | None = Field(None, description="Only ours (true) or only theirs (false).")


MEDIA_KINDS = sorted(str(kind) for kind in protocol.MEDIA_KINDS)


def _chat_row(chat: Chat) -> dict:
    return {
        "jid": chat.jid,
        "name": chat.name,
        "is_group": chat.is_group,
        "unread_count": chat.unread_count,
        "last_message_at": rfc3339(chat.last_message_at),
        "last_message": chat.last_message_preview,
        "pinned": chat.pinned,
        "archived": chat.archived,
        "ephemeral_expiration": chat.disappearing_seconds,
        "labels": [{"label_id": label.label_id, "name": label.name} for label in chat.labels.all()],
    }


def _page(total: int, page: Page, data: list) -> dict:
    return {"data": data, "pagination": {"limit": page.limit, "offset": page.offset, "total": total}}


@router.get("/chats", response=Envelope, summary="The device's chats, most recent first")
def chats(request, page: Query[ChatsPage]):
    ctx = acting(request)
    rows = Chat.objects.filter(device=ctx.device).prefetch_related("labels")
    if page.archived is not None:
        rows = rows.filter(archived=page.archived)
    if page.has_media:
        rows = rows.filter(messages__kind__in=MEDIA_KINDS).distinct()
    if page.search.strip():
        term = page.search.strip()
        rows = rows.filter(Q(name__icontains=term) | Q(jid__icontains=term))
    total = rows.count()
    rows = rows.order_by("-last_message_at", "-id")[page.offset : page.offset + page.limit]
    return ok(_page(total, page, [_chat_row(c) for c in rows]))


@router.get("/chat/{chat_jid}/messages", response=Envelope, summary="Messages of one chat, newest first")
def chat_messages(request, page: Query[MessagesPage], chat_jid: str = Path(..., max_length=200)):
    ctx = acting(request)
    chat = Chat.objects.filter(device=ctx.device, jid=jid(chat_jid, "chat_jid")).first()
    if chat is None:
        raise ApiError(404, "NOT_FOUND", "chat_jid: no such chat on this device.", field="chat_jid")
    rows = chat.messages.filter(deleted_for_me_at__isnull=True)
    if page.start_time is not None:
        rows = rows.filter(timestamp__gte=page.start_time)
    if page.end_time is not None:
        rows = rows.filter(timestamp__lte=page.end_time)
    if page.media_only:
        rows = rows.filter(kind__in=MEDIA_KINDS)
    if page.is_from_me is not None:
        rows = rows.filter(from_me=page.is_from_me)
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


ChatJid = Path(..., max_length=200, examples=["905551112233@s.whatsapp.net"])


def _state(request, service, chat_jid: str, done: str, **kwargs) -> dict:
    """Run one chat-state service for the chosen device; answer the peer's shape (status, chat_jid, the value)."""
    ctx = acting(request, write=True)
    target = jid(chat_jid, "chat_jid")
    request.api_field_names = {"chat": "chat_jid", "seconds": "timer_seconds"}
    service(chat=target, **kwargs, **ctx.service_kwargs())
    return {"status": "success", "message": done, "chat_jid": target}


class PinIn(Schema):
    pinned: bool = Field(description="true pins the chat, false unpins it.")


@router.post("/chat/{chat_jid}/pin", response=Envelope, summary="Pin or unpin a chat")
def pin(request, payload: PinIn, chat_jid: str = ChatJid):
    done = "Chat pinned." if payload.pinned else "Chat unpinned."
    row = _state(request, chat_services.set_chat_pinned, chat_jid, done, pinned=payload.pinned)
    return ok({**row, "pinned": payload.pinned}, done)


class ArchiveIn(Schema):
    archived: bool = Field(description="true archives the chat, false brings it back.")


@router.post("/chat/{chat_jid}/archive", response=Envelope, summary="Archive or unarchive a chat")
def archive(request, payload: ArchiveIn, chat_jid: str = ChatJid):
    done = "Chat archived." if payload.archived else "Chat unarchived."
    row = _state(request, chat_services.set_chat_archived, chat_jid, done, archived=payload.archived)
    return ok({**row, "archived": payload.archived}, done)


class DisappearingIn(Schema):
    timer_seconds: int = Field(
        ge=0, description="0 (off), 86400 (24 hours), 604800 (7 days) or 7776000 (90 days)."
    )


@router.post(
    "/chat/{chat_jid}/disappearing", response=Envelope, summary="Set the chat's disappearing-messages timer"
)
def disappearing(request, payload: DisappearingIn, chat_jid: str = ChatJid):
    done = "Disappearing messages turned off." if not payload.timer_seconds else "Disappearing messages set."
    row = _state(request, chat_services.set_chat_disappearing, chat_jid, done, seconds=payload.timer_seconds)
    return ok({**row, "timer_seconds": payload.timer_seconds}, done)


class LabelIn(Schema):
    label_id: str = Field(max_length=64, description="WhatsApp's ID of the label.")
    label_name: str = Field("", max_length=100, description="Its name (makes or renames the label).")
    labeled: bool = Field(True, description="true puts the label on the chat, false takes it off.")


@router.post("/chat/{chat_jid}/label", response=Envelope, summary="Put a label on a chat (or take it off)")
def label(request, payload: LabelIn, chat_jid: str = ChatJid):
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
