"""Labels and chat organisation in the dashboard: a number's labels (make, rename, recolour, delete) and, from a
conversation, pin, archive, labels and the member who looks after the chat. The same services as the REST API's
/chat/{jid}/pin|archive|label|assign (messaging.services.chats)."""

from __future__ import annotations

from copy import copy

from django.core.exceptions import ValidationError
from django.db.models import Count, prefetch_related_objects
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.tenancy import member_required
from messaging.selectors import name_chats
from messaging.views.common import (
    WRITE_ERRORS,
    done,
    error_text,
    field_errors,
    org_device,
    page_context,
    service,
)
from messaging.whatsapp import protocol

CHATS = "messaging.services.chats"


def palette() -> list[tuple[int, str]]:
    """WhatsApp's label colours as (index, hex) for the swatches."""
    return list(enumerate(protocol.LABEL_COLORS))


def _labels_page(request, device, *, status: int = 200, **extra):
    labels = list(device.labels.annotate(chat_count=Count("chats")).order_by("name", "pk"))
    context = page_context(request, device=device, labels=labels, palette=palette(), **extra)
    return render(request, "messaging/labels.html", context, status=status)


@member_required()
@require_GET
def label_list(request, device_id: int):
    device = org_device(request, device_id)
    return _labels_page(request, device)


def _save(request, device, label=None):
    back = reverse("messaging:labels", args=[device.pk])
    try:
        service(CHATS).save_label(
            organization=request.organization,
            device=device,
            label=label,
            name=request.POST.get("name", ""),
            color=request.POST.get("color", ""),
            actor=request.user,
        )
    except WRITE_ERRORS as exc:
        # Shown beside the form that was sent, each under the field it names, the typed values kept.
        errors = field_errors(exc) if isinstance(exc, ValidationError) else {"__all__": [error_text(exc)]}
        return _labels_page(
            request,
            device,
            status=400,
            form=str(label.pk) if label is not None else "new",
            errors=errors,
            posted=request.POST,
        )
    return done(request, _("Label saved."), back)


@member_required(write=True)
@require_POST
def label_create(request, device_id: int):
    return _save(request, org_device(request, device_id))


@member_required(write=True)
@require_POST
def label_edit(request, device_id: int, label_id: int):
    device = org_device(request, device_id)
    return _save(request, device, get_object_or_404(device.labels, pk=label_id))


@member_required(write=True)
@require_POST
def label_delete(request, device_id: int, label_id: int):
    device = org_device(request, device_id)
    label = get_object_or_404(device.labels, pk=label_id)
    back = reverse("messaging:labels", args=[device.pk])
    try:
        service(CHATS).delete_label(
            organization=request.organization, device=device, label=label, actor=request.user
        )
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), back, error=True)
    return done(request, _("Label deleted."), back)


# ------------------------------------------------------------------------------------------ one chat


def state_context(organization, device, chat, *, labels: list | None = None, can_write: bool = True, **extra):
    """What the conversation's organisation bar shows: the chat's labels and assignee, and to a member who may
    change them the number's labels (`labels`, when the caller has read them already) and the organization's
    members. A few queries, however many labels, members or messages."""
    prefetch_related_objects([chat], "labels", "assigned_to")
    if not hasattr(chat, "known_name"):
        name_chats(device, [chat])
    members, all_labels = [], []
    if can_write:
        members = [m.user for m in organization.memberships.select_related("user").order_by("user__email")]
        all_labels = list(labels) if labels is not None else list(device.labels.order_by("name", "pk"))
        chosen = {label.pk for label in chat.labels.all()}
        all_labels = [copy(label) for label in all_labels]
        for label in all_labels:
            label.on_chat = label.pk in chosen
    return {
        "device": device,
        "chat": chat,
        "all_labels": all_labels,
        "members": members,
        "can_write": can_write,
        **extra,
    }


ORGANISE = {"pin", "unpin", "archive", "unarchive", "label", "unlabel", "assign"}


@member_required(write=True)
@require_POST
def chat_organise(request, device_id: int, chat_id: int, action: str):
    """Pin, archive, label or assign the chat; answers the conversation's organisation bar (and a nudge for
    the chat list beside it to re-read itself: the chat may have moved or left the current filter)."""
    device = org_device(request, device_id)
    chat = get_object_or_404(device.chats, pk=chat_id)
    if action not in ORGANISE:
        raise Http404("No such action.")
    chats = service(CHATS)
    common = {"organization": request.organization, "device": device, "chat": chat.jid, "actor": request.user}
    error = ""
    try:
        if action in ("pin", "unpin"):
            chats.set_chat_pinned(pinned=action == "pin", **common)
        elif action in ("archive", "unarchive"):
            chats.set_chat_archived(archived=action == "archive", **common)
        elif action in ("label", "unlabel"):
            label = device.labels.filter(pk=_int(request.POST.get("label"))).first()
            if label is None:
                raise Http404("No such label on this number.")
            chats.set_chat_label(
                label_id=label.label_id, label_name=label.name, labeled=action == "label", **common
            )
        else:
            chosen = request.POST.get("assignee", "").strip()
            # A member by id; anything else but "" (nobody) is refused by the service, naming the field.
            assignee = _int(chosen) if chosen.isdigit() else chosen
            chats.assign_chat(assignee=assignee, **common)
    except WRITE_ERRORS as exc:
        error = error_text(exc)
    back = reverse("messaging:conversation", args=[device.pk, chat.pk])
    if not request.htmx:
        return done(request, error or _("Done."), back, error=bool(error))
    chat.refresh_from_db()
    context = page_context(
        request, **state_context(request.organization, device, chat, can_write=True, state_error=error)
    )
    return render(request, "messaging/labels.html#chat_state_answer", context)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
