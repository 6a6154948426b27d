"""The MCP tools that send or change: every kind of message (through the outbox) and group management.

Each calls the service the REST endpoint calls (`queue_message`, `groups.services.*`), so an agent's send is
stored first, audited under its API key, and never lost when the number is offline.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from django.core.files.uploadedfile import SimpleUploadedFile
from mcp.server.mcpserver import Context
from pydantic import Field

from groups import services as group_services
from messaging.api.common import ApiError, field_error, media_input, require_linked
from messaging.api.fields import GroupJid, Jid, Participant, PhoneDigits, Text
from messaging.mcp.calls import DeviceId, device, run, tool
from messaging.models import MessageStatus
from messaging.services import media as media_rules
from messaging.services.outbox import queue_message

Phone = Annotated[
    Jid, Field(description="The recipient: a phone number with country code, or a WhatsApp ID.")
]
Participants = Annotated[list[Participant], Field(min_length=1, max_length=1024)]


def _send(key, device_id: str | None, outgoing: dict) -> dict[str, Any]:
    chosen = device(key, device_id)
    require_linked(chosen)
    message = queue_message(
        organization=key.organization, device=chosen, outgoing=outgoing, actor=None, api_key=key
    )
    if message.status == MessageStatus.FAILED:
        raise ApiError(
            422, "SEND_FAILED", f"WhatsApp refused the message: {message.error or 'no reason given'}"
        )
    queued = message.status in (MessageStatus.QUEUED, MessageStatus.SENDING)
    return {"message_id": message.wa_id, "status": "queued" if queued else "sent"}


async def _send_tool(ctx: Context, device_id: str | None, outgoing: dict) -> dict[str, Any]:
    return await run(ctx, _send, device_id, outgoing, write=True)


@tool(write=True)
async def send_text(
    ctx: Context,
    phone: Phone,
    message: Text,
    reply_message_id: Annotated[str | None, Field(max_length=128, description="A message to quote.")] = None,
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Send a text message. Answers its message ID and `sent` (or `queued`: it goes out once the number is back)."""
    outgoing = {"to": phone, "kind": "text", "text": message, "reply_to_id": (reply_message_id or "").strip()}
    return await _send_tool(ctx, device_id, outgoing)


