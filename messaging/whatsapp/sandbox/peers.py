"""Simulated peers driven from outside: what the dashboard's simulated phone and the tests make them do."""

from __future__ import annotations

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.protocol import (
    ChatPresenceState,
    InvalidRequest,
    MessageKind,
    NotFound,
    ParticipantAction,
    ParticipantResult,
    Presence,
)
from messaging.whatsapp.sandbox import tenancy
from messaging.whatsapp.sandbox.actors import _Actor, _outgoing_from
from messaging.whatsapp.sandbox.linking import (
    _phone_account,
)
from messaging.whatsapp.sandbox.network import (
    ADMIN,
    DEFAULT_PRIVACY,
    MEMBER,
    _jid,
    _phone,
    _user_jid,
    now,
)
from messaging.whatsapp.sandbox.seeding import (
    _network,
)
from messaging.whatsapp.sandbox.waking import _wake_sync


def _peer(phone: str) -> _Actor:
    _network()
    actor = _Actor(_phone(phone, field="from_phone"))
    actor.account()  # must exist
    return actor


def peer_send(
    *,
    from_phone: str,
    to_jid: str,
    text: str = "",
    kind: str = "text",
    organization_id: int | None = None,
    **extra,
) -> str:
    """A simulated account sends a message (text, image, audio, video, document, sticker, location, contact,
    poll, link) to `to_jid` (a device's number or a group); the devices concerned receive it. Returns its ID.

    extra: caption, media (bytes; generated if absent), mime_type, filename, reply_to_id, quoted_body,
    latitude, longitude, contact_name, contact_phone, poll_question, poll_options, view_once, is_forwarded, id.
    `organization_id`: the simulated phone is that organization's, which may not write as another's number.
    """
    actor = _peer(from_phone)
    if organization_id is not None:
        tenancy.require_send_as(actor.phone, organization_id=organization_id)
    try:
        kind = MessageKind(kind)
    except ValueError:
        raise InvalidRequest(_noop("kind: %(kind)s is not a message kind") % {"kind": repr(kind)}) from None
    message = _outgoing_from(actor, to_jid, text, kind, extra)
    result, _ = actor.send(message)
    _wake_sync(actor.wake)
    return result.id


def peer_react(*, from_phone: str, chat: str, message_id: str, emoji: str = "👍") -> str:
    """A simulated account reacts to a message in its chat `chat` (the device's number, or a group)."""
    actor = _peer(from_phone)
    result = actor.react(chat=chat, message_id=message_id, emoji=emoji)
    _wake_sync(actor.wake)
    return result.id


def peer_vote(*, from_phone: str, chat: str, message_id: str, options: list[str]) -> str:
    """A simulated account votes on a poll in its chat `chat` (option texts; none withdraws its vote)."""
    actor = _peer(from_phone)
    result = actor.vote(chat=chat, message_id=message_id, options=options)
    _wake_sync(actor.wake)
    return result.id


def peer_edit(*, from_phone: str, chat: str, message_id: str, text: str) -> str:
    actor = _peer(from_phone)
    result = actor.edit(chat=chat, message_id=message_id, text=text)
    _wake_sync(actor.wake)
    return result.id


def peer_revoke(*, from_phone: str, chat: str, message_id: str) -> str:
    actor = _peer(from_phone)
    result = actor.revoke(chat=chat, message_id=message_id)
    _wake_sync(actor.wake)
    return result.id


def peer_read(*, from_phone: str, chat: str, message_ids: list[str] | None = None) -> list[str]:
    """A simulated account reads messages sent to it in `chat` (all unread ones if no IDs are given)."""
    from messaging.models import SandboxMessage

    actor = _peer(from_phone)
    chat = _jid(chat, field="chat")
    if message_ids is None:
        rows = SandboxMessage.objects.filter(to=chat if p.is_group(chat) else actor.jid)
        if not p.is_group(chat):
            rows = rows.filter(sender=chat)
        message_ids = [
            r.msg_id for r in rows.exclude(sender=actor.jid).order_by("id") if actor.jid not in r.read_by
        ]
        if not message_ids:
            return []
    actor.mark_read(chat=chat, message_ids=message_ids)
    _wake_sync(actor.wake)
    return list(message_ids)


def peer_typing(*, from_phone: str, chat: str, composing: bool = True, media: str = "") -> None:
    actor = _peer(from_phone)
    state = ChatPresenceState.COMPOSING if composing else ChatPresenceState.PAUSED
    actor.chat_presence(chat=chat, state=state, media=media)
    _wake_sync(actor.wake)


def peer_presence(*, from_phone: str, available: bool = True) -> None:
    """A simulated account comes online or goes offline; devices that have it as a contact are told."""
    from messaging.models import SandboxAccount

    actor = _peer(from_phone)
    actor.set_presence(Presence.AVAILABLE if available else Presence.UNAVAILABLE)
    watchers = [a.phone for a in SandboxAccount.objects.exclude(phone=actor.phone) if actor.jid in a.contacts]
    stamp = now()
    actor._deliver(
        list(watchers),
        p.PresenceEvent(jid=actor.jid, available=available, last_seen=None if available else stamp),
    )
    _wake_sync(actor.wake)


def peer_join_request(*, from_phone: str, group: str) -> str:
    """A simulated account follows a group's invite link (`group`: the group JID or its link/code).

    Where admins approve joins it asks (JoinRequestEvent to the admins), else it joins. Returns the group JID.
    """
    from messaging.models import SandboxGroup

    actor = _peer(from_phone)
    if "@" in group:
        row = SandboxGroup.objects.filter(jid=_jid(group)).first()
        if row is None:
            raise NotFound(_noop("There is no group %(group)s.") % {"group": group})
        group = row.invite_code
    jid = actor.join_with_link(group)
    _wake_sync(actor.wake)
    return jid


