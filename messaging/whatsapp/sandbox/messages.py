"""Messages on the simulated network: what a send must carry, how a stored one reads, who answers it."""

from __future__ import annotations

import re

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.protocol import (
    IncomingMessage,
    InvalidRequest,
    MediaInfo,
    MessageKind,
    OutgoingMessage,
)

_PLAN_FIELDS = ("phone", "kind", "behavior", "registered", "privacy")


def _answer_plan(account, *, behavior: str) -> dict:
    """What a recipient's phone does with a message: it always confirms delivery; a simulated peer also
    reads it (unless its privacy hides read receipts) and answers by its behaviour. A phone that links our
    devices is a person's: it reads when that device marks the message read."""
    peer = account.kind == "peer"
    return {
        "phone": account.phone,
        "behavior": behavior if peer else "",
        "reads": peer and account.privacy.get("read_receipts") != "none",
    }


def _default_mime(kind) -> str:
    return {
        MessageKind.IMAGE: "image/jpeg",
        MessageKind.AUDIO: "audio/ogg; codecs=opus",
        MessageKind.VIDEO: "video/mp4",
        MessageKind.DOCUMENT: "application/octet-stream",
        MessageKind.STICKER: "image/webp",
    }.get(kind, "application/octet-stream")


def _validate_outgoing(m: OutgoingMessage, kind: MessageKind) -> None:
    if kind == MessageKind.TEXT:
        if not (m.text or "").strip():
            raise InvalidRequest(_noop("text: a message needs text"))
        if len(m.text) > 65536:
            raise InvalidRequest(_noop("text: at most 65536 characters"))
    elif kind == MessageKind.LINK:
        if not re.match(r"^https?://\S+$", (m.text or "").strip()):
            raise InvalidRequest(_noop("link: an http(s) link is required"))
    elif kind in p.MEDIA_KINDS:
        if not m.media:
            raise InvalidRequest(_noop("%(kind)s: the file is empty or missing") % {"kind": kind})
        if m.view_once and kind not in (MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO):
            raise InvalidRequest(
                _noop("view_once: only images, videos and voice messages can be viewed once")
            )
    elif kind == MessageKind.CONTACT:
        if not m.contact_name.strip() or not re.sub(r"\D", "", m.contact_phone or ""):
            raise InvalidRequest(_noop("contact: a name and a phone number are required"))
    elif kind == MessageKind.LOCATION:
        if (
            m.latitude is None
            or m.longitude is None
            or not (-90 <= m.latitude <= 90)
            or not (-180 <= m.longitude <= 180)
        ):
            raise InvalidRequest(_noop("location: latitude (-90..90) and longitude (-180..180) are required"))
    elif kind == MessageKind.POLL:
        options = [o.strip() for o in m.poll_options]
        if not m.poll_question.strip():
            raise InvalidRequest(_noop("question: a poll needs a question"))
        if not 2 <= len(options) <= 12 or any(not o for o in options) or len(set(options)) != len(options):
            raise InvalidRequest(_noop("options: a poll needs 2 to 12 different options"))
        if not 1 <= m.poll_max_answer <= len(options):
            raise InvalidRequest(_noop("max_answer: between 1 and the number of options"))
    else:
        raise InvalidRequest(_noop("kind: %(kind)s messages cannot be sent") % {"kind": kind})


def _incoming(row, *, chat: str, from_me: bool, sender_name: str = "") -> IncomingMessage:
    data = row.data or {}
    media = None
    if "media" in data:
        m = data["media"]
        media = MediaInfo(
            mime_type=m["mime_type"],
            size=m["size"],
            filename=m.get("filename", ""),
            sha256=m.get("sha256", ""),
            ref=dict(m["ref"]),
        )
    return IncomingMessage(
        id=row.msg_id,
        chat=chat,
        sender=row.sender,
        sender_name=sender_name,
        from_me=from_me,
        timestamp=row.timestamp,
        kind=MessageKind(row.kind),
        text=row.text,
        caption=row.caption,
        media=media,
        view_once=bool(data.get("view_once")),
        is_forwarded=bool(data.get("is_forwarded")),
        reply_to_id=data.get("reply_to_id", ""),
        quoted_body=data.get("quoted_body", ""),
        latitude=data.get("latitude"),
        longitude=data.get("longitude"),
        contact_name=data.get("contact_name", ""),
        contact_vcard=data.get("contact_vcard", ""),
        poll_question=data.get("poll_question", ""),
        poll_options=list(data.get("poll_options", [])),
    )