@tool(write=True)
async def send_link(
    ctx: Context,
    phone: Phone,
    link: Annotated[str, Field(max_length=2000, pattern=r"^https?://\S+$", description="An http(s) URL.")],
    caption: Annotated[str, Field(max_length=65536)] = "",
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Send a link with a caption."""
    return await _send_tool(ctx, device_id, {"to": phone, "kind": "link", "text": link, "caption": caption})


@tool(write=True)
async def send_location(
    ctx: Context,
    phone: Phone,
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)],
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)],
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Send a location."""
    outgoing = {"to": phone, "kind": "location", "latitude": latitude, "longitude": longitude}
    return await _send_tool(ctx, device_id, outgoing)


@tool(write=True)
async def send_contact(
    ctx: Context,
    phone: Phone,
    contact_name: Annotated[Text, Field(max_length=200)],
    contact_phone: PhoneDigits,
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Send a contact card."""
    outgoing = {
        "to": phone,
        "kind": "contact",
        "contact_name": contact_name.strip(),
        "contact_phone": contact_phone,
    }
    return await _send_tool(ctx, device_id, outgoing)


@tool(write=True)
async def send_poll(
    ctx: Context,
    phone: Phone,
    question: Annotated[Text, Field(max_length=255)],
    options: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(min_length=2, max_length=12)
    ],
    max_answer: Annotated[int, Field(ge=1, le=12, description="How many options one may choose.")] = 1,
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Send a poll."""
    if max_answer > len(options):
        return await run(ctx, _refuse, "max_answer", "must not be more than the number of options.")
    if len({o.strip() for o in options}) != len(options):
        return await run(ctx, _refuse, "options", "must be different from each other.")
    outgoing = {
        "to": phone,
        "kind": "poll",
        "poll_question": question.strip(),
        "poll_options": [o.strip() for o in options],
        "poll_max_answer": max_answer,
    }
    return await _send_tool(ctx, device_id, outgoing)


def _refuse(key, field: str, problem: str):
    raise field_error(field, problem)


@tool(write=True)
async def send_media(
    ctx: Context,
    phone: Phone,
    kind: Literal["image", "video", "audio", "document", "sticker"],
    url: Annotated[
        str | None, Field(max_length=2000, description="Where to fetch the file (http/https).")
    ] = None,
    data_base64: Annotated[str | None, Field(description="The file itself, base64 (instead of url).")] = None,
    filename: Annotated[str, Field(max_length=200)] = "",
    caption: Annotated[str, Field(max_length=65536)] = "",
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Send an image, video, audio file, document or sticker, given by URL or as base64 (exactly one)."""

    def send(key):
        chosen = device(key, device_id)  # the device first: a wrong one must not make us fetch a URL
        require_linked(chosen)
        upload = None
        if data_base64 is not None:
            limit = media_rules.max_bytes(kind)
            if len(data_base64) > (limit // 3 + 1) * 4 + 4:
                raise field_error("data_base64", f"is larger than {limit} bytes.")
            try:
                raw = base64.b64decode(data_base64, validate=True)
            except (binascii.Error, ValueError):
                raise field_error("data_base64", "is not valid base64.") from None
            upload = SimpleUploadedFile(filename or kind, raw)
        file = media_input(kind=kind, field="data_base64", upload=upload, url=url, url_field="url")
        outgoing = {
            "to": phone,
            "kind": kind,
            "media": file.data,
            "mime_type": file.mime_type,
            "filename": filename or file.filename,
            "caption": caption if kind in ("image", "video", "document") else "",
        }
        return _send(key, str(chosen.pk), outgoing)

    return await run(ctx, send, write=True)


def _group_call(service, *, device_id, **kwargs):
    def call(key):
        chosen = device(key, device_id)
        return service(organization=key.organization, device=chosen, actor=None, api_key=key, **kwargs)

    return call


@tool(write=True)
async def create_group(
    ctx: Context,
    title: Annotated[str, Field(min_length=1, max_length=100)],
    participants: Participants,
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Create a group with these participants; this number is its admin. Answers the group ID."""
    call = _group_call(
        group_services.create_group, name=title, participants=participants, device_id=device_id
    )
    info = await run(ctx, call, write=True)
    return {"group_id": info.jid, "name": info.name}


@tool(write=True)
async def update_group_participants(
    ctx: Context,
    group_id: GroupJid,
    participants: Participants,
    action: Literal["add", "remove", "promote", "demote"],
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Add, remove, promote (make admin) or demote participants of a group; one result per participant."""
    call = _group_call(
        group_services.update_participants,
        group_id=group_id,
        participants=participants,
        action=action,
        device_id=device_id,
    )
    results = await run(ctx, call, write=True)
    return {
        "results": [{"participant": r.participant, "status": r.status, "message": r.message} for r in results]
    }


@tool(write=True)
async def set_group_name(
    ctx: Context,
    group_id: GroupJid,
    name: Annotated[str, Field(min_length=1, max_length=100)],
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Rename a group."""
    call = _group_call(group_services.set_group_name, group_id=group_id, name=name, device_id=device_id)
    return {"group_id": group_id, "name": await run(ctx, call, write=True)}


@tool(write=True)
async def set_group_topic(
    ctx: Context,
    group_id: GroupJid,
    topic: Annotated[str, Field(max_length=2048)],
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Set a group's description ("" clears it)."""
    call = _group_call(group_services.set_group_topic, group_id=group_id, topic=topic, device_id=device_id)
    return {"group_id": group_id, "topic": await run(ctx, call, write=True)}


@tool(write=True)
async def leave_group(ctx: Context, group_id: GroupJid, device_id: DeviceId = None) -> dict[str, Any]:
    """Leave a group."""
    call = _group_call(group_services.leave_group, group_id=group_id, device_id=device_id)
    return {"group_id": await run(ctx, call, write=True), "left": True}
