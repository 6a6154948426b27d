"""The other operations through neonize: users and profile, groups, newsletters."""

from __future__ import annotations

from datetime import timedelta

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.incoming import (
    convert_group,
    convert_newsletter,
    convert_newsletter_post,
    convert_privacy,
)
from messaging.whatsapp.neonize.names import (
    _PARTICIPANT_ERRORS,
    _phone_jid,
    _seconds,
    jid_str,
    neonize_lib,
    to_jid,
)


class Operations:
    """NeonizeClient's queries and settings (see client.py for its state)."""

    # -- users and profile

    async def user_info(self, *, jids: list[str]) -> list[p.UserInfo]:
        if not jids:
            return []
        rows = await self._call(self._client().get_user_info, *[to_jid(j) for j in jids])
        return [
            p.UserInfo(
                jid=jid_str(row.JID),
                status=row.UserInfo.Status,
                picture_id=row.UserInfo.PictureID,
                devices=[jid_str(d, keep_device=True) for d in row.UserInfo.Devices],
                verified_name=row.UserInfo.VerifiedName.Details.verifiedName,
            )
            for row in rows
        ]

    async def avatar(self, *, jid: str, preview: bool = False, community: bool = False) -> p.Avatar | None:
        np = neonize_lib().np
        params = np.GetProfilePictureParams(Preview=preview, ExistingID="", IsCommunity=community)
        try:
            picture = await self._call(self._client().get_profile_picture, to_jid(jid), params)
        except (p.NotFound, p.Forbidden):  # no picture, or one hidden from us: nothing to show
            return None
        if not picture.URL:
            return None
        return p.Avatar(
            url=picture.URL,
            id=picture.ID,
            type=picture.Type or ("preview" if preview else "image"),
            direct_path=picture.DirectPath,
        )

    async def set_avatar(self, *, image: bytes) -> str:
        return await self._call(self._client().set_profile_photo, image)

    async def set_push_name(self, *, name: str) -> None:
        await self._call(self._client().set_profile_name, name)

    async def privacy(self) -> p.PrivacySettings:
        return convert_privacy(await self._call(self._client().get_privacy_settings))

    async def contacts(self) -> list[p.ContactInfo]:
        rows = await self._call(self._client().contact.get_all_contacts)
        return [
            p.ContactInfo(
                jid=jid_str(row.JID),
                first_name=row.Info.FirstName,
                full_name=row.Info.FullName,
                push_name=row.Info.PushName,
                business_name=row.Info.BusinessName,
            )
            for row in rows
        ]

    async def check_numbers(self, *, phones: list[str]) -> list[p.OnWhatsApp]:
        digits = []
        for phone in phones:
            try:
                digits.append(p.normalize_phone(phone))
            except ValueError as exc:
                raise p.InvalidRequest(_noop("phone: %(reason)s") % {"reason": exc}) from exc
        if not digits:
            return []
        # whatsmeow wants international numbers with the + prefix.
        rows = await self._call(self._client().is_on_whatsapp, *[f"+{d}" for d in digits])
        by_query = {"".join(ch for ch in row.Query if ch.isdigit()): row for row in rows}
        out = []
        for phone, number in zip(phones, digits, strict=True):
            row = by_query.get(number)
            if row is None:
                out.append(p.OnWhatsApp(query=phone, jid=f"{number}@{p.USER_SERVER}", is_in=False))
                continue
            out.append(
                p.OnWhatsApp(
                    query=phone,
                    jid=jid_str(row.JID) or f"{number}@{p.USER_SERVER}",
                    is_in=bool(row.IsIn),
                    verified_name=row.VerifiedName.Details.verifiedName,
                )
            )
        return out

    async def business_profile(self, *, jid: str) -> p.BusinessProfile:
        # whatsmeow has GetBusinessProfile, but neonize 0.5.2 exports no binding for it.
        raise p.NotSupported(
            _noop(
                "business profiles are not supported by the neonize backend (neonize 0.5.2 has no such call)"
            )
        )

    # -- groups

    async def joined_groups(self) -> list[p.GroupInfo]:
        return [convert_group(info) for info in await self._call(self._client().get_joined_groups)]

    async def group_info(self, *, jid: str) -> p.GroupInfo:
        return convert_group(await self._call(self._client().get_group_info, to_jid(jid)))

    async def create_group(self, *, name: str, participants: list[str]) -> p.GroupInfo:
        info = await self._call(self._client().create_group, name, [to_jid(j) for j in participants])
        return convert_group(info)

    async def update_participants(
        self, *, jid: str, participants: list[str], action: p.ParticipantAction
    ) -> list[p.ParticipantResult]:
        change = neonize_lib().enum.ParticipantChange(str(p.ParticipantAction(action)))
        rows = await self._call(
            self._client().update_group_participants, to_jid(jid), [to_jid(j) for j in participants], change
        )
        results = {}
        for row in rows:
            who = _phone_jid(row.JID, row.PhoneNumber)
            if row.Error and row.Error != 200:
                reason = _PARTICIPANT_ERRORS.get(row.Error, "refused by WhatsApp")
                if row.HasField("AddRequest") and row.AddRequest.Code:
                    reason = "their privacy settings allow only an invitation"
                message = f"{reason} ({row.Error})"
                results[who] = p.ParticipantResult(participant=who, status="error", message=message)
            else:
                results[who] = p.ParticipantResult(participant=who, status="success")
        return [
            results.get(j)
            or p.ParticipantResult(participant=j, status="error", message="no answer from WhatsApp")
            for j in participants
        ]

    async def join_with_link(self, *, code: str) -> str:
        code = code.strip().rsplit("/", 1)[-1]
        return jid_str(await self._call(self._client().join_group_with_link, code))

    async def group_info_from_link(self, *, code: str) -> p.GroupInfo:
        code = code.strip().rsplit("/", 1)[-1]
        return convert_group(await self._call(self._client().get_group_info_from_link, code))

    async def invite_link(self, *, jid: str, reset: bool = False) -> str:
        return await self._call(self._client().get_group_invite_link, to_jid(jid), revoke=reset)

    async def join_requests(self, *, jid: str) -> list[p.JoinRequest]:
        rows = await self._call(self._client().get_group_request_participants, to_jid(jid))
        return [
            p.JoinRequest(jid=jid_str(row.Participant), requested_at=_seconds(row.TimeAt)) for row in rows
        ]

    async def answer_join_requests(
        self, *, jid: str, participants: list[str], approve: bool
    ) -> list[p.ParticipantResult]:
        # whatsmeow's UpdateGroupRequestParticipants is not exported by neonize 0.5.2.
        raise p.NotSupported(
            _noop(
                "approving or rejecting join requests is not supported by the neonize backend (neonize 0.5.2 has no such call)"
            )
        )

    async def leave_group(self, *, jid: str) -> None:
        await self._call(self._client().leave_group, to_jid(jid))

    async def set_group_name(self, *, jid: str, name: str) -> None:
        await self._call(self._client().set_group_name, to_jid(jid), name)

    async def set_group_topic(self, *, jid: str, topic: str) -> None:
        # Empty previous/new topic IDs: whatsmeow looks up the current one and makes a new one.
        await self._call(self._client().set_group_topic, to_jid(jid), "", "", topic)

    async def set_group_photo(self, *, jid: str, image: bytes) -> str:
        return await self._call(self._client().set_group_photo, to_jid(jid), image)

    async def set_group_locked(self, *, jid: str, locked: bool) -> None:
        await self._call(self._client().set_group_locked, to_jid(jid), locked)

    async def set_group_announce(self, *, jid: str, announce: bool) -> None:
        await self._call(self._client().set_group_announce, to_jid(jid), announce)

    # -- chat state

    # Pins, archives and labels are app-state patches: neonize 0.5.2's Go DecodePatchInfo drops the patch
    # type they need (as for star and delete-for-me, see app_state.APP_STATE_PATCHES_WORK).
    async def pin_chat(self, *, chat: str, pinned: bool) -> None:
        raise p.NotSupported(
            _noop(
                "pinning chats is not supported by the neonize backend (neonize 0.5.2 cannot send app-state patches)"
            )
        )

    async def archive_chat(self, *, chat: str, archived: bool) -> None:
        raise p.NotSupported(
            _noop(
                "archiving chats is not supported by the neonize backend (neonize 0.5.2 cannot send app-state patches)"
            )
        )

    async def label_chat(self, *, chat: str, label_id: str, label_name: str, labeled: bool) -> None:
        raise p.NotSupported(
            _noop(
                "labelling chats is not supported by the neonize backend (neonize 0.5.2 cannot send app-state patches)"
            )
        )

    async def edit_label(self, *, label_id: str, name: str, color: int, deleted: bool = False) -> None:
        raise p.NotSupported(
            _noop(
                "editing labels is not supported by the neonize backend (neonize 0.5.2 cannot send app-state patches)"
            )
        )

    async def set_disappearing_timer(self, *, chat: str, seconds: int) -> None:
        await self._call(self._client().set_disappearing_timer, to_jid(chat), timedelta(seconds=seconds))

    # -- calls

    async def reject_call(self, *, caller: str, call_id: str) -> None:
        """whatsmeow's RejectCall, on the JID the offer named the caller by (a hidden @lid one included) when
        this client saw the offer; else on `caller` as given."""
        offered = self._call_creators.get(call_id)
        await self._call(
            self._client().reject_call, offered if offered is not None else to_jid(caller), call_id
        )

    # -- newsletters

    async def newsletters(self) -> list[p.Newsletter]:
        return [
            convert_newsletter(meta) for meta in await self._call(self._client().get_subscribed_newletters)
        ]

    async def unfollow_newsletter(self, *, jid: str) -> None:
        await self._call(self._client().unfollow_newsletter, to_jid(jid))

    async def newsletter_messages(
        self, *, jid: str, count: int = 50, before: int = 0
    ) -> list[p.NewsletterPost]:
        posts = await self._call(self._client().get_newsletter_messages, to_jid(jid), count, before)
        return sorted((convert_newsletter_post(post) for post in posts), key=lambda post: post.server_id)
