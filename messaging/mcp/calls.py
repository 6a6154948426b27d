"""What every MCP tool shares: the caller's key, the chosen device, and running the (sync) service safely."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import close_old_connections
from django.http import Http404
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from accounts.models import ApiKey, ApiKeyAccess
from messaging.api.common import ApiError, choose_device
from messaging.whatsapp import protocol

# The scope key under which the ASGI app leaves the API key it checked (see messaging.mcp.server).
SCOPE_KEY = "waportal.api_key"

DeviceId = Annotated[
    int | Annotated[str, Field(max_length=40)] | None,
    Field(
        description="The number to act with: its device ID (see list_devices) or its phone number. "
        "May be left out when the organization has only one.",
    ),
]


@dataclass(slots=True)
class Tool:
    fn: Callable[..., Any]
    write: bool


# Every tool, in the order they are listed; `write` ones are left out for read-only keys.
TOOLS: list[Tool] = []


def tool(*, write: bool):
    def register(fn):
        TOOLS.append(Tool(fn, write))
        return fn

    return register


def write_tool_names() -> set[str]:
    return {t.fn.__name__ for t in TOOLS if t.write}


def api_key_of(ctx: Context) -> ApiKey:
    request = ctx.request_context.request
    key = request.scope.get(SCOPE_KEY) if request is not None else None
    if key is None:  # the ASGI app answers 401 before any tool runs; this is a second lock
        raise ToolError("A valid API key is required.")
    return key


def _validation_message(exc: DjangoValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(str(m) for m in msgs)}" for field, msgs in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def _in_request(fn, *args, **kwargs):
    # A tool call is a request of its own: Django's handler would close stale connections around it.
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run(ctx: Context, fn: Callable[..., Any], /, *args, write: bool = False, **kwargs) -> Any:
    """Run `fn(key, *args, **kwargs)` the way Django runs a sync view; every refusal becomes a ToolError whose
    message names the field (and a read-only key may not run a write)."""
    key = api_key_of(ctx)
    if write and key.access != ApiKeyAccess.FULL:
        raise ToolError("This API key is read-only: it cannot send or change anything.")
    try:
        return await sync_to_async(_in_request, thread_sensitive=True)(fn, key, *args, **kwargs)
    except ApiError as exc:
        raise ToolError(exc.message) from None
    except DjangoValidationError as exc:
        raise ToolError(_validation_message(exc)) from None
    except protocol.WhatsAppError as exc:
        raise ToolError(f"{exc.code}: {exc.message or exc.code}") from None
    except (Http404, ObjectDoesNotExist) as exc:
        raise ToolError(f"not found: {exc}" if str(exc) else "not found.") from None
    except PermissionDenied as exc:
        raise ToolError(str(exc) or "not allowed.") from None


def device(key: ApiKey, device_id: str | None):
    """The key's organization's device named by `device_id` (API rules: another organization's is 'not found')."""
    try:
        return choose_device(key.organization, device_id)
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(404, "NOT_FOUND", "device_id: not found in this organization.") from None
        raise
