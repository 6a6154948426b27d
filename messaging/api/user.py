"""GET/POST /user/*: people on WhatsApp (info, avatar, business profile, "is on WhatsApp") and our own profile."""

from __future__ import annotations

from dataclasses import asdict

from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile
from pydantic import ConfigDict, Field

from messaging.api.common import (
    AUTH,
    ApiError,
    Envelope,
    acting,
    done,
    field_error,
    media_input,
    ok,
)
from messaging.api.fields import Jid, JsonObject, MediaUrl, PhoneDigits, text
from messaging.services import profile
from messaging.whatsapp import protocol

router = Router(tags=["user"], auth=AUTH)


def _rows(items) -> list[dict]:
    return [asdict(item) for item in items or []]


@router.get("/user/info", response=Envelope, summary="A WhatsApp user's info")
def user_info(request, phone: Jid):
    target = phone
    ctx = acting(request)
    info, name = profile.user_info(jid=target, **ctx.reader_kwargs())
    if info is None:
        raise ApiError(400, "INVALID_JID", f"phone: {target} is not on WhatsApp.", field="phone")
    user = protocol.jid_user(info.jid) if info.jid.endswith(f"@{protocol.USER_SERVER}") else ""
    return ok(
        {
            "data": [
                {
                    "jid": info.jid,
                    "name": name,
                    "verified_name": info.verified_name,
                    "status": info.status,
                    "picture_id": info.picture_id,
                    "devices": [_jid_fields(d) for d in info.devices],
                }
            ],
            "resolved_phone": user,
            "resolved_lid": protocol.jid_user(info.jid)
            if info.jid.endswith(f"@{protocol.LID_SERVER}")
            else "",
        }
    )


def _jid_fields(jid: str) -> dict:
    """A device JID ("user[.agent][:device]@server") as whatsmeow's JID struct, which the peer's clients parse."""
    user, _, server = jid.partition("@")
    user, _, device = user.partition(":")
    user, _, agent = user.partition(".")
    return {
        "User": user,
        "Agent": int(agent or 0),
        "Device": int(device or 0),
        "Server": server,
        "AD": bool(device or agent),
    }


@router.get("/user/avatar", response=Envelope, summary="A user's (or group's) profile picture")
def user_avatar(request, phone: Jid, is_preview: bool = False, is_community: bool = False):
    target = phone
    ctx = acting(request)
    avatar = profile.avatar_of(jid=target, preview=is_preview, community=is_community, **ctx.reader_kwargs())
    if avatar is None:
        raise ApiError(
            404, "NOT_FOUND", f"phone: {target} has no profile picture (or hides it).", field="phone"
        )
    return ok(asdict(avatar))


class AvatarForm(Schema):
    # Accepted only so a clear error names the field: the picture itself is a file.
    avatar_url: MediaUrl = None


@router.post(
    "/user/avatar", response=Envelope, exclude_unset=True, summary="Change this number's profile picture"
)
def set_avatar(
    request,
    data: Form[AvatarForm],
    avatar: File[UploadedFile] = None,
    image: File[UploadedFile] = None,
):
    ctx = acting(request, write=True)
    if avatar is not None and image is not None:
        raise field_error("avatar", "send the picture once, as `avatar` (or `image`), not both.")
    media = media_input(kind="avatar", field="avatar", upload=avatar or image, url=data.avatar_url)
    profile.set_avatar(image=media.data, **ctx.service_kwargs())
    return done("Profile picture changed.")


class PushNameIn(JsonObject):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["push_name"]}, {"required": ["pushname"]}]}
    )

    push_name: text(25) = None
    pushname: text(25) = Field(None, description="The same as push_name (older clients); push_name wins.")


@router.post("/user/pushname", response=Envelope, exclude_unset=True, summary="Change the name others see")
def set_push_name(request, payload: PushNameIn):
    ctx = acting(request, write=True)
    name = payload.push_name if payload.push_name is not None else payload.pushname
    if name is None:
        raise field_error("push_name", "is required.")
    name = profile.set_push_name(name=name, **ctx.service_kwargs())
    return done(f"Push name changed to {name}.")


@router.get("/user/my/privacy", response=Envelope, summary="This number's privacy settings")
def my_privacy(request):
    ctx = acting(request)
    return ok(asdict(profile.read_own(what="privacy", **ctx.reader_kwargs())))


@router.get("/user/my/groups", response=Envelope, summary="Groups this number is in")
def my_groups(request):
    ctx = acting(request)
    return ok({"data": _rows(profile.read_own(what="groups", **ctx.reader_kwargs()))})


@router.get("/user/my/newsletters", response=Envelope, summary="Newsletters this number follows")
def my_newsletters(request):
    ctx = acting(request)
    return ok({"data": _rows(profile.read_own(what="newsletters", **ctx.reader_kwargs()))})


@router.get("/user/my/contacts", response=Envelope, summary="This number's contacts")
def my_contacts(request):
    ctx = acting(request)
    return ok({"data": _rows(profile.read_own(what="contacts", **ctx.reader_kwargs()))})


@router.get("/user/check", response=Envelope, summary="Is this number on WhatsApp?")
def check(request, phone: PhoneDigits):
    digits = phone
    ctx = acting(request)
    row = profile.check_number(phone=digits, **ctx.reader_kwargs())
    return ok(
        {
            "phone": digits,
            "is_on_whatsapp": bool(row and row.is_in),
            "is_in_whatsapp": bool(row and row.is_in),
            "jid": row.jid if row and row.is_in else "",
            "verified_name": row.verified_name if row else "",
        }
    )


@router.get("/user/business-profile", response=Envelope, summary="A business account's profile")
def business_profile(request, phone: Jid):
    target = phone
    ctx = acting(request)
    return ok(asdict(profile.business_profile(jid=target, **ctx.reader_kwargs())))
