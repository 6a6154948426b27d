"""Groups on the simulated network: the half of an actor that reads, creates, changes and leaves them."""

from __future__ import annotations

import secrets

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.protocol import (
    Forbidden,
    GroupInfo,
    GroupParticipant,
    InvalidRequest,
    JoinRequest,
    NotFound,
    ParticipantAction,
    ParticipantResult,
)
from messaging.whatsapp.sandbox.media import _is_image
from messaging.whatsapp.sandbox.network import (
    ADMIN,
    GROUP_NAME_MAX,
    GROUP_TOPIC_MAX,
    INVITE_PREFIX,
    MEMBER,
    SUPERADMIN,
    _invite_code,
    _jid,
    now,
)

# What only an admin may do to participants, as the refusal words it ("Only group admins can ...").
_PARTICIPANT_ACTIONS = {
    ParticipantAction.ADD: _noop("add participants"),
    ParticipantAction.REMOVE: _noop("remove participants"),
    ParticipantAction.PROMOTE: _noop("promote participants"),
    ParticipantAction.DEMOTE: _noop("demote participants"),
}


class _GroupActor:
    """The group rules of an `_Actor` (which brings `jid`, `_deliver` and the rest of the plumbing)."""

    # -- plumbing

    def _group(self, jid: str, *, member: bool = True):
        from messaging.models import SandboxGroup

        jid = _jid(jid)
        if not p.is_group(jid):
            raise InvalidRequest(_noop("jid: %(jid)s is not a group (group IDs end in @g.us)") % {"jid": jid})
        group = SandboxGroup.objects.filter(jid=jid).first()
        if group is None:
            raise NotFound(_noop("There is no group %(jid)s.") % {"jid": jid})
        if member and self.jid not in group.participants:
            raise Forbidden(_noop("You are not a participant of this group."))
        return group

    def _is_admin(self, group) -> bool:
        return group.participants.get(self.jid) in (ADMIN, SUPERADMIN)

    def _require_admin(self, group, what: str) -> None:
        if not self._is_admin(group):
            raise Forbidden(_noop("Only group admins can %(what)s.") % {"what": what})

    def _group_event(self, group, change: p.GroupChange, *, also: list[str] = (), **fields) -> None:
        event = p.GroupChangedEvent(group=group.jid, change=change, actor=self.jid, timestamp=now(), **fields)
        phones = [p.jid_user(j) for j in [*group.participants, *also]]
        self._deliver(phones, event, include_self=True)

    # -- groups

    def create_group(self, *, name: str, participants: list[str]) -> GroupInfo:
        from messaging.models import SandboxAccount, SandboxGroup

        name = (name or "").strip()
        if not name:
            raise InvalidRequest(_noop("name: a group name is required"))
        if len(name) > GROUP_NAME_MAX:
            raise InvalidRequest(_noop("name: at most %(max)s characters") % {"max": GROUP_NAME_MAX})
        members = {self.jid: SUPERADMIN}
        for value in participants or []:
            jid = _jid(value, field="participants")
            account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
            if account is None or jid == self.jid:
                continue  # WhatsApp leaves out numbers it does not know
            if account.privacy.get("group_add") in ("contacts", "none") and self.jid not in account.contacts:
                continue  # their privacy says they must be invited instead
            members[jid] = MEMBER
        group = SandboxGroup.objects.create(
            jid=f"120363{secrets.randbelow(10**12):012d}@{p.GROUP_SERVER}",
            name=name,
            owner=self.jid,
            created_at=now(),
            invite_code=secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22],
            participants=members,
        )
        self._group_event(group, p.GroupChange.PARTICIPANTS, action="add", participants=list(members))
        return _group_info(group)

    def update_participants(
        self, *, jid: str, participants: list[str], action: ParticipantAction
    ) -> list[ParticipantResult]:
        from messaging.models import SandboxAccount

        group = self._group(jid)
        action = ParticipantAction(action)
        self._require_admin(group, _PARTICIPANT_ACTIONS[action])
        if not participants:
            raise InvalidRequest(_noop("participants: at least one participant is required"))
        results, done = [], []
        members = dict(group.participants)
        for value in participants:
            try:
                target = _jid(value, field="participants")
            except InvalidRequest as exc:
                results.append(ParticipantResult(participant=value, status="error", message=exc.message))
                continue
            error = ""
            role = members.get(target)
            if action == ParticipantAction.ADD:
                account = SandboxAccount.objects.filter(phone=p.jid_user(target), registered=True).first()
                if account is None:
                    error = "not on WhatsApp"
                elif role is not None:
                    error = "already a participant"
                elif (
                    account.privacy.get("group_add") in ("contacts", "none")
                    and self.jid not in account.contacts
                ):
                    error = "their privacy settings do not allow you to add them; send an invite link"
                else:
                    members[target] = MEMBER
            elif role is None:
                error = "not a participant"
            elif action == ParticipantAction.REMOVE:
                if role == SUPERADMIN:
                    error = "the group's creator cannot be removed"
                else:
                    members.pop(target)
            elif action == ParticipantAction.PROMOTE:
                if role in (ADMIN, SUPERADMIN):
                    error = "already an admin"
                else:
                    members[target] = ADMIN
            elif action == ParticipantAction.DEMOTE:
                if role == SUPERADMIN:
                    error = "the group's creator cannot be demoted"
                elif role != ADMIN:
                    error = "not an admin"
                else:
                    members[target] = MEMBER
            results.append(
                ParticipantResult(participant=target, status="error" if error else "success", message=error)
            )
            if not error:
                done.append(target)
        if done:
            group.participants = members
            group.join_requests = {
                k: v
                for k, v in group.join_requests.items()
                if k not in done or action != ParticipantAction.ADD
            }
            group.save(update_fields=["participants", "join_requests"])
            also = done if action == ParticipantAction.REMOVE else []
            self._group_event(
                group, p.GroupChange.PARTICIPANTS, action=str(action), participants=done, also=also
            )
        return results

    def invite_link(self, *, jid: str, reset: bool = False) -> str:
        group = self._group(jid)
        self._require_admin(group, _noop("see or reset the invite link"))
        if reset or not group.invite_code:
            group.invite_code = secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22]
            group.save(update_fields=["invite_code"])
        return INVITE_PREFIX + group.invite_code

    def join_with_link(self, code: str) -> str:
        """Join (or, where admins approve joins, ask to join) by invite code; returns the group JID."""
        from messaging.models import SandboxGroup

        code = _invite_code(code)
        group = SandboxGroup.objects.filter(invite_code=code).first()
        if group is None:
            raise NotFound(_noop("This invite link is not valid (it was reset, or never existed)."))
        if self.jid in group.participants:
            return group.jid
        stamp = now()
        if group.join_approval:
            if self.jid not in group.join_requests:
                group.join_requests = {**group.join_requests, self.jid: stamp}
                group.save(update_fields=["join_requests"])
                admins = [p.jid_user(j) for j, r in group.participants.items() if r in (ADMIN, SUPERADMIN)]
                self._deliver(
                    admins,
                    p.JoinRequestEvent(
                        group=group.jid, requester=self.jid, action="created", timestamp=stamp
                    ),
                    include_self=True,
                )
            return group.jid
        group.participants = {**group.participants, self.jid: MEMBER}
        group.save(update_fields=["participants"])
        self._group_event(group, p.GroupChange.PARTICIPANTS, action="join", participants=[self.jid])
        return group.jid

    def join_requests(self, *, jid: str) -> list[JoinRequest]:
        group = self._group(jid)
        self._require_admin(group, _noop("see join requests"))
        return [
            JoinRequest(jid=j, requested_at=t)
            for j, t in sorted(group.join_requests.items(), key=lambda kv: kv[1])
        ]

    def answer_join_requests(
        self, *, jid: str, participants: list[str], approve: bool
    ) -> list[ParticipantResult]:
        group = self._group(jid)
        self._require_admin(group, _noop("answer join requests"))
        if not participants:
            raise InvalidRequest(_noop("participants: at least one participant is required"))
        pending = dict(group.join_requests)
        members = dict(group.participants)
        results, done = [], []
        for value in participants:
            try:
                target = _jid(value, field="participants")
            except InvalidRequest as exc:
                results.append(ParticipantResult(participant=value, status="error", message=exc.message))
                continue
            if target not in pending:
                results.append(
                    ParticipantResult(participant=target, status="error", message="no pending request")
                )
                continue
            pending.pop(target)
            if approve:
                members[target] = MEMBER
            done.append(target)
            results.append(ParticipantResult(participant=target, status="success"))
        group.join_requests = pending
        group.participants = members
        group.save(update_fields=["join_requests", "participants"])
        if done and approve:
            self._group_event(group, p.GroupChange.PARTICIPANTS, action="add", participants=done)
        elif done:
            stamp = now()
            for requester in done:
                event = p.JoinRequestEvent(
                    group=group.jid, requester=requester, action="rejected", timestamp=stamp
                )
                self._deliver([p.jid_user(requester)], event)
        return results

    def leave_group(self, *, jid: str) -> None:
        from messaging.models import SandboxGroup

        jid = _jid(jid)
        group = SandboxGroup.objects.filter(jid=jid).first()
        if group is None:
            raise NotFound(_noop("There is no group %(jid)s.") % {"jid": jid})
        if self.jid not in group.participants:
            raise NotFound(_noop("You are not a participant of this group."))
        members = dict(group.participants)
        members.pop(self.jid)
        if members and not any(r in (ADMIN, SUPERADMIN) for r in members.values()):
            heir = next(iter(members))  # WhatsApp makes someone admin when the last admin leaves
            members[heir] = ADMIN
        group.participants = members
        group.save(update_fields=["participants"])
        self._group_event(
            group, p.GroupChange.PARTICIPANTS, action="leave", participants=[self.jid], also=[self.jid]
        )

    def _edit_info(self, jid: str, what: str):
        group = self._group(jid)
        if group.locked and not self._is_admin(group):
            raise Forbidden(
                _noop("Only admins can %(what)s of this group (its info is locked).") % {"what": what}
            )
        return group

    def set_group_name(self, *, jid: str, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise InvalidRequest(_noop("name: a group name is required"))
        if len(name) > GROUP_NAME_MAX:
            raise InvalidRequest(_noop("name: at most %(max)s characters") % {"max": GROUP_NAME_MAX})
        group = self._edit_info(jid, _noop("change the name"))
        group.name = name
        group.save(update_fields=["name"])
        self._group_event(group, p.GroupChange.SUBJECT, name=name)

    def set_group_topic(self, *, jid: str, topic: str) -> None:
        topic = topic or ""
        if len(topic) > GROUP_TOPIC_MAX:
            raise InvalidRequest(_noop("topic: at most %(max)s characters") % {"max": GROUP_TOPIC_MAX})
        group = self._edit_info(jid, _noop("change the description"))
        group.topic = topic
        group.save(update_fields=["topic"])
        self._group_event(group, p.GroupChange.SUBJECT, topic=topic)

    def set_group_photo(self, *, jid: str, image: bytes) -> str:
        if not image or not _is_image(bytes(image)):
            raise InvalidRequest(_noop("image: a JPEG or PNG picture is required"))
        group = self._edit_info(jid, _noop("change the photo"))
        group.picture = bytes(image)
        group.picture_id = str(int(now() * 1000))
        group.save(update_fields=["picture", "picture_id"])
        self._group_event(group, p.GroupChange.SETTINGS)
        return group.picture_id

    def set_group_locked(self, *, jid: str, locked: bool) -> None:
        group = self._group(jid)
        self._require_admin(group, _noop("lock or unlock the group info"))
        group.locked = bool(locked)
        group.save(update_fields=["locked"])
        self._group_event(group, p.GroupChange.SETTINGS, locked=group.locked)

    def set_group_announce(self, *, jid: str, announce: bool) -> None:
        group = self._group(jid)
        self._require_admin(group, _noop("choose who may send messages"))
        group.announce = bool(announce)
        group.save(update_fields=["announce"])
        self._group_event(group, p.GroupChange.SETTINGS, announce=group.announce)


def _group_info(group) -> GroupInfo:
    return GroupInfo(
        jid=group.jid,
        name=group.name,
        topic=group.topic,
        owner=group.owner,
        created_at=group.created_at,
        locked=group.locked,
        announce=group.announce,
        join_approval=group.join_approval,
        participants=[
            GroupParticipant(jid=j, is_admin=r in (ADMIN, SUPERADMIN), is_super_admin=r == SUPERADMIN)
            for j, r in group.participants.items()
        ],
    )


def _joined_groups(jid: str) -> list[GroupInfo]:
    from messaging.models import SandboxGroup

    return [_group_info(g) for g in SandboxGroup.objects.order_by("id") if jid in g.participants]


def _group_info_from_link(code: str) -> GroupInfo:
    """What anyone holding the link sees before joining (whatsmeow's GetGroupInfoFromLink: the group's info)."""
    from messaging.models import SandboxGroup

    group = SandboxGroup.objects.filter(invite_code=_invite_code(code)).first()
    if group is None:
        raise NotFound(_noop("This invite link is not valid (it was reset, or never existed)."))
    return _group_info(group)
