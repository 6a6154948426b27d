"""POST /send/*: every kind of message, stored in the outbox first and answered at once (sent, or queued)."""

from __future__ import annotations

from typing import Annotated, Literal

from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile
from pydantic import Field, WithJsonSchema, field_validator

from messaging.api.common import AUTH, Acting, ApiError, Envelope, acting, media_input, ok, require_linked
from messaging.api.fields import MENTION_PATTERN, HttpUrl, Jid, MediaUrl, PhoneDigits, PollOption, Text, text
from messaging.models import MessageStatus
from messaging.services import profile
from messaging.services.outbox import queue_message
from messaging.whatsapp.protocol import EVERYONE, normalize_jid

router = Router(tags=["send"], auth=AUTH)

FORM_FILE_NOTE = "multipart/form-data: the file, or its URL in the `*_url` field (exactly one)."


class SendResult(Schema):
    message_id: str
    status: str = Field(
        description="`sent`, or `queued` when the device is offline (it goes out once it is back)."
    )


class SendEnvelope(Envelope):
    results: SendResult


def _send(request, outgoing: dict, *, media_field: str = "", ctx: Acting | None = None) -> dict:
    """Store the message in the outbox and answer with its ID and whether it went out already."""
    if ctx is None:
        ctx = acting(request, write=True)
        require_linked(ctx.device)
    request.api_field_names = {"to": "phone", "text": "message", "media": media_field or "media"}
    message = queue_message(
        organization=ctx.organization, device=ctx.device, outgoing=outgoing, actor=None, api_key=ctx.api_key
    )
    if message.status == MessageStatus.FAILED:
        raise ApiError(
            422,
            "SEND_FAILED",
            f"WhatsApp refused the message: {message.error or 'no reason given'}",
            results={"message_id": message.wa_id, "status": "failed"},
        )
    if message.status in (MessageStatus.QUEUED, MessageStatus.SENDING):
        return ok(
            {"message_id": message.wa_id, "status": "queued"},
            "Message queued: the device is not connected right now; it is sent once it is back.",
        )
    return ok({"message_id": message.wa_id, "status": "sent"}, "Message sent.")


# ------------------------------------------------------------------------------------------ JSON sends


# The peer server's `duration`: the message disappears after this many seconds (0: it stays).
Duration = Field(0, ge=0, le=7_776_000, description="Disappearing after this many seconds (0: stays).")


class TextIn(Schema):
    phone: Jid
    message: Text
    reply_message_id: str | None = Field(None, max_length=128)
    is_forwarded: bool = False
    mentions: list[Annotated[str, WithJsonSchema({"type": "string", "pattern": MENTION_PATTERN})]] = Field(
        default_factory=list,
        max_length=1024,
        description='Numbers or JIDs to mention; "@everyone" mentions every member of the group.',
    )
    duration: int = Duration

    @field_validator("mentions")
    @classmethod
    def _mentions(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            if item.strip().lower() == EVERYONE:
                out.append(EVERYONE)
                continue
            try:
                out.append(normalize_jid(item))
            except ValueError as exc:
                raise ValueError(f"{item!r}: {exc}") from None
        return list(dict.fromkeys(out))


@router.post("/send/message", response=SendEnvelope, summary="Send a text message")
def send_message(request, payload: TextIn):
    return _send(
        request,
        {
            "to": payload.phone,
            "kind": "text",
            "text": payload.message,
            "reply_to_id": (payload.reply_message_id or "").strip(),
            "is_forwarded": payload.is_forwarded,
            "mentions": payload.mentions,
            "expiration": payload.duration,
        },
    )


class ContactIn(Schema):
    phone: Jid
    contact_name: text(200)
    contact_phone: PhoneDigits
    is_forwarded: bool = False


@router.post("/send/contact", response=SendEnvelope, summary="Send a contact card")
def send_contact(request, payload: ContactIn):
    return _send(
        request,
        {
            "to": payload.phone,
            "kind": "contact",
            "contact_name": payload.contact_name.strip(),
            "contact_phone": payload.contact_phone,
            "is_forwarded": payload.is_forwarded,
        },
    )


class LinkIn(Schema):
    phone: Jid
    link: HttpUrl
    caption: str = Field("", max_length=65536)
    is_forwarded: bool = False


@router.post("/send/link", response=SendEnvelope, summary="Send a link with a caption")
def send_link(request, payload: LinkIn):
    return _send(
        request,
        {
            "to": payload.phone,
            "kind": "link",
            "text": payload.link,
            "caption": payload.caption,
            "is_forwarded": payload.is_forwarded,
        },
    )


class LocationIn(Schema):
    phone: Jid
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False, description="A number or a numeric string.")
    longitude: float = Field(
        ge=-180, le=180, allow_inf_nan=False, description="A number or a numeric string."
    )
    is_forwarded: bool = False


