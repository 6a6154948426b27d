"""The live dashboard's WebSocket: the organization's (and one device's) events, as HTML fragments htmx swaps in.

`ws/live/` (optionally `?device=<id>`): only a signed-in member of the session's current organization is
accepted (4401 otherwise; 4404 for a device outside that organization). The socket joins the channel groups
`org-<id>` and `device-<id>`, so an event may arrive twice: the repeat is dropped by its `eid`. Each event is
rendered by `messaging.live.render_event`, in the language of the browser's pages and as the member's role
shows them; nothing is sent when it renders nothing.
Frames from the browser are JSON objects with a known "action" ({"action": "ping"}); anything else gets an
error naming the field, and never closes or crashes the socket.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from types import SimpleNamespace
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation

from messaging import live, runtime

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
SEEN_EVENTS = 256  # eids remembered to drop the copy from the second group
MEMBERSHIP_RECHECK_SECONDS = 60.0  # a member removed meanwhile stops getting events within this time
ACTIONS = ("ping",)
MAX_FRAME = 4096


def _membership(user, session):
    """The user's membership of the session's current organization (see accounts.tenancy), or None."""
    from accounts.models import Membership
    from accounts.tenancy import SESSION_KEY

    memberships = Membership.objects.select_related("organization").filter(user=user)
    wanted = session.get(SESSION_KEY) if session is not None else None
    if wanted is not None:
        found = memberships.filter(organization_id=wanted).first()
        if found is not None:
            return found
    return memberships.order_by("created_at", "id").first()


def _language(scope) -> str:
    """The language the pages of this browser are in (LocaleMiddleware's choice: cookie, then Accept-Language)."""
    headers = dict(scope.get("headers") or [])
    shim = SimpleNamespace(
        COOKIES=scope.get("cookies") or {},
        META={"HTTP_ACCEPT_LANGUAGE": headers.get(b"accept-language", b"").decode("latin-1")},
        path_info="/",
    )
    try:
        return translation.get_language_from_request(shim)
    except Exception:  # a malformed header: the default language, never a refused socket
        return settings.LANGUAGE_CODE


def _still_member(membership_id: int) -> bool:
    from accounts.models import Membership

    return Membership.objects.filter(pk=membership_id).exists()


def _org_device(organization_id: int, device_id):
    from messaging.models import Device

    return (
        Device.objects.select_related("organization", "lease")
        .filter(organization_id=organization_id, pk=device_id)
        .first()
    )


def _render(
    organization_id: int, event: str, device_id, data: dict, can_write: bool = False, language: str = ""
) -> str:
    with translation.override(language or settings.LANGUAGE_CODE):
        return _render_fragments(organization_id, event, device_id, data, can_write)


def _render_fragments(organization_id: int, event: str, device_id, data: dict, can_write: bool) -> str:
    if event == live.DEVICE_REMOVED:
        from accounts.models import Organization

        # Published only to this organization's groups; the device row is gone, so it is not looked up.
        organization = Organization.objects.filter(pk=organization_id).first()
        if organization is None or not isinstance(device_id, int):
            return ""
        return "".join(live.render_removed(device_id=device_id, organization=organization))
    device = _org_device(organization_id, device_id)
    if device is None:
        return ""  # removed meanwhile, or not this organization's
    rendered = live.render_event(event=event, device=device, data=data, can_write=can_write)
    if isinstance(rendered, list | tuple):
        rendered = "".join(part for part in rendered if part)
    return rendered or ""


class LiveConsumer(AsyncWebsocketConsumer):
    groups = []

    async def connect(self):
        self.can_write = False
        self.language = ""
        self.joined: list[str] = []
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.organization_id = None
        self.membership_id = None
        refusal = await self._admit()
        # Accept first even when refusing, so the browser sees the close code (a refused handshake has none);
        # when admitted, the groups are joined before the accept: an open socket misses nothing.
        await self.accept()
        if refusal:
            await self.close(code=refusal)

    async def _admit(self) -> int | None:
        """Join the groups of a signed-in member's organization (and device); else the close code."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return CLOSE_UNAUTHENTICATED
        membership = await runtime.db(_membership, user, self.scope.get("session"))
        if membership is None:
            return CLOSE_FORBIDDEN
        self.organization_id = membership.organization_id
        self.membership_id = membership.pk
        from accounts.models import Role

        self.can_write = membership.has_role(Role.OPERATOR)
        self.language = _language(self.scope)
        self.checked_at = time.monotonic()
        groups = [f"org-{self.organization_id}"]
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if "device" in query:
            raw = query["device"][0]
            device = (
                await runtime.db(_org_device, self.organization_id, int(raw))
                if raw.isdigit() and len(raw) <= 18
                else None
            )
            if device is None:
                return CLOSE_NOT_FOUND
            groups.append(f"device-{device.pk}")
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        return None

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = []

    async def _membership_holds(self) -> bool:
        if time.monotonic() - self.checked_at < MEMBERSHIP_RECHECK_SECONDS:
            return True
        self.checked_at = time.monotonic()
        if await runtime.db(_still_member, self.membership_id):
            return True
        await self.disconnect(CLOSE_FORBIDDEN)
        await self.close(code=CLOSE_FORBIDDEN)
        return False

    async def wa_event(self, message):
        """A domain event from the workers (messaging.events.publish)."""
        if not self.joined:
            return
        eid = message.get("eid")
        if eid:
            if eid in self.seen:
                return
            self.seen[eid] = None
            if len(self.seen) > SEEN_EVENTS:
                self.seen.popitem(last=False)
        if not await self._membership_holds():
            return
        try:
            html = await runtime.db(
                _render,
                self.organization_id,
                message.get("event", ""),
                message.get("device_id"),
                message.get("data") or {},
                self.can_write,
                self.language,
            )
        except Exception:
            logger.exception("rendering live event %s failed", message.get("event"))
            return
        if html.strip():
            await self.send(text_data=html)

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data is not None or text_data is None:
            return await self._error("message", 'send a JSON object as text, like {"action": "ping"}.')
        if len(text_data) > MAX_FRAME:
            return await self._error("message", f"too long (at most {MAX_FRAME} characters).")
        try:
            frame = json.loads(text_data)
        except ValueError:
            return await self._error("message", "is not JSON.")
        if not isinstance(frame, dict):
            return await self._error("message", "must be a JSON object.")
        action = frame.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            return await self._error("action", f"must be one of: {', '.join(ACTIONS)}.")
        if action == "ping":
            await self.send(text_data=json.dumps({"action": "pong"}))

    async def _error(self, field: str, message: str):
        await self.send(text_data=json.dumps({"error": {"field": field, "message": message}}))
