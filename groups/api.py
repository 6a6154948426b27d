"""/group/*: create, participants, join by link, join requests, leave, info, invite link, name/topic/photo/settings."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime

from django.http import HttpResponse
from ninja import File, Form, Query, Router, Schema
from ninja.files import UploadedFile
from pydantic import Field

from groups import services
from messaging.api.common import AUTH, Envelope, acting, done, field_error, media_input, ok
from messaging.api.fields import GroupJid, InviteLink, MediaUrl, Participant, text

router = Router(tags=["group"], auth=AUTH)


def _rows(results) -> list[dict]:
    return [{"participant": r.participant, "status": r.status, "message": r.message} for r in results]


def _participants_message(rows: list[dict], verb: str) -> str:
    failed = sum(1 for r in rows if r["status"] != "success")
    if not failed:
        return f"{verb} {len(rows)} participant(s)."
    return (
        f"{verb} {len(rows) - failed} of {len(rows)} participant(s); see each row's message for the others."
    )


class CreateIn(Schema):
    title: text(100) = Field(examples=["Yeni Grup"])
    participants: list[Participant] = Field(min_length=1, max_length=1024)


@router.post("/group", response=Envelope, summary="Create a group; answers group_id")
def create_group(request, payload: CreateIn):
    ctx = acting(request, write=True)
    request.api_field_names = {"name": "title"}
    info = services.create_group(
        name=payload.title, participants=payload.participants, **ctx.service_kwargs()
    )
    group = asdict(info)
    return ok({"group_id": info.jid, **group}, f"Group {info.jid} created.")


class ParticipantsIn(Schema):
    group_id: GroupJid
    participants: list[Participant] = Field(min_length=1, max_length=1024)


def _participants(request, payload: ParticipantsIn, action: str, verb: str):
    ctx = acting(request, write=True)
    results = services.update_participants(
        group_id=payload.group_id, participants=payload.participants, action=action, **ctx.service_kwargs()
    )
    rows = _rows(results)
    return ok(rows, _participants_message(rows, verb))


@router.post("/group/participants", response=Envelope, summary="Add participants")
def add_participants(request, payload: ParticipantsIn):
    return _participants(request, payload, "add", "Added")


@router.post("/group/participants/remove", response=Envelope, summary="Remove participants")
def remove_participants(request, payload: ParticipantsIn):
    return _participants(request, payload, "remove", "Removed")


@router.post("/group/participants/promote", response=Envelope, summary="Make participants admins")
def promote_participants(request, payload: ParticipantsIn):
    return _participants(request, payload, "promote", "Promoted")


@router.post("/group/participants/demote", response=Envelope, summary="Take admin rights away")
def demote_participants(request, payload: ParticipantsIn):
    return _participants(request, payload, "demote", "Demoted")


class JoinIn(Schema):
    link: InviteLink


@router.post("/group/join-with-link", response=Envelope, summary="Join a group by its invite link")
def join_with_link(request, payload: JoinIn):
    ctx = acting(request, write=True)
    group = services.join_group_with_link(link=payload.link, **ctx.service_kwargs())
    return ok({"group_id": group}, f"Joined {group}." if group else "Asked to join; an admin must approve.")


class GroupQuery(Schema):
    group_id: GroupJid


@router.get("/group/participant-requests", response=Envelope, summary="Pending requests to join")
def participant_requests(request, query: Query[GroupQuery]):
    ctx = acting(request)
    found = services.join_requests(organization=ctx.organization, device=ctx.device, group=query.group_id)
    return ok([{"jid": r.jid, "requested_at": r.requested_at} for r in found])


def _answer(request, payload: ParticipantsIn, approve: bool):
    ctx = acting(request, write=True)
    results = services.answer_join_requests(
        group_id=payload.group_id, participants=payload.participants, approve=approve, **ctx.service_kwargs()
    )
    rows = _rows(results)
    return ok(rows, _participants_message(rows, "Approved" if approve else "Rejected"))


@router.post("/group/participant-requests/approve", response=Envelope, summary="Approve requests to join")
def approve_requests(request, payload: ParticipantsIn):
    return _answer(request, payload, True)


@router.post("/group/participant-requests/reject", response=Envelope, summary="Reject requests to join")
def reject_requests(request, payload: ParticipantsIn):
    return _answer(request, payload, False)


class GroupIn(Schema):
    group_id: GroupJid


@router.post("/group/leave", response=Envelope, exclude_unset=True, summary="Leave a group")
def leave(request, payload: GroupIn):
    ctx = acting(request, write=True)
    group = services.leave_group(group_id=payload.group_id, **ctx.service_kwargs())
    return done(f"Left {group}.")


@router.get("/group/info", response=Envelope, summary="A group's info and participants")
def info(request, query: Query[GroupQuery]):
    ctx = acting(request)
    return ok(
        asdict(services.group_info(organization=ctx.organization, device=ctx.device, group=query.group_id))
    )


def _participant_rows(group) -> list[dict]:
    """The peer's participant rows (its clients parse exactly these fields)."""
    return [
        {
            "jid": p.jid,
            "phone_number": p.jid.split("@", 1)[0] if p.jid.endswith("@s.whatsapp.net") else "",
            "display_name": p.display_name,
            "is_admin": p.is_admin or p.is_super_admin,
            "is_super_admin": p.is_super_admin,
        }
        for p in group.participants
    ]


