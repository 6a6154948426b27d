"""Live dashboard fragments: a domain event as the HTML that the WebSocket pushes and HTMX swaps in.

The same partials render in the full page, the HTMX answer and the push: each fragment is the page's own
partial with `hx-swap-oob`, so htmx replaces the element with the same id (or appends a new message to its
conversation and moves its chat to the top of the inbox; static/js/waportal.js drops the older copy of an
element that arrives twice). Fragments for elements not on the page are ignored by htmx.
"""

from __future__ import annotations

from django.template.loader import render_to_string

DEVICE_EVENTS = {
    "device.qr",
    "device.connected",
    "device.disconnected",
    "device.logged_out",
    "device.status",
    "device.pair_code",
}
NEW_MESSAGE_EVENTS = {"message", "message.sent", "message.failed"}
CHANGED_MESSAGE_EVENTS = {
    *("message.receipt", "message.reaction", "message.edited", "message.revoked", "message.unknown"),
}
GROUP_EVENTS = {"group.participants", "group.settings", "group.join_request"}
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
    elif event in NEW_MESSAGE_EVENTS or event in CHANGED_MESSAGE_EVENTS:
        message = _message(device, data.get("message_pk"))
        if message is not None:
            context = {"message": message, "reactions": _reactions()}
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
            row = render_to_string("messaging/inbox.html#chat_row", {"chat": chat})
            fragments.append(f'<div hx-swap-oob="afterbegin:#chat-list-{device.pk}">{row}</div>')
            if event == "message" and message is not None and not message.from_me:
                # Whoever was typing has sent it: the indicator goes (WhatsApp sends no "paused" then).
                fragments.append(
                    render_to_string("messaging/conversation.html#typing", {"chat": chat, "oob": True})
                )
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
    elif event in GROUP_EVENTS:
        group = data.get("group_id") or ""
        if group:
            fragments.append(
                render_to_string(
                    "groups/detail.html#live_refresh", {"device": device, "group_id": group, "oob": True}
                )
            )
    return fragments


def _reactions():
    from messaging.views.inbox import REACTIONS

    return REACTIONS


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
