"""Group pages: list, create, join by link, and a group's detail with participants, requests and settings.

Groups are read live from WhatsApp (nothing of theirs is stored); reads and writes go through groups/services.py,
the same functions the REST API calls.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_POST

from accounts.tenancy import member_required
from messaging.selectors import names_for
from messaging.templatetags.dashboard import phone
from messaging.views.common import (
    WRITE_ERRORS,
    done,
    error_text,
    org_device,
    page_context,
    picture_upload,
    service,
)
from messaging.whatsapp import protocol
from waportal.i18n import localize

GROUPS = "groups.services"


def _group_jid(group_id: str) -> str:
    try:
        jid = protocol.normalize_jid(group_id if "@" in group_id else f"{group_id}@{protocol.GROUP_SERVER}")
    except ValueError:
        raise Http404("No such group.") from None
    if not protocol.is_group(jid):
        raise Http404("No such group.")
    return jid


def _detail_url(device, jid: str) -> str:
    return reverse("groups:detail", args=[device.pk, jid])


def _refused(exc) -> str:
    """A refusal as the page says it: WhatsApp's "forbidden" on a group is this number not being an admin."""
    if isinstance(exc, protocol.WhatsAppError) and exc.code == protocol.ErrorCode.FORBIDDEN:
        return _("This number is not an admin of this group, and WhatsApp refused: %(why)s") % {
            "why": localize(exc.message)
        }
    return error_text(exc)


@member_required()
@require_GET
def group_index(request):
    device = request.organization.devices.filter(status="connected").order_by("created_at", "id").first()
    device = device or request.organization.devices.order_by("created_at", "id").first()
    if device is None:
        return redirect("messaging:devices")
    return redirect("groups:list", device.pk)


@member_required()
@require_GET
def group_list(request, device_id: int):
    device = org_device(request, device_id)
    groups, error = [], ""
    try:
        groups = service(GROUPS).joined_groups(organization=request.organization, device=device)
    except WRITE_ERRORS as exc:
        error = error_text(exc)
    return render(
        request, "groups/list.html", page_context(request, device=device, groups=groups, error=error)
    )


@member_required(write=True)
@require_POST
def group_create(request, device_id: int):
    device = org_device(request, device_id)
    try:
        info = service(GROUPS).create_group(
            organization=request.organization,
            device=device,
            name=request.POST.get("name", ""),
            participants=request.POST.get("participants", ""),
            actor=request.user,
        )
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), reverse("groups:list", args=[device.pk]), error=True)
    return done(request, _("Group created."), _detail_url(device, info.jid))


@member_required(write=True)
@require_POST
def group_join(request, device_id: int):
    device = org_device(request, device_id)
    try:
        jid = service(GROUPS).join_group_with_link(
            organization=request.organization,
            device=device,
            link=request.POST.get("link", ""),
            actor=request.user,
        )
    except WRITE_ERRORS as exc:
        return done(request, error_text(exc), reverse("groups:list", args=[device.pk]), error=True)
    if not jid:
        return done(
            request,
            _("Asked to join: an admin of the group must approve."),
            reverse("groups:list", args=[device.pk]),
        )
    return done(request, _("Joined the group."), _detail_url(device, jid))


def _detail_context(request, device, jid: str) -> dict:
    context = page_context(request, device=device, group_id=jid, info=None, requests=[], error="")
    try:
        info = service(GROUPS).group_info(organization=request.organization, device=device, group=jid)
    except WRITE_ERRORS as exc:
        context["error"] = error_text(exc)
        return context
    context["info"] = info
    me = next((p for p in info.participants if device.jid and p.jid == device.jid), None)
    context["i_am_admin"] = bool(me and (me.is_admin or me.is_super_admin))
    if context["i_am_admin"]:
        try:
            context["requests"] = service(GROUPS).join_requests(
                organization=request.organization, device=device, group=jid
            )
        except WRITE_ERRORS:
            context["requests"] = []
    context["names"] = _names(request, device, info.participants, context["requests"])
    return context


def _names(request, device, participants, requests) -> dict[str, str]:
    """Names for the people listed, in one query: the team's contacts first, then what WhatsApp says."""
    jids = [p.jid for p in participants] + [r.jid for r in requests]
    names = names_for(request.organization, jids, device=device)
    for p in participants:
        if getattr(p, "display_name", "") and p.jid not in names:
            names[p.jid] = p.display_name
    return names


@member_required()
@require_GET
def group_detail(request, device_id: int, group_id: str):
    device = org_device(request, device_id)
    jid = _group_jid(group_id)
    context = _detail_context(request, device, jid)
    if request.htmx and request.htmx.target and request.htmx.target.startswith("group-body"):
        return render(request, "groups/detail.html#body", context)
    return render(request, "groups/detail.html", context)


@member_required(write=True)
@require_POST
def group_participants(request, device_id: int, group_id: str):
    device = org_device(request, device_id)
    jid = _group_jid(group_id)
    action = request.POST.get("action", "")
    try:
        results = service(GROUPS).update_participants(
            organization=request.organization,
            device=device,
            group_id=jid,
            participants=request.POST.get("participants", ""),
            action=action,
            actor=request.user,
        )
    except WRITE_ERRORS as exc:
        return done(request, _refused(exc), _detail_url(device, jid), error=True)
    return _results(request, device, results, _detail_url(device, jid), action)


