"""The MCP tools that only read: numbers, chats, a conversation, a search, groups, "is this number on WhatsApp"."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from messaging import gateway, selectors
from messaging.api.common import ApiError, jid, phone_digits
from messaging.api.devices import device_row
from messaging.api.fields import GroupJid
from messaging.mcp.calls import DeviceId, device, run, tool

Limit = Annotated[int, Field(ge=1, le=200, description="How many to return (newest first).")]
Offset = Annotated[int, Field(ge=0, le=10_000_000, description="How many to skip (for the next page).")]


@tool(write=False)
async def list_devices(ctx: Context) -> dict[str, Any]:
    """The organization's WhatsApp numbers (devices): ID, number, name, whether connected."""

    def read(key):
        return {"devices": [device_row(d) for d in key.organization.devices.select_related("lease")]}

    return await run(ctx, read)


@tool(write=False)
async def list_chats(
    ctx: Context,
    device_id: DeviceId = None,
    search: Annotated[str, Field(max_length=200, description="Part of a chat's name or number.")] = "",
    limit: Limit = 25,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The chats of a number, most recent first, with their last message and unread count."""

    def read(key):
        return selectors.chat_page(device(key, device_id), search=search, limit=limit, offset=offset)

    return await run(ctx, read)


@tool(write=False)
async def read_conversation(
    ctx: Context,
    chat: Annotated[str, Field(max_length=200, description="The chat: a phone number or a WhatsApp ID.")],
    device_id: DeviceId = None,
    limit: Limit = 25,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The messages of one chat, newest first (text, caption, sender, time, status, reactions)."""

    def read(key):
        found = selectors.chat_of(device(key, device_id), jid(chat, "chat"))
        if found is None:
            raise ApiError(404, "NOT_FOUND", "chat: no such chat on this number.")
        return selectors.message_page(found, limit=limit, offset=offset)

    return await run(ctx, read)


@tool(write=False)
async def search_messages(
    ctx: Context,
    query: Annotated[str, Field(min_length=1, max_length=200, description="Words to find in messages.")],
    device_id: DeviceId = None,
    limit: Limit = 25,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Messages of every chat of a number whose text or caption holds `query`, newest first."""

    def read(key):
        if not query.strip():
            raise ApiError(400, "VALIDATION_ERROR", "query: must not be empty.")
        return selectors.search_messages(device(key, device_id), query.strip(), limit=limit, offset=offset)

    return await run(ctx, read)


@tool(write=False)
async def list_groups(ctx: Context, device_id: DeviceId = None) -> dict[str, Any]:
    """The groups a number is in (asks WhatsApp)."""

    def read(key):
        return {"groups": [asdict(g) for g in gateway.call(device(key, device_id), "joined_groups") or []]}

    return await run(ctx, read)


@tool(write=False)
async def group_info(ctx: Context, group_id: GroupJid, device_id: DeviceId = None) -> dict[str, Any]:
    """A group's name, topic, settings and participants (asks WhatsApp)."""

    def read(key):
        return asdict(gateway.call(device(key, device_id), "group_info", jid=group_id))

    return await run(ctx, read)


@tool(write=False)
async def check_number(
    ctx: Context,
    phone: Annotated[str, Field(max_length=40, description="A phone number, with country code.")],
    device_id: DeviceId = None,
) -> dict[str, Any]:
    """Whether a phone number is on WhatsApp, and its WhatsApp ID."""

    def read(key):
        digits = phone_digits(phone)
        found = gateway.call(device(key, device_id), "check_numbers", phones=[digits])
        row = found[0] if found else None
        return {
            "phone": digits,
            "is_on_whatsapp": bool(row and row.is_in),
            "jid": row.jid if row and row.is_in else "",
            "verified_name": row.verified_name if row else "",
        }

    return await run(ctx, read)