@router.get("/group/participants", response=Envelope, summary="A group's participants")
def participants(request, query: Query[GroupQuery]):
    ctx = acting(request)
    group = services.group_info(organization=ctx.organization, device=ctx.device, group=query.group_id)
    return ok({"group_id": group.jid, "name": group.name, "participants": _participant_rows(group)})


CSV_COLUMNS = ["jid", "phone_number", "display_name", "is_admin", "is_super_admin"]


@router.get(
    "/group/participants/export",
    summary="A group's participants as CSV (errors are the JSON envelope)",
    openapi_extra={
        "responses": {
            200: {"description": "The CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
        }
    },
)
def export_participants(request, query: Query[GroupQuery]) -> HttpResponse:
    ctx = acting(request)
    group = services.group_info(organization=ctx.organization, device=ctx.device, group=query.group_id)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(_participant_rows(group))
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    filename = group.jid.split("@", 1)[0]
    response["Content-Disposition"] = f'attachment; filename="group-{filename}-participants.csv"'
    return response


class LinkQuery(Schema):
    link: InviteLink


@router.get(
    "/group/info-from-link", response=Envelope, summary="A group's info from its invite link, without joining"
)
def info_from_link(request, query: Query[LinkQuery]):
    ctx = acting(request)
    group = services.group_info_from_link(organization=ctx.organization, device=ctx.device, link=query.link)
    return ok(
        {
            "group_id": group.jid,
            "name": group.name,
            "topic": group.topic,
            "description": group.topic,
            "created_at": _rfc3339(group.created_at),
            "participant_count": len(group.participants),
            "is_locked": group.locked,
            "is_announce": group.announce,
            "is_ephemeral": False,
        }
    )


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds or 0, tz=UTC).isoformat().replace("+00:00", "Z")


class InviteQuery(GroupQuery):
    reset: bool = Field(False, description="Revoke the current link and make a new one.")


@router.get("/group/invite-link", response=Envelope, summary="The group's invite link")
def invite_link(request, query: Query[InviteQuery]):
    ctx = acting(request, write=query.reset)
    link = services.group_invite_link(group_id=query.group_id, reset=query.reset, **ctx.service_kwargs())
    return ok({"group_id": query.group_id, "invite_link": link})


class NameIn(GroupIn):
    name: text(100)


@router.post("/group/name", response=Envelope, exclude_unset=True, summary="Rename a group")
def set_name(request, payload: NameIn):
    ctx = acting(request, write=True)
    name = services.set_group_name(group_id=payload.group_id, name=payload.name, **ctx.service_kwargs())
    return done(f"Group renamed to '{name}'.")


class TopicIn(GroupIn):
    topic: str = Field("", max_length=2048)


@router.post("/group/topic", response=Envelope, exclude_unset=True, summary="Set a group's description")
def set_topic(request, payload: TopicIn):
    ctx = acting(request, write=True)
    topic = services.set_group_topic(group_id=payload.group_id, topic=payload.topic, **ctx.service_kwargs())
    return done("Group description set." if topic else "Group description removed.")


class PhotoForm(Schema):
    group_id: GroupJid
    photo_url: MediaUrl = None


@router.post(
    "/group/photo",
    response=Envelope,
    summary="Set a group's picture (multipart: photo or image file, or photo_url)",
)
def set_photo(
    request,
    data: Form[PhotoForm],
    photo: File[UploadedFile] = None,
    image: File[UploadedFile] = None,
):
    ctx = acting(request, write=True)
    if photo is not None and image is not None:
        raise field_error("photo", "send the picture once, as `photo` (or `image`), not both.")
    media = media_input(kind="photo", field="photo", upload=photo or image, url=data.photo_url)
    picture_id = services.set_group_photo(group_id=data.group_id, image=media.data, **ctx.service_kwargs())
    return ok({"group_id": data.group_id, "picture_id": picture_id}, "Group picture set.")


class LockedIn(GroupIn):
    locked: bool = Field(description="true: only admins may edit the group's info.")


@router.post(
    "/group/locked",
    response=Envelope,
    exclude_unset=True,
    summary="Only admins edit group info (or everyone)",
)
def set_locked(request, payload: LockedIn):
    ctx = acting(request, write=True)
    locked = services.set_group_locked(
        group_id=payload.group_id, locked=payload.locked, **ctx.service_kwargs()
    )
    return done(
        "Group locked: only admins edit its info." if locked else "Group unlocked: everyone edits its info."
    )


class AnnounceIn(GroupIn):
    announce: bool = Field(description="true: only admins may send messages.")


@router.post(
    "/group/announce",
    response=Envelope,
    exclude_unset=True,
    summary="Only admins send messages (or everyone)",
)
def set_announce(request, payload: AnnounceIn):
    ctx = acting(request, write=True)
    announce = services.set_group_announce(
        group_id=payload.group_id, announce=payload.announce, **ctx.service_kwargs()
    )
    return done("Announce mode on: only admins send." if announce else "Announce mode off: everyone sends.")
