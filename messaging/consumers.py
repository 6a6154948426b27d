"""The live dashboard's WebSocket: the organization's (and one device's) events, as HTML fragments htmx swaps in.

`ws/live/` (optionally `?device=<id>`): only a signed-in member of the session's current organization is
accepted (4401 otherwise; 4404 for a device outside that organization). The socket joins the channel groups
`org-<id>` and `device-<id>`, so an event may arrive twice: the repeat is dropped by its `eid`. Each event is
rendered by `messaging.live.render_event`, in the language of the browser's pages and as the member's role
shows them; nothing is sent when it renders nothing.
Frames from the browser are JSON objects with a known "action" ({"action": "ping"}); anything else gets an
error naming the field, and never closes or crashes the socket.

A socket lives no longer than the right to see it: it also joins its session's, membership's and user's groups
(see messaging.live), so a logout closes the sockets of that session (4401) and a removal from the organization
every socket of that member there (4403), at once. Because such a message can be lost (Redis away for a
moment), every socket also re-checks on its own every AUTH_RECHECK_SECONDS that its session still exists, is
still the user's and still valid (a password change ends the other sessions), and that the membership holds.
The htmx ws extension does not reconnect after these codes: the page stays as it was, its next request signs in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from types import SimpleNamespace
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation

from messaging import live, runtime

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = live.CLOSE_SIGNED_OUT
CLOSE_FORBIDDEN = live.CLOSE_REMOVED
CLOSE_NOT_FOUND = 4404
SEEN_EVENTS = 256  # eids remembered to drop the copy from the second group
# How often a socket re-reads its session and membership, for when the message that should have closed it was
# lost: the longest a signed-out session or removed member may keep receiving events. One small query pair per
# socket per period.
AUTH_RECHECK_SECONDS = 15.0
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


def _session_key(session) -> str | None:
    return getattr(session, "session_key", None) if session is not None else None


def _authorization_problem(session_key: str | None, user_id: int, membership_id: int) -> int | None:
    """Why the socket must close now (its close code), or None while its session and membership hold.

    The session is read afresh from the store, never changed (unlike auth.get_user, which may flush or
    re-key it: this runs beside the browser, not for one of its requests).
    """
    from importlib import import_module

    from django.contrib.auth import HASH_SESSION_KEY
    from django.contrib.auth import SESSION_KEY as USER_KEY
    from django.utils.crypto import constant_time_compare

    from accounts.models import Membership, User

    if not session_key:
        return CLOSE_UNAUTHENTICATED
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key).load()
    if str(data.get(USER_KEY, "")) != str(user_id):
        return CLOSE_UNAUTHENTICATED  # signed out, expired, or not this user's
    user = User.objects.filter(pk=user_id, is_active=True).first()
    stored = data.get(HASH_SESSION_KEY) or ""
    if user is None or not any(
        constant_time_compare(stored, known)
        for known in [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    ):
        return CLOSE_UNAUTHENTICATED  # deactivated, or the password changed since this session began
    if not Membership.objects.filter(pk=membership_id, user_id=user_id).exists():
        return CLOSE_FORBIDDEN
    return None


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
        self.watch = None
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
            await self._leave()
            await self.close(code=refusal)
        else:
            self.watch = asyncio.create_task(self._watch_authorization())

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
        self.user_id = user.pk
        self.session_key = await runtime.db(_session_key, self.scope.get("session"))
        from accounts.models import Role

        self.can_write = membership.has_role(Role.OPERATOR)
        self.language = _language(self.scope)
        # The groups that end this socket come first: joined before anything it could be shown.
        groups = [live.member_group(self.membership_id), live.user_group(self.user_id)]
        if self.session_key:
            groups.append(live.session_group(self.session_key))
        groups.append(f"org-{self.organization_id}")
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
        watch = getattr(self, "watch", None)
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        await self._leave()

    async def _leave(self):
        joined, self.joined = getattr(self, "joined", []), []
        for group in joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # noqa: BLE001 - the layer's own expiry drops the membership later
                logger.warning("leaving %s failed", group, exc_info=True)

    async def _end(self, code: int):
        """Stop pushing at once, then close (the browser does not reconnect after 4401/4403)."""
        await self._leave()
        await self.close(code=code)

    async def _check_authorization(self) -> bool:
        problem = await runtime.db(_authorization_problem, self.session_key, self.user_id, self.membership_id)
        if problem is None:
            return True
        await self._end(problem)
        return False

    async def _watch_authorization(self):
        try:
            while self.joined:
                await asyncio.sleep(AUTH_RECHECK_SECONDS)
                if not self.joined:
                    return
                try:
                    if not await self._check_authorization():
                        return
                except Exception:  # noqa: BLE001 - a database hiccup: try again next period
                    logger.warning("re-checking a live socket's session failed", exc_info=True)
        except asyncio.CancelledError:
            pass

    async def live_close(self, message):
        """A logout or a removal (messaging.live): this socket's session or membership has ended."""
        if self.joined:
            await self._end(int(message.get("code") or CLOSE_UNAUTHENTICATED))

    async def live_recheck(self, message):
        """The user's password changed: sessions other than the one that changed it are over."""
        if self.joined:
            await self._check_authorization()

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
