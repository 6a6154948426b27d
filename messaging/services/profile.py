"""Writes to a linked number's own profile and presence (avatar, push name, presence, chat presence, newsletters).

Same shape as the other services: tenant check (Http404), then `gateway.call` outside any transaction, then our
copy and the audit entry. Bad input raises ValidationError naming the field; WhatsApp's refusals propagate as
`protocol.WhatsAppError`. The reads the pages show (a profile section, a number looked up, a chat's picture) are
here too, so that a page reaches WhatsApp through a service as a write does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

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
    "PROFILE_SECTIONS",
    "read_profile_section",
    "NumberLookup",
    "look_up_number",
    "picture_url",
    "user_info",
    "avatar_of",
    "check_number",
    "business_profile",
    "OWN_LISTS",
    "read_own",
    "newsletter_posts",
]

logger = logging.getLogger(__name__)

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


# ------------------------------------------------------------------------------------------ reads

PROFILE_SECTIONS = ("avatar", "privacy", "contacts", "newsletters")
PICTURE_FOUND_SECONDS = 3600  # WhatsApp's picture links last longer than this
PICTURE_MISSING_SECONDS = 300  # no picture, or the number was not reachable: ask again a little later


def _read_device(organization, device):
    """The device of a read, which the page found through the organization: checked again, without a query."""
    if device is None or device.organization_id != organization.pk:
        raise Http404("No such device in this organization.")
    return device


def read_profile_section(*, organization, device, section: str):
    """One section of the number's own profile, read live: its avatar (None while not linked), its privacy
    settings, its contacts (by name) or the newsletters it follows."""
    device = _read_device(organization, device)
    if section not in PROFILE_SECTIONS:
        raise Http404("No such section.")
    if section == "avatar":
        return gateway.call(device, "avatar", jid=device.jid) if device.jid else None
    if section == "privacy":
        return gateway.call(device, "privacy")
    if section == "contacts":
        return sorted(
            gateway.call(device, "contacts"), key=lambda c: (c.full_name or c.push_name or c.jid).lower()
        )
    return gateway.call(device, "newsletters")


@dataclass
class NumberLookup:
    check: object = None  # protocol.NumberCheck, None for a group
    info: object = None  # protocol.UserInfo
    avatar: object = None  # protocol.Avatar


def look_up_number(*, organization, device, jid: str) -> NumberLookup:
    """Whether a number is on WhatsApp, then (if it is, or it is a group) its user info and picture."""
    device = _read_device(organization, device)
    found = NumberLookup()
    checks = (
        gateway.call(device, "check_numbers", phones=[protocol.jid_user(jid)])
        if not protocol.is_group(jid)
        else []
    )
    found.check = check = checks[0] if checks else None
    if check is None or check.is_in:  # nothing more to learn about a number that is not on WhatsApp
        infos = gateway.call(device, "user_info", jids=[check.jid if check and check.jid else jid])
        found.info = infos[0] if infos else None
        found.avatar = gateway.call(device, "avatar", jid=jid)
    return found


def picture_url(*, organization, device, jid: str) -> str:
    """The picture of a chat or a person ("" for none), for the dashboard's avatars: cached per number and JID
    (a group's picture depends on who asks), asked of WhatsApp once an hour at most. Never raises on WhatsApp's
    side: offline, hidden or unknown, the initials do."""
    device = _read_device(organization, device)
    key = f"avatar:{device.pk}:{jid}"
    url = cache.get(key)
    if url is None:
        try:
            found = gateway.call(device, "avatar", jid=jid, preview=True)
        except Exception:  # noqa: BLE001 - offline, hidden, unknown: the initials do
            logger.debug("no avatar of %s through device %s", jid, device.pk, exc_info=True)
            found = None
        url = (found.url if found is not None else "") or ""
        cache.set(key, url, PICTURE_FOUND_SECONDS if url else PICTURE_MISSING_SECONDS)
    return url


# ------------------------------------------------------------------------------------------ reads (the API)


def user_info(*, organization, device, jid: str) -> tuple[object, str]:
    """WhatsApp's info on `jid` (protocol.UserInfo; None when it is not on WhatsApp) and the name this number
    knows it by ("" for none)."""
    device = _read_device(organization, device)
    found = gateway.call(device, "user_info", jids=[jid])
    if not found:
        return None, ""
    info = found[0]
    contact = device.contacts.filter(jid=info.jid).first()
    name = (contact.name or contact.push_name or contact.business_name) if contact else ""
    return info, name


def avatar_of(*, organization, device, jid: str, preview: bool = False, community: bool = False):
    """A person's or group's profile picture (protocol.Avatar), None when there is none or it is hidden."""
    device = _read_device(organization, device)
    return gateway.call(device, "avatar", jid=jid, preview=preview, community=community)


def check_number(*, organization, device, phone: str):
    """Whether `phone` (digits) is on WhatsApp: protocol.NumberCheck, None when WhatsApp said nothing of it."""
    device = _read_device(organization, device)
    found = gateway.call(device, "check_numbers", phones=[phone])
    return found[0] if found else None


def business_profile(*, organization, device, jid: str):
    """A business account's profile (protocol.BusinessProfile)."""
    device = _read_device(organization, device)
    return gateway.call(device, "business_profile", jid=jid)


# The number's own lists, by the name the API reads them under: what the gateway is asked.
OWN_LISTS = {
    "privacy": "privacy",
    "groups": "joined_groups",
    "newsletters": "newsletters",
    "contacts": "contacts",
}


def read_own(*, organization, device, what: str):
    """One of the number's own lists, as WhatsApp gives it (OWN_LISTS; privacy is one settings object)."""
    device = _read_device(organization, device)
    if what not in OWN_LISTS:
        raise Http404("No such list.")
    return gateway.call(device, OWN_LISTS[what])


def newsletter_posts(*, organization, device, newsletter: str, count: int = 50, before: int = 0) -> list:
    """A newsletter's latest posts (protocol.NewsletterPost), newest first, from WhatsApp."""
    device = _read_device(organization, device)
    jid = normalize_chat(newsletter, field="newsletter_id")
    return gateway.call(device, "newsletter_messages", jid=jid, count=count, before=before)
