"""The inbox: chats of a number (search, unread counts) and a conversation, both keyset-paginated, plus the
actions on one message (react, edit, revoke, delete for me, mark read, star, download)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.tenancy import member_required
from messaging.models import Message
from messaging.selectors import message_names, name_chats
from messaging.services import downloads
from messaging.views.common import (
    WRITE_ERRORS,
    can_write,
    done,
    error_text,
    org_device,
    page_context,
    service,
)
from messaging.views.labels import state_context

MESSAGES = "messaging.services.messages"
# A page holds a screen and a half (the list shows about a dozen chats, the pane about fifteen messages): the
# next chats load as their button scrolls into view, older messages on "Older messages". Each row is ~0.4 ms of
# template rendering, so 30 chats and 40 messages made the conversation page 10-15 ms slower for rows nobody
# had scrolled to (benchmarks/history_bench.py).
CHATS_PER_PAGE = 20
MESSAGES_PER_PAGE = 30
REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"]


def encode_cursor(when: datetime, pk: int, pinned: bool | None = None) -> str:
    """A keyset position; the inbox's also says whether it is among the pinned chats (they come first)."""
    if pinned is None:
        return f"{when.isoformat()}~{pk}"
    return f"{int(bool(pinned))}~{when.isoformat()}~{pk}"


def decode_cursor(value: str) -> tuple[datetime, int] | None:
    try:
        when, pk = value.rsplit("~", 1)
        parsed = parse_datetime(when.replace(" ", "+"))
        return (parsed, int(pk)) if parsed else None
    except (ValueError, TypeError):
        return None


def decode_chat_cursor(value: str) -> tuple[bool, datetime, int] | None:
    """(pinned, activity, id) of an inbox cursor; one without the pinned part is past the pinned chats."""
    pinned, _sep, rest = value.partition("~")
    if pinned in ("0", "1") and rest.count("~") == 1:
        cursor = decode_cursor(rest)
        return (pinned == "1", *cursor) if cursor else None
    cursor = decode_cursor(value)
    return (False, *cursor) if cursor else None


FILTERS = {"", "unread", "groups", "mine", "archived"}
LABEL_FILTER = "label-"  # "label-<pk>": chats with that label of the number


def chats_page(device, *, search: str = "", after: str = "", filter: str = "", user=None):
    """One page of chats, pinned first, then most recent first, keyset on (pinned, activity, id); returns
    (chats, next cursor or ""). Archived chats show only under the "archived" filter.

    `filter`: "unread", "groups", "mine" (assigned to `user`), "archived", or "label-<pk>"."""
    chats = (
        device.chats.annotate(activity=Coalesce("last_message_at", "created_at"))
        .select_related("assigned_to")
        .prefetch_related("labels")
    )
    chats = chats.filter(archived=filter == "archived")
    if filter == "unread":
        chats = chats.filter(unread_count__gt=0)
    elif filter == "groups":
        chats = chats.filter(is_group=True)
    elif filter == "mine":
        chats = chats.filter(assigned_to=user) if user is not None else chats.none()
    elif filter.startswith(LABEL_FILTER):
        chats = chats.filter(labels__pk=int(filter.removeprefix(LABEL_FILTER)))
    if search:  # (the last message's preview too: no index holds it, see sqlite_fts.CHATS)
        chats = chats.filter(
            Q(name__icontains=search) | Q(jid__icontains=search) | Q(last_message_preview__icontains=search)
        )
    cursor = decode_chat_cursor(after) if after else None
    if cursor:
        pinned, when, pk = cursor
        # The leading `<=` bounds the index range; an OR alone would make the database walk from the newest.
        later = Q(activity__lte=when) & (Q(activity__lt=when) | Q(id__lt=pk))
        chats = (
            chats.filter((Q(pinned=True) & later) | Q(pinned=False))
            if pinned
            else chats.filter(later, pinned=False)
        )
    rows = list(chats.order_by("-pinned", "-activity", "-id")[: CHATS_PER_PAGE + 1])
    more = len(rows) > CHATS_PER_PAGE
    rows = name_chats(device, rows[:CHATS_PER_PAGE])
    last = rows[-1] if rows else None
    return rows, (encode_cursor(last.activity, last.pk, last.pinned) if more else "")


