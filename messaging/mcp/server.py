"""The ASGI app at /mcp: checks the API key like the REST API, then hands the request to the MCP SDK's
streamable-HTTP transport of the full or the read-only server.

Stateless (every POST carries its key and stands alone, answered as JSON), so any web process can answer any
request: no session to pin to one process. The SDK's session manager needs a running task group, which an app
normally gets from the ASGI lifespan; daphne sends none, so it is started on first use on the serving loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError

from accounts.models import ApiKeyAccess
from messaging.api.common import key_for
from messaging.mcp import read_tools, write_tools  # noqa: F401  (they register the tools)
from messaging.mcp.calls import SCOPE_KEY, TOOLS, _in_request, write_tool_names

INSTRUCTIONS = (
    "WhatsApp for one organization: its numbers (devices), chats, messages and groups. "
    "Name the number with device_id when the organization has several (list_devices). "
    "A send answers `sent`, or `queued` when the number is offline: it goes out once it is back."
)


def invalid_arguments(error: ValidationError) -> str:
    """Arguments that failed the tool's schema, said as the REST API says it: `field: problem`, one each."""
    problems = []
    for err in error.errors():
        field = ".".join(str(part) for part in err.get("loc", ()))
        problem = "is required" if err.get("type") == "missing" else str(err.get("msg", "is not valid"))
        problems.append(f"{field}: {problem.removeprefix('Value error, ')}" if field else problem)
    return "; ".join(problems)


class WaportalServer(MCPServer):
    async def call_tool(self, name, arguments, context=None):
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            # The SDK's own text is pydantic's report (types, input echoed, a link); an agent needs the field.
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(invalid_arguments(exc.__cause__)) from exc.__cause__
            raise


class ReadOnlyServer(WaportalServer):
    """The server a read-only key talks to: its tool list has no write tool, and calling one is refused."""

    async def call_tool(self, name, arguments, context=None):
        if name in write_tool_names():
            raise ToolError(f"{name}: this API key is read-only; it cannot send or change anything.")
        return await super().call_tool(name, arguments, context)


def build_server(*, write: bool) -> MCPServer:
    server = (WaportalServer if write else ReadOnlyServer)(
        name="waportal", instructions=INSTRUCTIONS, warn_on_duplicate_tools=False
    )
    for entry in TOOLS:
        if write or not entry.write:
            server.add_tool(entry.fn)
    return server


def raw_key(scope) -> str | None:
    """The key from `Authorization: Bearer`, `X-Api-Key` or HTTP Basic (the key as password), as the API takes it."""
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user
    return None


def _host_allowed(scope) -> bool:
    """The Host check Django makes on every other request (ALLOWED_HOSTS)."""
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"), "")
    domain, _port = split_domain_port(host)
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


async def _answer(send, status: int, body: dict, headers=()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ]
            + list(headers),
        }
    )
    await send({"type": "http.response.body", "body": payload})


class McpApp:
    """The /mcp endpoint (an ASGI app for HTTP)."""

    def __init__(self):
        self.servers = {True: build_server(write=True), False: build_server(write=False)}
        self._managers: dict[bool, StreamableHTTPSessionManager] = {}
        self._loop = None
        self._lock = None

    async def _manager(self, write: bool) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new serving loop (tests make one each): start afresh on it
            self._loop, self._managers, self._lock = loop, {}, asyncio.Lock()
        async with self._lock:
            if write not in self._managers:
                manager = StreamableHTTPSessionManager(
                    app=self.servers[write]._lowlevel_server,
                    stateless=True,
                    json_response=True,
                    # The key is a header a page in a browser cannot send for its visitor, so a rebound DNS
                    # name gains nothing; Host is checked against ALLOWED_HOSTS by our own route below.
                    security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
                )
                started = asyncio.Event()

                async def hold(manager=manager):
                    async with manager.run():
                        started.set()
                        await asyncio.Event().wait()  # for the loop's life

                loop.create_task(hold(), name=f"mcp-session-manager-{'full' if write else 'read'}")
                await started.wait()
                self._managers[write] = manager
        return self._managers[write]

    async def __call__(self, scope, receive, send):
        if not _host_allowed(scope):
            await _answer(
                send, 400, {"error": "bad_request", "message": "Host: not allowed (ALLOWED_HOSTS)."}
            )
            return
        key = await sync_to_async(_in_request, thread_sensitive=True)(
            lambda raw: key_for(raw), raw_key(scope)
        )
        if key is None:
            await _answer(
                send,
                401,
                {
                    "error": "unauthorized",
                    "message": "A valid API key is required: send it as 'Authorization: Bearer <key>' or "
                    "'X-Api-Key: <key>'.",
                },
                [(b"www-authenticate", b'Bearer realm="waportal"')],
            )
            return
        write = key.access == ApiKeyAccess.FULL
        manager = await self._manager(write)
        await manager.handle_request({**scope, SCOPE_KEY: key}, receive, send)
