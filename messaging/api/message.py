"""POST /message/{message_id}/*: act on a message (revoke, delete for me, react, edit, read, star), and download media."""

from __future__ import annotations

from django.http import HttpResponse
from ninja import Path, Router, Schema
from pydantic import Field

from messaging.api.common import AUTH, ApiError, Envelope, acting, field_error, ok, require_linked
from messaging.api.fields import Emoji, Jid, MessageId, Text
from messaging.models import Message, MessageStatus
from messaging.services import downloads, messages

router = Router(tags=["message"], auth=AUTH)


class ChatIn(Schema):
    phone: Jid = Field(description="The chat the message is in (a JID or phone digits).")


class ReactionIn(ChatIn):
    emoji: Emoji = Field(description="One emoji; empty removes the reaction.", examples=["👍"])


class UpdateIn(ChatIn):
    message: Text


def _act(request, service, message_id: str, chat: str, done: str, **kwargs) -> dict:
    """Run one message service for the chosen device and answer what was done."""
    ctx = acting(request, write=True)
    request.api_field_names = {"chat": "phone", "text": "message"}
    service(chat=chat, message_id=message_id, **kwargs, **ctx.service_kwargs())
    extra = {"emoji": kwargs["emoji"]} if "emoji" in kwargs else {}
    if "text" in kwargs:
        extra["message"] = kwargs["text"]
    return ok(
        {"message_id": message_id, "phone": chat, "status": done, **extra}, f"Message {message_id} {done}."
    )


@router.post("/message/{message_id}/revoke", response=Envelope, summary="Delete a message for everyone")
def revoke(request, payload: ChatIn, message_id: Path[MessageId]):
    return _act(request, messages.revoke_message, message_id, payload.phone, "revoked")


@router.post("/message/{message_id}/delete", response=Envelope, summary="Delete a message for me only")
def delete_for_me(request, payload: ChatIn, message_id: Path[MessageId]):
    return _act(request, messages.delete_message_for_me, message_id, payload.phone, "deleted")


@router.post("/message/{message_id}/reaction", response=Envelope, summary="React to a message")
def reaction(request, payload: ReactionIn, message_id: Path[MessageId]):
    return _act(request, messages.react_message, message_id, payload.phone, "reacted", emoji=payload.emoji)


@router.post(
    "/message/{message_id}/update", response=Envelope, summary="Edit a message sent from this number"
)
def update(request, payload: UpdateIn, message_id: Path[MessageId]):
    return _act(request, messages.edit_message, message_id, payload.phone, "edited", text=payload.message)


@router.post("/message/{message_id}/read", response=Envelope, summary="Mark a message read")
def read(request, payload: ChatIn, message_id: Path[MessageId]):
    return _act(request, messages.mark_read, message_id, payload.phone, "read")


@router.post("/message/{message_id}/star", response=Envelope, summary="Star a message")
def star(request, payload: ChatIn, message_id: Path[MessageId]):
    return _act(request, messages.star_message, message_id, payload.phone, "starred", starred=True)


@router.post("/message/{message_id}/unstar", response=Envelope, summary="Remove a message's star")
def unstar(request, payload: ChatIn, message_id: Path[MessageId]):
    return _act(request, messages.star_message, message_id, payload.phone, "unstarred", starred=False)


class ForwardIn(Schema):
    phone: Jid = Field(description="Who gets the copy (a JID or phone digits).")


@router.post(
    "/message/{message_id}/forward",
    response=Envelope,
    summary="Forward a stored message (any chat of the device) to phone; answers message_id and status",
)
def forward(request, payload: ForwardIn, message_id: Path[MessageId]):
    ctx = acting(request, write=True)
    require_linked(ctx.device)
    request.api_field_names = {"to": "phone", "media": "message_id"}
    sent = messages.forward_message(message_id=message_id, to=payload.phone, **ctx.service_kwargs())
    if sent.status == MessageStatus.FAILED:
        raise ApiError(
            422,
            "SEND_FAILED",
            f"WhatsApp refused the message: {sent.error or 'no reason given'}",
            results={"message_id": sent.wa_id, "status": "failed"},
        )
    queued = sent.status in (MessageStatus.QUEUED, MessageStatus.SENDING)
    return ok(
        {"message_id": sent.wa_id, "status": "queued" if queued else "sent"},
        f"Message {message_id} forwarded" + (" (queued: the device is not connected)." if queued else "."),
    )


@router.get(
    "/message/{message_id}/download",
    summary="Download a message's media (the file itself)",
    openapi_extra={
        "responses": {
            200: {
                "description": "The file",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def download(request, message_id: Path[MessageId], phone: Jid = None) -> HttpResponse:
    ctx = acting(request)
    found = Message.objects.select_related("chat").filter(device=ctx.device, wa_id=message_id)
    if phone:
        found = found.filter(chat__jid=phone)
    message = found.first()
    if message is None:
        raise ApiError(
            404, "NOT_FOUND", f"message_id: no message {message_id} on this device.", field="message_id"
        )
    try:
        return downloads.download(ctx.device, message)
    except downloads.NoMedia as exc:
        raise field_error("message_id", str(exc), status=404, code="NOT_FOUND") from None
