"""Live dashboard fragments: a domain event as the HTML that the WebSocket pushes and HTMX swaps in.

The same partials render in the full page, the HTMX answer and the push: each fragment is the page's own
partial with `hx-swap-oob`, so htmx replaces the element with the same id (or appends a new message to its
conversation and moves its chat to the top of the inbox; static/js/waportal.js drops the older copy of an
element that arrives twice). Fragments for elements not on the page are ignored by htmx.

It also ends the sockets of whoever may no longer see them (a group per session, membership and user, which
`messaging.consumers.LiveConsumer` joins): a logout closes that session's sockets (4401; the same user's other
sessions keep theirs), a membership removed closes every socket of that member in that organization, whichever
session (4403), and a password changed or reset makes every socket of the user check its session again (those
of other sessions end, as the sessions themselves do). Best effort: with the channel layer down the logout or
removal still happens, and each socket's periodic check closes it (consumers.AUTH_RECHECK_SECONDS).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

DEVICE_EVENTS = {
    "device.qr",
    "device.connected",
    "device.disconnected",
    "device.logged_out",
    "device.status",
    "device.pair_code",
}
# Events after which the simulated phone offers other forms (a linked number can be written to).
PHONE_CHANGING_EVENTS = {"device.connected", "device.logged_out", "device.status"}
NEW_MESSAGE_EVENTS = {"message", "message.sent", "message.failed"}
CHANGED_MESSAGE_EVENTS = {
    *("message.receipt", "message.reaction", "message.edited", "message.revoked", "message.unknown"),
    "message.poll_vote",
}
GROUP_EVENTS = {"group.participants", "group.settings", "group.join_request"}
HISTORY_EVENTS = {"history.progress", "history.synced"}  # messaging.services.history_import
# A chat pinned, archived, labelled or assigned (messaging.services.chats, or WhatsApp's label events), and a
# label made, changed or deleted: the inbox re-reads its list (a chat may move or leave the filter shown), and
# the conversation open on that chat its organisation bar.
CHAT_STATE_EVENTS = {"chat.state", "label.association"}
LABEL_EVENTS = {"label.edit"}
# A number added to or removed from the organization (messaging.services.devices): the Devices page's rows.
DEVICE_ADDED = "device.created"
DEVICE_REMOVED = "device.removed"


def _message(device, pk):
    from messaging.models import Message

    if not pk:
        return None
    return Message.objects.filter(device=device, pk=pk).first()


def _chat(device, pk):
    if not pk:
        return None
    return device.chats.filter(pk=pk).first()


def render_event(*, event: str, device, data: dict, can_write: bool = False) -> list[str]:
    """HTML fragments for one live event on `device`. `event` is a webhook-style name ("device.qr", ...).

    `can_write`: whether the socket's member may act (a new row then links to Compose, as the page does).
    """
    fragments = []
    if event == DEVICE_ADDED:
        row = render_to_string("messaging/devices.html#row", {"device": device, "can_write": can_write})
        fragments.append(_rows(row))
        fragments.append('<div hx-swap-oob="delete:#devices-empty"></div>')
    elif event in DEVICE_EVENTS:
        context = {"device": device, "oob": True}
        fragments.append(render_to_string("messaging/devices.html#status", context))
        fragments.append(render_to_string("messaging/devices.html#meta", context))
        fragments.append(render_to_string("messaging/device_detail.html#link", context))
        if getattr(settings, "WA_BACKEND", "") == "sandbox":
            # The simulated phone beside it: the code it would scan or enter, and its forms once the number is
            # linked or gone (re-fetched, as they hold the member's CSRF token).
            fragments.append(render_to_string("messaging/sandbox.html#qr_field", context))
            fragments.append(render_to_string("messaging/sandbox.html#code_field", context))
            if event in PHONE_CHANGING_EVENTS:
                fragments.append(render_to_string("messaging/sandbox.html#live_refresh", context))
    elif event in NEW_MESSAGE_EVENTS or event in CHANGED_MESSAGE_EVENTS:
        message = _message(device, data.get("message_pk"))
        if message is not None:
            from messaging.selectors import message_names

            context = {"message": message, "names": message_names(device, [message])}
            html = render_to_string("messaging/conversation.html#message", context)
            if event in NEW_MESSAGE_EVENTS:
                fragments.append(
                    f'<div hx-swap-oob="beforeend:#chat-{message.chat_id}-messages">{html}</div>'
                )
            else:
                fragments.append(
                    html.replace(f'id="msg-{message.pk}"', f'id="msg-{message.pk}" hx-swap-oob="true"', 1)
                )
        chat = _chat(device, data.get("chat_pk"))
        if chat is not None and event in NEW_MESSAGE_EVENTS:
            from messaging.selectors import name_chats

            name_chats(device, [chat])  # a contact's name, as the page shows it
            row = render_to_string("messaging/inbox.html#chat_row", {"chat": chat})
            fragments.append(f'<div hx-swap-oob="afterbegin:#chat-list-{device.pk}">{row}</div>')
            if event == "message" and message is not None and not message.from_me:
                # Whoever was typing has sent it: the indicator goes (WhatsApp sends no "paused" then).
                fragments.append(
                    render_to_string("messaging/conversation.html#typing", {"chat": chat, "oob": True})
                )
    elif event == "chat.merged":  # a LID chat turned out to be a number's (messaging.services.lids)
        if removed := data.get("removed_chat_pk"):
            fragments.append(f'<div hx-swap-oob="delete:#chat-{int(removed)}-row"></div>')
        chat = _chat(device, data.get("chat_pk"))
        if chat is not None:
            from messaging.selectors import name_chats

            name_chats(device, [chat])
            row = render_to_string("messaging/inbox.html#chat_row", {"chat": chat})
            fragments.append(f'<div hx-swap-oob="afterbegin:#chat-list-{device.pk}">{row}</div>')
            # A conversation open on either chat is fetched again as the merged one (its own CSRF token, its
            # URL pushed, a half-written reply kept: static/js/waportal.js): the LID chat's is gone, the
            # number's lacks what was moved into it, and a LID-only chat now has a number to show.
            for shown in dict.fromkeys(pk for pk in (removed, chat.pk) if pk):
                context = {"device": device, "chat": chat, "shown_pk": int(shown), "oob": True}
                fragments.append(render_to_string("messaging/conversation.html#follow", context))
    elif event in CHAT_STATE_EVENTS or event in LABEL_EVENTS:
        fragments.append(
            render_to_string("messaging/inbox.html#list_refresh", {"device": device, "oob": True})
        )
        chat = _chat(device, data.get("chat_pk"))
        if chat is not None:
            from messaging.views.labels import state_context

            context = state_context(device.organization, device, chat, can_write=can_write, oob=True)
            fragments.append(render_to_string("messaging/labels.html#chat_state", context))
    elif event == "chat.presence":
        chat = device.chats.filter(jid=data.get("chat_id", "")).first()
        if chat is not None:
            context = {
                "chat": chat,
                "oob": True,
                "typing": data.get("state") == "composing",
                "typing_media": data.get("media", ""),
            }
            fragments.append(render_to_string("messaging/conversation.html#typing", context))
    elif event in HISTORY_EVENTS:
        from messaging.services.history_import import sync_from_payload

        # As the event says (not as the row is by now): each push shows the progress of its moment.
        context = {"device": device, "history_sync": sync_from_payload(device, data), "oob": True}
        fragments.append(render_to_string("messaging/device_detail.html#history", context))
    elif event in GROUP_EVENTS:
        group = data.get("group_id") or ""
        if group:
            fragments.append(
                render_to_string(
                    "groups/detail.html#live_refresh", {"device": device, "group_id": group, "oob": True}
                )
            )
    return fragments


def _rows(html: str) -> str:
    # Rows ride in a <tbody>, and first in the frame: the HTML parser drops a <tr> found outside a table
    # section, and a table section found after other elements.
    return f'<tbody hx-swap-oob="beforeend:#device-rows">{html}</tbody>'


def render_removed(*, device_id: int, organization) -> list[str]:
    """Fragments for a number removed meanwhile: its row goes (the row saying "no numbers" comes back when
    it was the last), and an open page of that number says so. The device row no longer exists to render."""
    fragments = []
    if not organization.devices.exists():
        fragments.append(_rows(render_to_string("messaging/devices.html#empty_row", {})))
    fragments.append(render_to_string("messaging/devices.html#gone", {"device_id": device_id}))
    return fragments


# --- ending the sockets of who may no longer see them ---------------------------------------------------

CLOSE_SIGNED_OUT = 4401
CLOSE_REMOVED = 4403
CLOSE_SEND_SECONDS = 3.0  # a channel layer that does not answer must not hold a logout up longer


def session_group(session_key: str) -> str:
    # A digest: the session key is a credential and group names travel through (and rest in) Redis.
    return "session-" + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def member_group(membership_id: int) -> str:
    return f"member-{membership_id}"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def tell_sockets(group: str, message: dict) -> bool:
    """Send `message` to the sockets in `group`; False (logged) when the channel layer could not take it."""
    from messaging import gateway

    async def send():
        await asyncio.wait_for(get_channel_layer().group_send(group, message), CLOSE_SEND_SECONDS)

    try:
        gateway.run_sync(send, timeout=CLOSE_SEND_SECONDS + 1)
    except Exception:  # noqa: BLE001 - Redis away: the sockets' periodic check closes them instead
        logger.warning("could not tell the live sockets of %s: %s", group, message.get("type"), exc_info=True)
        return False
    return True


def close_sockets(group: str, code: int) -> bool:
    return tell_sockets(group, {"type": "live.close", "code": code})


def _signed_out(sender, request=None, user=None, **kwargs):
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        close_sockets(session_group(session_key), CLOSE_SIGNED_OUT)


def _membership_deleted(sender, instance, **kwargs):
    # After the commit: a socket told earlier could re-check and still find the membership.
    group = member_group(instance.pk)
    transaction.on_commit(lambda: close_sockets(group, CLOSE_REMOVED))


def _password_changed(sender, user=None, **kwargs):
    if user is not None:
        group = user_group(user.pk)
        transaction.on_commit(lambda: tell_sockets(group, {"type": "live.recheck"}))


def connect_signals() -> None:
    """Called once from MessagingConfig.ready (accounts knows nothing of sockets: it only sends signals)."""
    from accounts.models import Membership
    from accounts.signals import password_changed

    user_logged_out.connect(_signed_out, dispatch_uid="messaging.live.signed_out")
    post_delete.connect(_membership_deleted, sender=Membership, dispatch_uid="messaging.live.membership")
    password_changed.connect(_password_changed, dispatch_uid="messaging.live.password_changed")
