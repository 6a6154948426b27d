"""The write path of groups: create, participants, join by link, join requests, leave, settings, invite link.

Each function checks the device belongs to the organization (Http404 otherwise), validates its input
(ValidationError naming the field: `group_id`, `participants`, `link`, `name`, `topic`, `photo`), runs the
operation on the worker holding the device through `gateway.call` (outside any transaction), then records the
audit entry. WhatsApp's refusals (not an admin, unknown group...) propagate as `protocol.WhatsAppError`.
Groups are read live (`joined_groups`, `group_info`, `join_requests`, `group_info_from_link`, the reads the pages
and the API make); nothing of theirs is stored but the Chat.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from accounts.services import record_audit
from messaging import gateway
from messaging.models import Chat
from messaging.services.messages import device_of
from messaging.whatsapp import protocol
from waportal.i18n import localize

__all__ = [
    "normalize_group",
    "normalize_participants",
    "invite_code",
    "create_group",
    "update_participants",
    "join_group_with_link",
    "answer_join_requests",
    "leave_group",
    "set_group_name",
    "set_group_topic",
    "set_group_photo",
    "set_group_locked",
    "set_group_announce",
    "group_invite_link",
    "joined_groups",
    "group_info",
    "join_requests",
    "group_info_from_link",
]

MAX_GROUP_NAME = 100  # WhatsApp's subject limit
MAX_GROUP_TOPIC = 2048
MAX_PARTICIPANTS = 1024
MAX_PHOTO_BYTES = 5 * 1024 * 1024
INVITE_PREFIX = "https://chat.whatsapp.com/"
_INVITE_RE = re.compile(r"^(?:https?://)?chat\.whatsapp\.com/(?:invite/)?(?P<code>[A-Za-z0-9_-]{4,64})/?$")
_CODE_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}$")


def normalize_group(value, *, field: str = "group_id") -> str:
    """A group JID (`ID@g.us`, or the bare ID); ValidationError naming `field` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({field: "is required (a group ID like 1203...@g.us)."})
    value = value.strip()
    if "@" not in value:
        value = f"{value}@{protocol.GROUP_SERVER}"
    try:
        jid = protocol.normalize_jid(value)
    except ValueError as exc:
        raise ValidationError({field: localize(str(exc))}) from None
    if not protocol.is_group(jid):
        raise ValidationError({field: f"{jid!r} is not a group ID (like 1203...@g.us)."})
    return jid


def normalize_participants(values, *, field: str = "participants") -> list[str]:
    """Phone numbers or user JIDs, deduplicated in order; ValidationError naming `field` for the first bad one."""
    if isinstance(values, str):
        values = [v for v in re.split(r"[,\n;]", values) if v.strip()]
    if not isinstance(values, list | tuple) or not values:
        raise ValidationError({field: "needs at least one phone number."})
    if len(values) > MAX_PARTICIPANTS:
        raise ValidationError({field: f"at most {MAX_PARTICIPANTS} numbers at once."})
    result: list[str] = []
    for value in values:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValidationError({field: f"{value!r} is not a phone number."})
        try:
            jid = protocol.normalize_jid(str(value))
        except ValueError as exc:
            raise ValidationError({field: localize(str(exc))}) from None
        if not jid.endswith("@" + protocol.USER_SERVER) and not jid.endswith("@" + protocol.LID_SERVER):
            raise ValidationError({field: f"{jid!r} is not a person's number."})
        if jid not in result:
            result.append(jid)
    return result


def invite_code(link) -> str:
    """The code of an invite link (https://chat.whatsapp.com/CODE, or the bare CODE)."""
    link = link.strip() if isinstance(link, str) else ""
    if not link:
        raise ValidationError({"link": f"is required (an invite link like {INVITE_PREFIX}CODE)."})
    if match := _INVITE_RE.match(link):
        return match["code"]
    if _CODE_RE.match(link):
        return link
    raise ValidationError({"link": f"is not a WhatsApp invite link (like {INVITE_PREFIX}CODE)."})


def _audit(organization, action, device, *, actor, api_key, group: str = "", **details) -> None:
    record_audit(
        organization=organization,
        action=action,
        actor=actor,
        api_key=api_key,
        object_type="groups.group",
        object_id=group,
        object_repr=group,
        details={"device_id": device.pk, **details},
    )