# What was done to whom, and what was not, per action (the second names those it was not done to).
OUTCOMES = {
    "add": (gettext_noop("Added: %(who)s."), gettext_noop("Not added: %(who)s.")),
    "remove": (gettext_noop("Removed: %(who)s."), gettext_noop("Not removed: %(who)s.")),
    "promote": (gettext_noop("Made admin: %(who)s."), gettext_noop("Not made admin: %(who)s.")),
    "demote": (gettext_noop("No longer admin: %(who)s."), gettext_noop("Still admin: %(who)s.")),
    "approve": (gettext_noop("Approved: %(who)s."), gettext_noop("Not approved: %(who)s.")),
    "reject": (gettext_noop("Rejected: %(who)s."), gettext_noop("Not rejected: %(who)s.")),
}
# Why a participant change was not made, as the sandbox and neonize backends say it (translated when known).
REASONS = (
    gettext_noop("not on WhatsApp"),
    gettext_noop("already a participant"),
    gettext_noop("not a participant"),
    gettext_noop("already an admin"),
    gettext_noop("not an admin"),
    gettext_noop("the group's creator cannot be removed"),
    gettext_noop("the group's creator cannot be demoted"),
    gettext_noop("their privacy settings do not allow you to add them; send an invite link"),
    gettext_noop("no pending request"),
)


def _results(request, device, results, back: str, action: str):
    """Flash who it was done to and who not, and why: a partial success is neither a plain success nor an error."""
    names = names_for(request.organization, [r.participant for r in results], device=device)

    def who(r) -> str:
        number = phone(r.participant) or protocol.jid_user(r.participant)
        name = names.get(r.participant, "")
        return f"{name} ({number})" if name and name != number else number

    done_to = [who(r) for r in results if r.status == "success"]
    refused = [f"{who(r)} ({localize(r.message or r.status)})" for r in results if r.status != "success"]
    did, did_not = OUTCOMES.get(action, (gettext_noop("Done: %(who)s."), gettext_noop("Not done: %(who)s.")))
    parts = []
    if done_to:
        parts.append(_(did) % {"who": ", ".join(done_to)})
    if refused:
        parts.append(_(did_not) % {"who": "; ".join(refused)})
    text = " ".join(parts) or _("Done.")
    if refused and done_to:
        messages.warning(request, text)
        return _back_to(request, back)
    return done(request, text, back, error=bool(refused))


def _back_to(request, back: str):
    from django.http import HttpResponse

    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = back
        return response
    return redirect(back)


@member_required(write=True)
@require_POST
def group_requests(request, device_id: int, group_id: str):
    device = org_device(request, device_id)
    jid = _group_jid(group_id)
    approve = request.POST.get("answer") == "approve"
    try:
        results = service(GROUPS).answer_join_requests(
            organization=request.organization,
            device=device,
            group_id=jid,
            participants=request.POST.get("participants", ""),
            approve=approve,
            actor=request.user,
        )
    except WRITE_ERRORS as exc:
        return done(request, _refused(exc), _detail_url(device, jid), error=True)
    return _results(request, device, results, _detail_url(device, jid), "approve" if approve else "reject")


SETTINGS = {
    "name": ("set_group_name", lambda post: {"name": post.get("name", "")}),
    "topic": ("set_group_topic", lambda post: {"topic": post.get("topic", "")}),
    "locked": ("set_group_locked", lambda post: {"locked": post.get("value") == "on"}),
    "announce": ("set_group_announce", lambda post: {"announce": post.get("value") == "on"}),
}


@member_required(write=True)
@require_POST
def group_settings(request, device_id: int, group_id: str, setting: str):
    device = org_device(request, device_id)
    jid = _group_jid(group_id)
    if setting not in SETTINGS:
        raise Http404("No such setting.")
    func, args = SETTINGS[setting]
    try:
        getattr(service(GROUPS), func)(
            organization=request.organization,
            device=device,
            group_id=jid,
            actor=request.user,
            **args(request.POST),
        )
    except WRITE_ERRORS as exc:
        return done(request, _refused(exc), _detail_url(device, jid), error=True)
    return done(request, _("Saved."), _detail_url(device, jid))


@member_required(write=True)
@require_POST
def group_photo(request, device_id: int, group_id: str):
    device = org_device(request, device_id)
    jid = _group_jid(group_id)
    image, problem = picture_upload(request.FILES.get("photo"), "photo")
    if image is None:
        return done(request, problem, _detail_url(device, jid), error=True)
    try:
        service(GROUPS).set_group_photo(
            organization=request.organization, device=device, group_id=jid, image=image, actor=request.user
        )
    except WRITE_ERRORS as exc:
        return done(request, _refused(exc), _detail_url(device, jid), error=True)
    return done(request, _("Photo changed."), _detail_url(device, jid))


@member_required(write=True)
@require_POST
def group_invite(request, device_id: int, group_id: str):
    """Show (or, with reset, replace) the invite link: an admin's act, so it is a POST and needs an operator."""
    device = org_device(request, device_id)
    jid = _group_jid(group_id)
    context = page_context(request, device=device, group_id=jid, link="", invite_error="")
    try:
        context["link"] = service(GROUPS).group_invite_link(
            organization=request.organization,
            device=device,
            group_id=jid,
            reset=request.POST.get("reset") == "1",
            actor=request.user,
        )
    except WRITE_ERRORS as exc:
        context["invite_error"] = _refused(exc)
    if not request.htmx:
        return done(
            request,
            context["invite_error"] or context["link"],
            _detail_url(device, jid),
            error=bool(context["invite_error"]),
        )
    return render(request, "groups/detail.html#invite", context)


@member_required(write=True)
@require_POST
def group_leave(request, device_id: int, group_id: str):
    device = org_device(request, device_id)
    jid = _group_jid(group_id)
    try:
        service(GROUPS).leave_group(
            organization=request.organization, device=device, group_id=jid, actor=request.user
        )
    except WRITE_ERRORS as exc:
        return done(request, _refused(exc), _detail_url(device, jid), error=True)
    return done(request, _("Left the group."), reverse("groups:list", args=[device.pk]))
