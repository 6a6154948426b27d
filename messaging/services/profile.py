"""Writes to a linked number's own profile and presence (avatar, push name, presence, chat presence, newsletters).

Same shape as the other services: tenant check (Http404), then `gateway.call` outside any transaction, then our
copy and the audit entry. Bad input raises ValidationError naming the field; WhatsApp's refusals propagate as
`protocol.WhatsAppError`. Reads (user info, privacy, contacts...) are plain `gateway.call(device, op)`.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.services import record_audit
from messaging import gateway
from messaging.services.messages import device_of, normalize_chat
from messaging.whatsapp import protocol

__all__ = [
    "set_avatar",
    "set_push_name",
    "set_presence",
    "send_chat_presence",
    "unfollow_newsletter",
    "CHAT_PRESENCE_ACTIONS",
]

MAX_PUSH_NAME = 25  # WhatsApp's own limit on a profile name
MAX_AVATAR_BYTES = 5 * 1024 * 1024
# The API's words for typing indicators, and the protocol's.
CHAT_PRESENCE_ACTIONS = {
    "start": protocol.ChatPresenceState.COMPOSING,
    "stop": protocol.ChatPresenceState.PAUSED,
    "composing": protocol.ChatPresenceState.COMPOSING,
    "paused": protocol.ChatPresenceState.PAUSED,
}


def _audit(organization, action, device, *, actor, api_key, **details):
    record_audit(
        organization=organization, action=action, actor=actor, api_key=api_key, obj=device, details=details
    )


def set_avatar(*, organization, device, image: bytes, actor=None, api_key=None) -> str:
    """Set the number's profile picture (JPEG/PNG bytes); returns WhatsApp's new picture ID."""
    device = device_of(organization, device)
    if not image:
        raise ValidationError({"avatar": "the image file is empty."})
    if len(image) > MAX_AVATAR_BYTES:
        raise ValidationError({"avatar": f"is larger than {MAX_AVATAR_BYTES // (1024 * 1024)} MB."})
    picture_id = gateway.call(device, "set_avatar", image=bytes(image))
    with transaction.atomic():
        _audit(organization, "profile.avatar", device, actor=actor, api_key=api_key, picture_id=picture_id)
    return picture_id


def set_push_name(*, organization, device, name: str, actor=None, api_key=None) -> str:
    """Set the name others see for this number; returns it as stored."""
    device = device_of(organization, device)
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError({"push_name": "is required."})
    if len(name) > MAX_PUSH_NAME:
        raise ValidationError({"push_name": f"is longer than {MAX_PUSH_NAME} characters."})
    gateway.call(device, "set_push_name", name=name)
    with transaction.atomic():
        type(device).objects.filter(pk=device.pk).update(push_name=name)
        device.push_name = name
        _audit(organization, "profile.push_name", device, actor=actor, api_key=api_key, push_name=name)
    return name


def set_presence(*, organization, device, presence: str, actor=None, api_key=None) -> str:
    """Appear online (`available`) or offline (`unavailable`) to contacts."""
    device = device_of(organization, device)
    try:
        value = protocol.Presence(str(presence or "").strip().lower())
    except ValueError:
        raise ValidationError({"type": "must be 'available' or 'unavailable'."}) from None
    gateway.call(device, "send_presence", presence=value)
    with transaction.atomic():
        _audit(organization, "profile.presence", device, actor=actor, api_key=api_key, presence=str(value))
    return str(value)


def send_chat_presence(
    *, organization, device, chat: str, action: str, media: str = "", actor=None, api_key=None
) -> str:
    """Show (`start`) or stop showing (`stop`) "typing…" in a chat. Not audited: it changes nothing stored."""
    device = device_of(organization, device)
    chat = normalize_chat(chat, field="phone")
    state = CHAT_PRESENCE_ACTIONS.get(str(action or "").strip().lower())
    if state is None:
        raise ValidationError({"action": "must be 'start' or 'stop'."})
    if media not in ("", "audio"):
        raise ValidationError({"media": "must be empty or 'audio'."})
    gateway.call(device, "send_chat_presence", chat=chat, state=state, media=media)
    return str(state)


def unfollow_newsletter(*, organization, device, newsletter: str, actor=None, api_key=None) -> str:
    """Stop following a newsletter (channel); returns its JID."""
    device = device_of(organization, device)
    jid = normalize_chat(newsletter, field="newsletter_id")
    if not jid.endswith("@" + protocol.NEWSLETTER_SERVER):
        raise ValidationError({"newsletter_id": f"{jid!r} is not a newsletter ID (like 1203...@newsletter)."})
    gateway.call(device, "unfollow_newsletter", jid=jid)
    with transaction.atomic():
        _audit(organization, "newsletter.unfollow", device, actor=actor, api_key=api_key, newsletter=jid)
    return jid