def messages_page(chat, *, before: str = ""):
    """The newest page of a chat's messages older than `before`, oldest first; keyset on (timestamp, id).

    Uses the (chat, -timestamp, -id) index, so a chat with a million messages opens as fast as one with ten.
    """
    messages = Message.objects.filter(chat=chat, deleted_for_me_at__isnull=True)
    cursor = decode_cursor(before) if before else None
    if cursor:
        when, pk = cursor
        messages = messages.filter(Q(timestamp__lte=when), Q(timestamp__lt=when) | Q(id__lt=pk))
    rows = list(messages.order_by("-timestamp", "-id")[: MESSAGES_PER_PAGE + 1])
    more = len(rows) > MESSAGES_PER_PAGE
    rows = rows[:MESSAGES_PER_PAGE]
    rows.reverse()
    return rows, (encode_cursor(rows[0].timestamp, rows[0].pk) if more and rows else "")


@member_required()
@require_GET
def chat_list(request, device_id: int):
    device = org_device(request, device_id)
    context = page_context(request, device=device, **_chat_list(request, device))
    if request.htmx and request.GET.get("after"):
        return render(request, "messaging/inbox.html#chat_page", context)
    if request.htmx and request.htmx.target == "chat-list-body":
        return render(request, "messaging/inbox.html#chat_list_body", context)
    return render(request, "messaging/inbox.html", context)


def _chat_list(request, device, labels: list | None = None) -> dict:
    """The chat list's part of the context, from ?q= (search), ?filter= and ?after= (the next page)."""
    search = request.GET.get("q", "").strip()[:100]
    chosen = request.GET.get("filter", "")
    labels = list(device.labels.order_by("name", "pk")) if labels is None else labels
    for label in labels:
        label.filter_key = f"{LABEL_FILTER}{label.pk}"
    if chosen.startswith(LABEL_FILTER):
        wanted = chosen.removeprefix(LABEL_FILTER)
        chosen = chosen if any(str(label.pk) == wanted for label in labels) else ""
    elif chosen not in FILTERS:
        chosen = ""
    chats, next_cursor = chats_page(
        device, search=search, after=request.GET.get("after", ""), filter=chosen, user=request.user
    )
    return {"chats": chats, "next_cursor": next_cursor, "search": search, "filter": chosen, "labels": labels}


def _chat(device, chat_id: int):
    return get_object_or_404(device.chats, pk=chat_id)


@member_required()
@require_GET
def conversation(request, device_id: int, chat_id: int):
    device = org_device(request, device_id)
    chat = _chat(device, chat_id)
    # Not "messages": that name is the flash messages' in the base layout.
    chat_messages, older = messages_page(chat, before=request.GET.get("before", ""))
    for message in chat_messages:
        message.chat = chat  # the template asks whether the sender is the chat itself (no query per message)
    names = message_names(device, chat_messages)
    if request.htmx and request.GET.get("before"):
        context = page_context(
            request, device=device, chat=chat, chat_messages=chat_messages, older=older, names=names
        )
        return render(request, "messaging/conversation.html#older_page", context)
    # Opening a chat is reading it: its unread count goes (WhatsApp's read receipts stay a choice: "Mark all
    # read"). A re-fetch after a reconnect counts too: the conversation is on screen.
    row_changed = service(MESSAGES).clear_unread(organization=request.organization, chat=chat)
    name_chats(device, [chat])
    labels = list(device.labels.order_by("name", "pk"))  # for the organisation bar and the list's filters
    organised = state_context(request.organization, device, chat, labels=labels, can_write=can_write(request))
    latest_unread = next((m for m in reversed(chat_messages) if not m.from_me and not m.read_by_me_at), None)
    context = page_context(
        request,
        device=device,
        chat=chat,
        chat_messages=chat_messages,
        older=older,
        names=names,
        latest_unread=latest_unread,
        row_changed=row_changed and bool(request.htmx),
        all_labels=organised["all_labels"],
        members=organised["members"],
    )
    if request.htmx and request.htmx.target == "conversation-pane":
        return render(request, "messaging/conversation.html#pane", context)
    context.update(_chat_list(request, device, labels))
    return render(request, "messaging/conversation.html", context)