@router.post("/send/location", response=SendEnvelope, summary="Send a location")
def send_location(request, payload: LocationIn):
    return _send(
        request,
        {
            "to": payload.phone,
            "kind": "location",
            "latitude": payload.latitude,
            "longitude": payload.longitude,
            "is_forwarded": payload.is_forwarded,
        },
    )


class PollIn(Schema):
    phone: Jid
    question: text(255)
    options: list[PollOption] = Field(min_length=2, max_length=12, json_schema_extra={"uniqueItems": True})
    max_answer: int = Field(1, ge=1, le=12, description="At most the number of options.")

    @field_validator("options", mode="before")
    @classmethod
    def _distinct_options(cls, options):
        # As given (uniqueItems); options alike once their blanks are dropped are 422, in send_poll.
        if isinstance(options, list) and all(isinstance(o, str) for o in options):
            if len(set(options)) != len(options):
                raise ValueError("options must be different from each other")
        return options


@router.post("/send/poll", response=SendEnvelope, summary="Send a poll")
def send_poll(request, payload: PollIn):
    # Checks that the document cannot state (options alike but for blanks around them; more answers than
    # options) are 422: the request is as documented, and cannot be done.
    if len({option.strip() for option in payload.options}) != len(payload.options):
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "options: must be different from each other (blanks around an option do not count).",
            field="options",
        )
    if payload.max_answer > len(payload.options):
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "max_answer: must not be more than the number of options.",
            field="max_answer",
        )
    return _send(
        request,
        {
            "to": payload.phone,
            "kind": "poll",
            "poll_question": payload.question.strip(),
            "poll_options": payload.options,
            "poll_max_answer": payload.max_answer,
        },
    )


class PresenceIn(Schema):
    type: Literal["available", "unavailable"]


@router.post(
    "/send/presence", response=Envelope, summary="Appear online (available) or offline (unavailable)"
)
def send_presence(request, payload: PresenceIn):
    ctx = acting(request, write=True)
    presence = profile.set_presence(presence=payload.type, **ctx.service_kwargs())
    return ok({"type": presence}, f"Presence set to {presence}.")


class ChatPresenceIn(Schema):
    phone: Jid
    action: Literal["start", "stop"] = Field(
        description="`start` shows “typing…” in the chat, `stop` ends it."
    )


@router.post("/send/chat-presence", response=Envelope, summary="Show or stop “typing…” in a chat")
def send_chat_presence(request, payload: ChatPresenceIn):
    ctx = acting(request, write=True)
    request.api_field_names = {"chat": "phone"}
    state = profile.send_chat_presence(chat=payload.phone, action=payload.action, **ctx.service_kwargs())
    return ok({"phone": payload.phone, "action": payload.action, "state": state}, "Chat presence sent.")


# ------------------------------------------------------------------------------------------ media sends


class ImageForm(Schema):
    phone: Jid
    caption: str = Field("", max_length=65536)
    view_once: bool = False
    compress: bool = False
    image_url: MediaUrl = None
    is_forwarded: bool = False
    hd: bool = Field(False, description="Send the image as it is (never recompressed).")
    duration: int = Duration