def _remember_chat(device, jid: str, name: str = "") -> None:
    chat, created = Chat.objects.get_or_create(
        device=device,
        jid=jid,
        defaults={"organization_id": device.organization_id, "is_group": True, "name": name[:200]},
    )
    if not created and name and chat.name != name:
        Chat.objects.filter(pk=chat.pk).update(name=name[:200])


def _name(value, field: str = "name") -> str:
    value = value.strip() if isinstance(value, str) else ""
    if not value:
        raise ValidationError({field: "is required."})
    if len(value) > MAX_GROUP_NAME:
        raise ValidationError({field: f"is longer than {MAX_GROUP_NAME} characters."})
    return value


def create_group(
    *, organization, device, name: str, participants, actor=None, api_key=None
) -> protocol.GroupInfo:
    """Create a group with this number as its admin; returns the new group's info (its `jid` is the group ID)."""
    device = device_of(organization, device)
    name = _name(name)
    participants = normalize_participants(participants)
    info = gateway.call(device, "create_group", name=name, participants=participants)
    with transaction.atomic():
        _remember_chat(device, info.jid, info.name or name)
        _audit(
            organization,
            "group.create",
            device,
            actor=actor,
            api_key=api_key,
            group=info.jid,
            name=name,
            participants=participants,
        )
    return info


def update_participants(
    *, organization, device, group_id: str, participants, action: str, actor=None, api_key=None
) -> list[protocol.ParticipantResult]:
    """Add, remove, promote or demote members; one result row per participant."""
    device = device_of(organization, device)
    group = normalize_group(group_id)
    participants = normalize_participants(participants)
    try:
        action = protocol.ParticipantAction(str(action))
    except ValueError:
        raise ValidationError({"action": "must be add, remove, promote or demote."}) from None
    results = gateway.call(device, "update_participants", jid=group, participants=participants, action=action)
    with transaction.atomic():
        _audit(
            organization,
            f"group.participants.{action}",
            device,
            actor=actor,
            api_key=api_key,
            group=group,
            participants=participants,
            failed=[r.participant for r in results if r.status != "success"],
        )
    return results


def join_group_with_link(*, organization, device, link: str, actor=None, api_key=None) -> str:
    """Join a group by its invite link; returns the group ID (or asks to join, when the group approves members)."""
    device = device_of(organization, device)
    code = invite_code(link)
    jid = gateway.call(device, "join_with_link", code=code)
    with transaction.atomic():
        if jid:
            _remember_chat(device, jid)
        _audit(organization, "group.join", device, actor=actor, api_key=api_key, group=jid or "", code=code)
    return jid


def answer_join_requests(
    *, organization, device, group_id: str, participants, approve: bool, actor=None, api_key=None
) -> list[protocol.ParticipantResult]:
    """Approve or reject pending requests to join; one result row per participant."""
    device = device_of(organization, device)
    group = normalize_group(group_id)
    participants = normalize_participants(participants)
    results = gateway.call(
        device, "answer_join_requests", jid=group, participants=participants, approve=bool(approve)
    )
    with transaction.atomic():
        _audit(
            organization,
            "group.requests.approve" if approve else "group.requests.reject",
            device,
            actor=actor,
            api_key=api_key,
            group=group,
            participants=participants,
        )
    return results


def leave_group(*, organization, device, group_id: str, actor=None, api_key=None) -> str:
    device = device_of(organization, device)
    group = normalize_group(group_id)
    gateway.call(device, "leave_group", jid=group)
    with transaction.atomic():
        _audit(organization, "group.leave", device, actor=actor, api_key=api_key, group=group)
    return group


def set_group_name(*, organization, device, group_id: str, name: str, actor=None, api_key=None) -> str:
    device = device_of(organization, device)
    group = normalize_group(group_id)
    name = _name(name)
    gateway.call(device, "set_group_name", jid=group, name=name)
    with transaction.atomic():
        Chat.objects.filter(device=device, jid=group).update(name=name[:200])
        _audit(organization, "group.name", device, actor=actor, api_key=api_key, group=group, name=name)
    return name