@member_required()
@require_POST
def chat_seen(request, device_id: int, chat_id: int):
    """The open conversation got a message while someone was looking at it: it is read, as one opened.
    Answers the chat's row (without its unread count) for the list beside it."""
    device = org_device(request, device_id)
    chat = _chat(device, chat_id)
    service(MESSAGES).clear_unread(organization=request.organization, chat=chat)
    name_chats(device, [chat])
    return render(request, "messaging/inbox.html#chat_row", page_context(request, chat=chat))


def _message(device, chat, message_id: int) -> Message:
    return get_object_or_404(Message.objects.filter(device=device, chat=chat), pk=message_id)


def _render_message(request, device, message, *, error: str = ""):
    return render(
        request,
        "messaging/conversation.html#message",
        page_context(
            request,
            message=message,
            names=message_names(device, [message]),
            action_error=error,
        ),
    )


@member_required(write=True)
@require_GET
def message_menu(request, device_id: int, chat_id: int, message_id: int):
    """A message's ⋯ menu (reply, react, edit, delete, star), fetched when it is opened: drawn for every message
    of a page, it was a fifth of the conversation page's time and most of its HTML."""
    device = org_device(request, device_id)
    message = _message(device, _chat(device, chat_id), message_id)
    return render(
        request, "messaging/conversation.html#message_menu", {"message": message, "reactions": REACTIONS}
    )


ACTIONS = {
    "react": ("react_message", lambda post: {"emoji": post.get("emoji", "")}),
    "edit": ("edit_message", lambda post: {"text": post.get("text", "")}),
    "revoke": ("revoke_message", lambda post: {}),
    "delete": ("delete_message_for_me", lambda post: {}),
    "read": ("mark_read", lambda post: {}),
    "star": ("star_message", lambda post: {"starred": True}),
    "unstar": ("star_message", lambda post: {"starred": False}),
    "resend": ("resend_message", lambda post: {}),
}


@member_required(write=True)
@require_POST
def message_action(request, device_id: int, chat_id: int, message_id: int, action: str):
    device = org_device(request, device_id)
    chat = _chat(device, chat_id)
    message = _message(device, chat, message_id)
    if action not in ACTIONS:
        raise Http404("No such action.")
    func, args = ACTIONS[action]
    error = ""
    try:
        getattr(service(MESSAGES), func)(
            organization=request.organization,
            device=device,
            chat=chat.jid,
            message_id=message.wa_id,
            actor=request.user,
            **args(request.POST),
        )
    except WRITE_ERRORS as exc:
        error = error_text(exc)
    back = reverse("messaging:conversation", args=[device.pk, chat.pk])
    if not request.htmx:
        return done(request, error or _("Done."), back, error=bool(error))
    message.refresh_from_db()
    if message.deleted_for_me_at and not error:
        return HttpResponse("")  # gone from this view
    return _render_message(request, device, message, error=error)


@member_required()
@require_GET
def message_download(request, device_id: int, chat_id: int, message_id: int):
    device = org_device(request, device_id)
    chat = _chat(device, chat_id)
    message = _message(device, chat, message_id)
    try:
        return downloads.download(device, message)
    except downloads.NoMedia as exc:
        raise Http404(str(exc)) from None
    except WRITE_ERRORS as exc:
        return HttpResponse(error_text(exc), status=503, content_type="text/plain; charset=utf-8")


@member_required(write=True)
@require_POST
def chat_send(request, device_id: int, chat_id: int):
    """The reply box of a conversation: a text (optionally replying to one message), through the outbox."""
    device = org_device(request, device_id)
    chat = _chat(device, chat_id)
    text = request.POST.get("text", "")
    error = ""
    message = None
    try:
        message = service("messaging.services.outbox").queue_message(
            organization=request.organization,
            device=device,
            outgoing={
                "to": chat.jid,
                "kind": "text",
                "text": text,
                "reply_to_id": request.POST.get("reply_to_id", ""),
            },
            actor=request.user,
        )
    except WRITE_ERRORS as exc:
        error = error_text(exc)
    if message is not None and message.status == "failed":
        # Refused at once: said as an error, the text kept to fix and send again.
        error = message.error or _("The message could not be sent.")
    if not request.htmx:
        return done(
            request,
            error or _("Sent."),
            reverse("messaging:conversation", args=[device.pk, chat.pk]),
            error=bool(error),
        )
    return render(
        request,
        "messaging/conversation.html#sent",
        page_context(
            request,
            device=device,
            chat=chat,
            message=message,
            send_error=error,
            text=text if error else "",
        ),
    )