def _media_send(request, *, kind: str, field: str, upload, url, phone, caption="", **extra) -> dict:
    # Auth, role and device first: a read-only key or a wrong device must not make us fetch a URL.
    ctx = acting(request, write=True)
    require_linked(ctx.device)
    media = media_input(kind=kind, field=field, upload=upload, url=url)
    outgoing = {
        "to": phone,
        "kind": "document" if kind == "document" else kind,
        "media": media.file,
        "mime_type": media.mime_type,
        "filename": media.filename,
        "caption": caption or "",
        **extra,
    }
    return _send(request, outgoing, media_field=field, ctx=ctx)


@router.post("/send/image", response=SendEnvelope, summary="Send an image", description=FORM_FILE_NOTE)
def send_image(request, data: Form[ImageForm], image: File[UploadedFile] = None):
    return _media_send(
        request,
        kind="image",
        field="image",
        upload=image,
        url=data.image_url,
        phone=data.phone,
        caption=data.caption,
        view_once=data.view_once,
        compress=data.compress and not data.hd,
        is_forwarded=data.is_forwarded,
        expiration=data.duration,
    )


class VideoForm(Schema):
    phone: Jid
    caption: str = Field("", max_length=65536)
    view_once: bool = False
    compress: bool = False
    video_url: MediaUrl = None
    is_forwarded: bool = False
    gif_playback: bool = Field(False, description="Play it as a GIF (looping, muted).")
    duration: int = Duration


@router.post("/send/video", response=SendEnvelope, summary="Send a video", description=FORM_FILE_NOTE)
def send_video(request, data: Form[VideoForm], video: File[UploadedFile] = None):
    return _media_send(
        request,
        kind="video",
        field="video",
        upload=video,
        url=data.video_url,
        phone=data.phone,
        caption=data.caption,
        view_once=data.view_once,
        compress=data.compress,
        is_forwarded=data.is_forwarded,
        gif_playback=data.gif_playback,
        expiration=data.duration,
    )


class AudioForm(Schema):
    phone: Jid
    audio_url: MediaUrl = None
    is_forwarded: bool = False
    # (Documented as a boolean: a form field is given or not, it cannot be null.)
    ptt: Annotated[bool | None, WithJsonSchema({"type": "boolean"})] = Field(
        None, description="A voice note (true) or a music file (false); unset: by its type."
    )
    duration: int = Duration


@router.post("/send/audio", response=SendEnvelope, summary="Send an audio file", description=FORM_FILE_NOTE)
def send_audio(request, data: Form[AudioForm], audio: File[UploadedFile] = None):
    return _media_send(
        request,
        kind="audio",
        field="audio",
        upload=audio,
        url=data.audio_url,
        phone=data.phone,
        is_forwarded=data.is_forwarded,
        ptt=data.ptt,
        expiration=data.duration,
    )


class FileForm(Schema):
    phone: Jid
    caption: str = Field("", max_length=65536)
    file_url: MediaUrl = None
    is_forwarded: bool = False


@router.post(
    "/send/file", response=SendEnvelope, summary="Send a document (any file)", description=FORM_FILE_NOTE
)
def send_file(request, data: Form[FileForm], file: File[UploadedFile] = None):
    return _media_send(
        request,
        kind="document",
        field="file",
        upload=file,
        url=data.file_url,
        phone=data.phone,
        caption=data.caption,
        is_forwarded=data.is_forwarded,
    )


class StickerForm(Schema):
    phone: Jid
    sticker_url: MediaUrl = None
    is_forwarded: bool = False


@router.post(
    "/send/sticker", response=SendEnvelope, summary="Send a sticker (WebP)", description=FORM_FILE_NOTE
)
def send_sticker(request, data: Form[StickerForm], sticker: File[UploadedFile] = None):
    return _media_send(
        request,
        kind="sticker",
        field="sticker",
        upload=sticker,
        url=data.sticker_url,
        phone=data.phone,
        is_forwarded=data.is_forwarded,
    )