def peer_create_group(*, owner_phone: str, name: str, participants: list[str]) -> str:
    """A simulated account creates a group (the device's number may be among `participants`); returns its JID."""
    actor = _peer(owner_phone)
    info = actor.create_group(name=name, participants=participants)
    _wake_sync(actor.wake)
    return info.jid


def peer_group_action(
    *, from_phone: str, group: str, participants: list[str], action: str
) -> list[ParticipantResult]:
    """A simulated admin adds/removes/promotes/demotes participants (the same rules as for a device)."""
    actor = _peer(from_phone)
    results = actor.update_participants(
        jid=group, participants=participants, action=ParticipantAction(action)
    )
    _wake_sync(actor.wake)
    return results


def add_group_member(*, group: str, phone: str, admin: bool = False) -> None:
    """Put `phone` into `group` directly (setting up demos and tests, not a WhatsApp action)."""
    from messaging.models import SandboxGroup

    _network()
    jid = _user_jid(_phone(phone))
    row = SandboxGroup.objects.filter(jid=_jid(group)).first()
    if row is None:
        raise NotFound(_noop("There is no group %(group)s.") % {"group": group})
    _phone_account(p.jid_user(jid))
    row.participants = {**row.participants, jid: ADMIN if admin else MEMBER}
    row.save(update_fields=["participants"])


def set_join_approval(*, group: str, approval: bool = True) -> None:
    """Turn "admins approve new participants" on or off for a group (not a protocol operation of ours)."""
    from messaging.models import SandboxGroup

    _network()
    if not SandboxGroup.objects.filter(jid=_jid(group)).update(join_approval=bool(approval)):
        raise NotFound(_noop("There is no group %(group)s.") % {"group": group})


def follow_newsletter(*, phone: str, jid: str) -> None:
    _network()
    actor = _Actor(_phone(phone))
    _phone_account(actor.phone)
    actor.follow_newsletter(jid=jid)


def set_privacy(*, phone: str, **settings_) -> dict:
    """Change an account's privacy settings (keys of PrivacySettings; values all / contacts / none)."""
    actor = _peer(phone)
    account = actor.account()
    unknown = set(settings_) - set(DEFAULT_PRIVACY)
    if unknown:
        raise InvalidRequest(
            _noop("unknown privacy settings: %(join)s") % {"join": ", ".join(sorted(unknown))}
        )
    account.privacy = {**DEFAULT_PRIVACY, **account.privacy, **settings_}
    account.save(update_fields=["privacy"])
    return account.privacy


def peer_hide_phone(*, phone: str, hidden: bool = True) -> str:
    """A simulated account hides its number (WhatsApp's hidden user IDs) or shares it again; returns its LID.

    Hidden, the devices it writes to see only its `…@lid` (the chat arrives as an unknown number). Shared
    again, its later messages carry both its number and its LID, and the devices it has written to or been
    written to by are told which number the LID is (a `LidMappingEvent`): they find its number then.
    """
    import hashlib

    from messaging.models import SandboxMessage

    actor = _peer(phone)
    account = actor.account()
    if not account.lid:
        # Deterministic, and like WhatsApp's: 15 digits that say nothing about the number.
        account.lid = str(10**14 + int(hashlib.sha256(account.phone.encode()).hexdigest(), 16) % (9 * 10**14))
    account.shares_phone = not hidden
    account.save(update_fields=["lid", "shares_phone"])
    lid = f"{account.lid}@{p.LID_SERVER}"
    if not hidden:
        partners = set(SandboxMessage.objects.filter(sender=actor.jid).values_list("to", flat=True))
        partners |= set(SandboxMessage.objects.filter(to=actor.jid).values_list("sender", flat=True))
        phones = [p.jid_user(j) for j in partners if j.endswith("@" + p.USER_SERVER) and j != actor.jid]
        actor._deliver(phones, p.LidMappingEvent(lid=lid, phone=actor.jid))
        _wake_sync(actor.wake)
    return lid


def phone_edit_label(
    *, phone: str, label_id: str, name: str = "", color: int = 0, deleted: bool = False
) -> None:
    """On the simulated phone of `phone`: a label made, renamed, recoloured or deleted. Every device linked
    to that number hears of it (label.edit), as WhatsApp syncs labels to linked devices."""
    actor = _peer(phone)
    label_id = str(label_id).strip()
    if not label_id:
        raise InvalidRequest(_noop("label_id: required."))
    if not 0 <= int(color) < len(p.LABEL_COLORS):
        raise InvalidRequest(
            _noop("color: WhatsApp's palette has %(count)s colours (0-19).") % {"count": len(p.LABEL_COLORS)}
        )
    event = p.LabelEditEvent(label_id=label_id, name=name, color=int(color), deleted=deleted, timestamp=now())
    actor._deliver([actor.phone], event)
    _wake_sync(actor.wake)


def phone_label_chat(*, phone: str, chat: str, label_id: str, labeled: bool = True) -> None:
    """On the simulated phone of `phone`: a label put on a chat or taken off it (label.association)."""
    actor = _peer(phone)
    label_id = str(label_id).strip()
    if not label_id:
        raise InvalidRequest(_noop("label_id: required."))
    event = p.LabelAssociationEvent(
        chat=_jid(chat, field="chat"), label_id=label_id, labeled=labeled, timestamp=now()
    )
    actor._deliver([actor.phone], event)
    _wake_sync(actor.wake)