def set_group_topic(*, organization, device, group_id: str, topic: str, actor=None, api_key=None) -> str:
    """Set the group's description ("" clears it)."""
    device = device_of(organization, device)
    group = normalize_group(group_id)
    if not isinstance(topic, str):
        raise ValidationError({"topic": "must be text."})
    topic = topic.strip()
    if len(topic) > MAX_GROUP_TOPIC:
        raise ValidationError({"topic": f"is longer than {MAX_GROUP_TOPIC} characters."})
    gateway.call(device, "set_group_topic", jid=group, topic=topic)
    with transaction.atomic():
        _audit(organization, "group.topic", device, actor=actor, api_key=api_key, group=group)
    return topic


def set_group_photo(*, organization, device, group_id: str, image: bytes, actor=None, api_key=None) -> str:
    """Set the group's picture; returns the new picture ID."""
    device = device_of(organization, device)
    group = normalize_group(group_id)
    if not image:
        raise ValidationError({"photo": "the image file is empty."})
    if len(image) > MAX_PHOTO_BYTES:
        raise ValidationError({"photo": f"is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB."})
    picture_id = gateway.call(device, "set_group_photo", jid=group, image=bytes(image))
    with transaction.atomic():
        _audit(
            organization,
            "group.photo",
            device,
            actor=actor,
            api_key=api_key,
            group=group,
            picture_id=picture_id,
        )
    return picture_id


def set_group_locked(*, organization, device, group_id: str, locked: bool, actor=None, api_key=None) -> bool:
    """Locked: only admins may edit the group's info."""
    return _set_group_switch(organization, device, group_id, "locked", locked, actor=actor, api_key=api_key)


def set_group_announce(
    *, organization, device, group_id: str, announce: bool, actor=None, api_key=None
) -> bool:
    """Announce: only admins may send messages."""
    return _set_group_switch(
        organization, device, group_id, "announce", announce, actor=actor, api_key=api_key
    )


def _set_group_switch(organization, device, group_id: str, switch: str, on: bool, *, actor, api_key) -> bool:
    """Turn the group's `switch` (locked or announce) on or off through the gateway, and audit it."""
    device = device_of(organization, device)
    group = normalize_group(group_id)
    on = bool(on)
    gateway.call(device, f"set_group_{switch}", jid=group, **{switch: on})
    with transaction.atomic():
        _audit(
            organization, f"group.{switch}", device, actor=actor, api_key=api_key, group=group, **{switch: on}
        )
    return on


def group_invite_link(
    *, organization, device, group_id: str, reset: bool = False, actor=None, api_key=None
) -> str:
    """The group's invite link; `reset=True` revokes the old one first (audited, since it changes the group)."""
    device = device_of(organization, device)
    group = normalize_group(group_id)
    link = gateway.call(device, "invite_link", jid=group, reset=bool(reset))
    if link and not link.startswith("http"):
        link = INVITE_PREFIX + link
    if reset:
        with transaction.atomic():
            _audit(organization, "group.invite_link.reset", device, actor=actor, api_key=api_key, group=group)
    return link


# ------------------------------------------------------------------------------------------ reads


def _read_device(organization, device):
    """The device of a read, which the page or the API key found through the organization: checked again,
    without a query."""
    if device is None or device.organization_id != organization.pk:
        raise Http404("No such device in this organization.")
    return device


def joined_groups(*, organization, device) -> list[protocol.GroupInfo]:
    """The groups the number is in, by name, read live."""
    device = _read_device(organization, device)
    return sorted(gateway.call(device, "joined_groups"), key=lambda g: (g.name or g.jid).lower())


def group_info(*, organization, device, group: str) -> protocol.GroupInfo:
    """A group's info and participants, read live (`group` a group JID the caller checked)."""
    device = _read_device(organization, device)
    return gateway.call(device, "group_info", jid=group)


def join_requests(*, organization, device, group: str) -> list:
    """The requests to join a group waiting for an admin, read live."""
    device = _read_device(organization, device)
    return gateway.call(device, "join_requests", jid=group)


def group_info_from_link(*, organization, device, link: str) -> protocol.GroupInfo:
    """A group's info from its invite link (ValidationError naming `link` for a bad one), without joining."""
    device = _read_device(organization, device)
    return gateway.call(device, "group_info_from_link", code=invite_code(link))
