"""An account acting on the simulated network (a device's phone, or a simulated peer): the rules, in sync code."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable

from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp import wire
from messaging.whatsapp.protocol import (
    ChatPresenceState,
    Forbidden,
    IncomingMessage,
    InvalidRequest,
    MessageKind,
    NotFound,
    OutgoingMessage,
    Presence,
    SendResult,
)
from messaging.whatsapp.sandbox.groups import _GroupActor
from messaging.whatsapp.sandbox.media import _is_image, sample_media
from messaging.whatsapp.sandbox.messages import (
    _PLAN_FIELDS,
    _answer_plan,
    _default_mime,
    _incoming,
    _validate_outgoing,
)
from messaging.whatsapp.sandbox.network import (
    EDIT_WINDOW,
    PUSH_NAME_MAX,
    REVOKE_WINDOW,
    _jid,
    _lid_jid,
    _user_jid,
    now,
)


class _Actor(_GroupActor):
    """One account acting on the network (a device's phone, or a simulated peer): the rules, in sync code.

    `device_id` is the acting device (its own events are not delivered back to it), None for a peer.
    Devices to poke afterwards collect in `wake`.
    """

    def __init__(self, phone: str, device_id: int | None = None):
        self.phone = phone
        self.jid = _user_jid(phone)
        self.device_id = device_id
        self.wake: list[int] = []
        # Read once per actor (one trip to the database, one transaction) when it sends several messages:
        # accounts by phone (the fields sending needs) and the linked devices of phones.
        self._accounts: dict[str, object] = {}
        self._linked: dict[str, list[int]] = {}
        self._sent_at: float | None = None  # the network's time of this trip's first send (`_send_time`)
        self._sends = 0

    # -- plumbing

    def account(self):
        from messaging.models import SandboxAccount

        account = SandboxAccount.objects.filter(phone=self.phone).first()
        if account is None:
            raise NotFound(
                _noop("%(phone)s is not on the simulated WhatsApp network.") % {"phone": self.phone}
            )
        return account

    def _send_time(self) -> float:
        """The network's time of a message sent now. The clock is read once per actor (one trip to the database,
        however many messages it sends); each later message of the trip is a microsecond later, so that the
        order of a batch's messages stays the order of their timestamps."""
        if self._sent_at is None:
            self._sent_at = now()
        self._sends += 1
        return self._sent_at + (self._sends - 1) * 1e-6

    def _deliver(self, phones, event: p.Event, *, include_self: bool = False) -> None:
        from messaging.models import SandboxDelivery, SandboxSession

        sessions = SandboxSession.objects.filter(phone__in=set(phones))
        if self.device_id is not None and not include_self:
            sessions = sessions.exclude(device_id=self.device_id)
        ids = list(sessions.values_list("device_id", flat=True))
        data = wire.encode(event)
        SandboxDelivery.objects.bulk_create(
            [SandboxDelivery(device_id=i, event={**data, "device_id": i}) for i in ids]
        )
        self.wake.extend(ids)

    def _targets(self, to: str) -> list[tuple[str, str, bool]]:
        """(phone, chat as that phone sees it, from_me) for everyone who sees a message of ours to `to`."""
        from messaging.models import SandboxGroup, SandboxNewsletter

        if p.is_group(to):
            group = SandboxGroup.objects.filter(jid=to).first()
            members = list(group.participants) if group else []
            return [(p.jid_user(m), to, m == self.jid) for m in members]
        if to.endswith("@" + p.NEWSLETTER_SERVER):
            news = SandboxNewsletter.objects.filter(jid=to).first()
            return [(p.jid_user(f), to, False) for f in (news.followers if news else [])] + [
                (self.phone, to, True)
            ]
        if to == self.jid:
            return [(self.phone, to, True)]
        return [(p.jid_user(to), self.jid, False), (self.phone, to, True)]

    def _accounts_of(self, phones: set[str]) -> dict:
        """The accounts of `phones` that exist (fields of `_PLAN_FIELDS` and the push name), by phone."""
        from messaging.models import SandboxAccount

        missing = phones - self._accounts.keys()
        if missing:
            found = {
                a.phone: a
                for a in SandboxAccount.objects.filter(phone__in=missing)
                .only(*_PLAN_FIELDS, "push_name", "lid", "shares_phone")
                .order_by()
            }
            self._accounts.update({phone: found.get(phone) for phone in missing})
        return {phone: self._accounts[phone] for phone in phones if self._accounts[phone] is not None}

    def _fan_action(self, row, kind: MessageKind, stamp: float | None = None, **fields) -> SendResult:
        """Tell everyone in `row`'s chat of an act on it (a reaction, vote, edit or revoke): a message of its own
        kind that names `row` as its target. Returns what the act's sender is answered."""
        aid, stamp = p.generate_message_id(), stamp if stamp is not None else now()
        name = self._sender_name()
        self._fan(
            self._chat_of(row),
            lambda c, me: IncomingMessage(
                id=aid,
                chat=c,
                sender=self.jid,
                sender_name=name,
                from_me=me,
                timestamp=stamp,
                kind=kind,
                target_id=row.msg_id,
                **fields,
            ),
        )
        return SendResult(id=aid, timestamp=stamp)

    def _fan(
        self,
        to: str,
        make: Callable[[str, bool], IncomingMessage],
        *,
        extra: list[tuple[str, str, bool]] = (),
    ) -> None:
        from messaging.models import SandboxDelivery, SandboxSession

        targets = [*self._targets(to), *extra]
        # The linked devices of every target in one query; a message is built only for phones with one.
        missing = {phone for phone, _, _ in targets} - self._linked.keys()
        if missing:
            for phone in missing:
                self._linked[phone] = []
            sessions = SandboxSession.objects.filter(phone__in=missing)
            for phone, device_id in sessions.values_list("phone", "device_id"):
                if device_id != self.device_id:  # not back to the device that sent it
                    self._linked[phone].append(device_id)
        devices = self._linked
        rows = []
        for phone, chat, from_me in targets:
            ids = devices.get(phone)
            if not ids:
                continue
            data = wire.encode(p.MessageEvent(message=self._addressed(make(chat, from_me))))
            rows += [SandboxDelivery(device_id=i, event={**data, "device_id": i}) for i in ids]
            self.wake.extend(ids)
        SandboxDelivery.objects.bulk_create(rows)

    def _addressed(self, message: IncomingMessage) -> IncomingMessage:
        """A message of ours as others see it: with our hidden user ID once we have one, and by that ID alone
        (no number) while we do not share our number (peers.peer_hide_phone)."""
        me = None if message.from_me else self._accounts_of({self.phone}).get(self.phone)
        if me is None or not me.lid:
            return message
        lid = _lid_jid(me.lid)
        message.sender_lid = lid
        if not me.shares_phone:
            message.sender = lid
        if message.chat == self.jid:
            message.chat_lid = lid
            if not me.shares_phone:
                message.chat = lid
        return message

    def _message(self, chat: str, message_id: str):
        """The message `message_id` in `chat` as this account sees the chat, or NotFound."""
        from messaging.models import SandboxMessage

        chat = _jid(chat, field="chat")
        if not message_id:
            raise InvalidRequest(_noop("message_id: is required"))
        rows = SandboxMessage.objects.filter(msg_id=message_id)
        if p.is_group(chat) or chat.endswith("@" + p.NEWSLETTER_SERVER):
            rows = rows.filter(to=chat)
        else:
            rows = rows.filter(sender=self.jid, to=chat) | rows.filter(sender=chat, to=self.jid)
        row = rows.first()
        if row is None:
            raise NotFound(
                _noop("There is no message %(message_id)s in %(chat)s.")
                % {"message_id": message_id, "chat": chat}
            )
        return row

    def _chat_of(self, row) -> str:
        """The chat `row` is in, as this account sees it."""
        if p.is_group(row.to) or row.to.endswith("@" + p.NEWSLETTER_SERVER):
            return row.to
        return row.to if row.sender == self.jid else row.sender

    def _sender_name(self) -> str:
        from messaging.models import SandboxAccount

        return (
            SandboxAccount.objects.filter(phone=self.phone).values_list("push_name", flat=True).first() or ""
        )

    # -- sending

    def send(self, message: OutgoingMessage) -> tuple[SendResult, list[dict]]:
        """Store and deliver; returns the result and which simulated peers should answer (for the client).

        A refusal (a WhatsAppError) is raised before anything is written: `SandboxClient.send_many` sends a batch
        in one transaction with no savepoint per message, and a refused message must leave nothing behind."""
        from messaging.models import SandboxAccount, SandboxMedia, SandboxMessage, SandboxNewsletter

        if not message.id:
            raise InvalidRequest(_noop("id: a message ID is required"))
        to = _jid(message.to, field="to")
        try:
            kind = MessageKind(message.kind)
        except ValueError:
            raise InvalidRequest(
                _noop("kind: %(kind)s is not a message kind") % {"kind": repr(message.kind)}
            ) from None
        # The same ID again (a retry after a crash) is found by the unique (sender, msg_id) when it is stored:
        # WhatsApp drops the duplicate and answers as it did the first time.
        _validate_outgoing(message, kind)

        plan: list[dict] = []
        name = None  # the sender's push name, when read with the recipient
        if p.is_group(to):
            group = self._group(to)
            if group.announce and not self._is_admin(group):
                raise Forbidden(_noop("Only admins can send messages to this group."))
            members = SandboxAccount.objects.filter(
                phone__in=[p.jid_user(j) for j in group.participants if j != self.jid], registered=True
            ).only(*_PLAN_FIELDS)
            plan = [_answer_plan(a, behavior="") for a in members.order_by("id")]
        elif to.endswith("@" + p.NEWSLETTER_SERVER):
            news = SandboxNewsletter.objects.filter(jid=to).first()
            if news is None:
                raise NotFound(_noop("There is no newsletter %(to)s.") % {"to": to})
            raise Forbidden(_noop("Only the newsletter's admins can post to it."))
        else:
            # The recipient and the sender (for the name its message carries) in one query.
            accounts = self._accounts_of({p.jid_user(to), self.phone})
            account = accounts.get(p.jid_user(to))
            if account is None or not account.registered:
                raise NotFound(_noop("%(number)s is not on WhatsApp.") % {"number": p.jid_user(to)})
            if to != self.jid:
                plan = [_answer_plan(account, behavior=account.behavior)]
            me = accounts.get(self.phone)
            name = me.push_name if me is not None else ""

        data: dict = {}
        if kind in p.MEDIA_KINDS:
            media = bytes(message.media)
            token = secrets.token_hex(16)
            sha = hashlib.sha256(media).hexdigest()
            mime = message.mime_type or _default_mime(kind)
            SandboxMedia.objects.create(
                token=token, data=media, mime_type=mime, filename=message.filename, sha256=sha
            )
            data["media"] = {
                "mime_type": mime,
                "size": len(media),
                "filename": message.filename,
                "sha256": sha,
                "ref": {"sandbox": token},
            }
        if message.view_once:
            data["view_once"] = True
        if message.is_forwarded:
            data["is_forwarded"] = True
        if message.reply_to is not None:
            data["reply_to_id"] = message.reply_to.id
            data["quoted_body"] = message.reply_to.text
        if kind == MessageKind.LOCATION:
            data.update(latitude=message.latitude, longitude=message.longitude)
        if kind == MessageKind.CONTACT:
            phone = re.sub(r"\D", "", message.contact_phone)
            data.update(
                contact_name=message.contact_name,
                contact_vcard=f"BEGIN:VCARD\nVERSION:3.0\nFN:{message.contact_name}\nTEL;type=CELL;waid={phone}:+{phone}\nEND:VCARD",
            )
        if kind == MessageKind.POLL:
            data.update(
                poll_question=message.poll_question,
                poll_options=list(message.poll_options),
                poll_max_answer=message.poll_max_answer,
            )
        row = SandboxMessage(
            msg_id=message.id,
            sender=self.jid,
            to=to,
            kind=str(kind),
            text=message.text,
            caption=message.caption,
            data=data,
            timestamp=self._send_time(),
        )
        if not _insert_new(row):  # sent before (or concurrently) with the same ID: the first one counts
            row = SandboxMessage.objects.get(sender=self.jid, msg_id=message.id)
            return SendResult(id=row.msg_id, timestamp=row.timestamp), []
        if name is None:
            name = self._sender_name()
        self._fan(to, lambda chat, from_me: _incoming(row, chat=chat, from_me=from_me, sender_name=name))
        return SendResult(id=row.msg_id, timestamp=row.timestamp), plan

    def react(self, *, chat: str, message_id: str, emoji: str) -> SendResult:
        row = self._message(chat, message_id)
        if row.revoked:
            raise InvalidRequest(_noop("This message was deleted; it cannot be reacted to."))
        if len(emoji) > 16 or (emoji and not any(ord(c) > 0x2000 for c in emoji)):
            raise InvalidRequest(_noop("emoji: a reaction is one emoji (or empty to remove it)"))
        self._check_can_post(row)
        reactions = dict(row.reactions)
        if emoji:
            reactions[self.jid] = emoji
        else:
            reactions.pop(self.jid, None)
        row.reactions = reactions
        row.save(update_fields=["reactions"])
        return self._fan_action(row, MessageKind.REACTION, reaction=emoji)

    def vote(self, *, chat: str, message_id: str, options: list[str]) -> SendResult:
        """Vote on a poll: `options` are the texts now chosen (none withdraws the vote). WhatsApp sends each
        chosen option as the SHA-256 of its text, so that is what the devices receive."""
        row = self._message(chat, message_id)
        if row.kind != MessageKind.POLL:
            raise InvalidRequest(_noop("message_id: only a poll can be voted on"))
        if row.revoked:
            raise InvalidRequest(_noop("This poll was deleted; it cannot be voted on."))
        listed = list(row.data.get("poll_options") or [])
        chosen = list(dict.fromkeys(options or []))
        unknown = [o for o in chosen if o not in listed]
        if unknown:
            raise InvalidRequest(
                _noop("options: %(option)s is not an option of this poll") % {"option": repr(unknown[0])}
            )
        if len(chosen) > int(row.data.get("poll_max_answer") or 1):
            raise InvalidRequest(_noop("options: this poll takes fewer choices"))
        self._check_can_post(row)
        row.data = {**row.data, "poll_votes": {**(row.data.get("poll_votes") or {}), self.jid: chosen}}
        row.save(update_fields=["data"])
        hashes = [hashlib.sha256(o.encode()).hexdigest() for o in chosen]
        return self._fan_action(row, MessageKind.POLL_VOTE, poll_selected=hashes)

    def _check_can_post(self, row) -> None:
        from messaging.models import SandboxGroup

        if p.is_group(row.to):
            group = SandboxGroup.objects.filter(jid=row.to).first()
            if group is None or self.jid not in group.participants:
                raise Forbidden(_noop("You are no longer a participant of this group."))

    def edit(self, *, chat: str, message_id: str, text: str) -> SendResult:
        row = self._message(chat, message_id)
        if row.sender != self.jid:
            raise Forbidden(_noop("Only your own messages can be edited."))
        if row.revoked:
            raise InvalidRequest(_noop("This message was deleted; it cannot be edited."))
        if row.kind not in ("text", "link", "image", "video", "document"):
            raise InvalidRequest(_noop("A %(kind)s message cannot be edited.") % {"kind": row.kind})
        text = (text or "").strip()
        if not text:
            raise InvalidRequest(_noop("text: the new text is required"))
        stamp = now()
        if stamp - row.timestamp > EDIT_WINDOW:
            raise Forbidden(_noop("A message can only be edited within 15 minutes of sending it."))
        if row.kind in ("text", "link"):
            row.text = text
        else:
            row.caption = text
        row.edited_at = stamp
        row.save(update_fields=["text", "caption", "edited_at"])
        return self._fan_action(row, MessageKind.EDIT, stamp, text=text)

    def revoke(self, *, chat: str, message_id: str) -> SendResult:
        from messaging.models import SandboxGroup

        row = self._message(chat, message_id)
        if row.sender != self.jid:
            group = SandboxGroup.objects.filter(jid=row.to).first() if p.is_group(row.to) else None
            if group is None or not self._is_admin(group):
                raise Forbidden(
                    _noop(
                        "Only your own messages can be deleted for everyone (or any message, by a group admin)."
                    )
                )
        stamp = now()
        if stamp - row.timestamp > REVOKE_WINDOW:
            raise Forbidden(_noop("This message is too old to be deleted for everyone."))
        if not row.revoked:
            row.revoked = True
            row.save(update_fields=["revoked"])
        return self._fan_action(row, MessageKind.REVOKE, stamp)

    def delete_for_me(self, *, chat: str, message_id: str) -> None:
        row = self._message(chat, message_id)
        if self.jid not in row.deleted_for:
            row.deleted_for = [*row.deleted_for, self.jid]
            row.save(update_fields=["deleted_for"])

    def star(self, *, chat: str, message_id: str, starred: bool) -> None:
        row = self._message(chat, message_id)
        stars = [j for j in row.starred_by if j != self.jid]
        if starred:
            stars.append(self.jid)
        row.starred_by = stars
        row.save(update_fields=["starred_by"])

    def mark_read(self, *, chat: str, message_ids: list[str]) -> None:
        if not message_ids:
            raise InvalidRequest(_noop("message_ids: at least one message ID is required"))
        if p.is_group(_jid(chat, field="chat")):
            self._group(chat)  # receipts go to a group's participants from its participants only
        rows = []
        for message_id in message_ids:
            row = self._message(chat, message_id)
            if row.sender == self.jid:
                continue  # reading your own message sends nothing
            rows.append(row)
        account = self.account()
        stamp = now()
        for row in rows:
            if self.jid not in row.read_by:
                row.read_by = [*row.read_by, self.jid]
                row.save(update_fields=["read_by"])
        if account.privacy.get("read_receipts") == "none":
            return  # with read receipts off, senders are not told (as on WhatsApp)
        by_sender: dict[str, list[str]] = {}
        for row in rows:
            by_sender.setdefault(row.sender, []).append(row.msg_id)
        for sender, ids in by_sender.items():
            chat_seen = rows[0].to if p.is_group(rows[0].to) else self.jid
            self._deliver(
                [p.jid_user(sender)],
                p.ReceiptEvent(
                    chat=chat_seen, sender=self.jid, message_ids=ids, type=p.ReceiptType.READ, timestamp=stamp
                ),
            )

    # -- presence

    def set_presence(self, presence: Presence) -> None:
        account = self.account()
        account.presence = str(presence)
        account.last_seen = now()
        account.save(update_fields=["presence", "last_seen"])

    def chat_presence(self, *, chat: str, state: ChatPresenceState, media: str = "") -> None:
        chat = _jid(chat, field="chat")
        if p.is_group(chat):
            group = self._group(chat)
            phones = [p.jid_user(j) for j in group.participants if j != self.jid]
        else:
            phones = [p.jid_user(chat)]
        self._deliver(
            phones,
            p.ChatPresenceEvent(
                chat=chat if p.is_group(chat) else self.jid, sender=self.jid, state=state, media=media
            ),
        )

    # -- profile

    def set_avatar(self, image: bytes) -> str:
        if not image or not _is_image(bytes(image)):
            raise InvalidRequest(_noop("image: a JPEG or PNG picture is required"))
        account = self.account()
        account.picture = bytes(image)
        account.picture_id = str(int(now() * 1000))
        account.save(update_fields=["picture", "picture_id"])
        return account.picture_id

    def set_push_name(self, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise InvalidRequest(_noop("name: a push name is required"))
        if len(name) > PUSH_NAME_MAX:
            raise InvalidRequest(_noop("name: at most %(max)s characters") % {"max": PUSH_NAME_MAX})
        from messaging.models import SandboxSession

        account = self.account()
        account.push_name = name
        account.save(update_fields=["push_name"])
        SandboxSession.objects.filter(phone=self.phone).update(push_name=name)

    # -- newsletters

    def unfollow_newsletter(self, *, jid: str) -> None:
        from messaging.models import SandboxNewsletter

        jid = _jid(jid)
        news = SandboxNewsletter.objects.filter(jid=jid).first()
        if news is None:
            raise NotFound(_noop("There is no newsletter %(jid)s.") % {"jid": jid})
        if self.jid not in news.followers:
            raise NotFound(_noop("You do not follow this newsletter."))
        news.followers = [f for f in news.followers if f != self.jid]
        news.subscribers = max(news.subscribers - 1, 0)
        news.save(update_fields=["followers", "subscribers"])

    def follow_newsletter(self, *, jid: str) -> None:
        from messaging.models import SandboxNewsletter

        jid = _jid(jid)
        news = SandboxNewsletter.objects.filter(jid=jid).first()
        if news is None:
            raise NotFound(_noop("There is no newsletter %(jid)s.") % {"jid": jid})
        if self.jid not in news.followers:
            news.followers = [*news.followers, self.jid]
            news.subscribers += 1
            news.save(update_fields=["followers", "subscribers"])


def _outgoing_from(actor: _Actor, to_jid: str, text: str, kind: MessageKind, extra: dict) -> OutgoingMessage:
    media, mime, filename = extra.get("media"), extra.get("mime_type", ""), extra.get("filename", "")
    if kind in p.MEDIA_KINDS and media is None:
        media, mime, filename = sample_media(str(kind), f"{actor.phone}:{text}:{extra.get('caption', '')}")
    reply = None
    if extra.get("reply_to_id"):
        reply = p.QuotedMessage(id=extra["reply_to_id"], sender="", text=extra.get("quoted_body", ""))
    return OutgoingMessage(
        id=extra.get("id") or p.generate_message_id(),
        to=to_jid,
        kind=kind,
        text=text,
        caption=extra.get("caption", ""),
        media=media,
        mime_type=mime,
        filename=filename,
        view_once=bool(extra.get("view_once")),
        is_forwarded=bool(extra.get("is_forwarded")),
        reply_to=reply,
        contact_name=extra.get("contact_name", ""),
        contact_phone=extra.get("contact_phone", ""),
        latitude=extra.get("latitude"),
        longitude=extra.get("longitude"),
        poll_question=extra.get("poll_question", text if kind == MessageKind.POLL else ""),
        poll_options=list(extra.get("poll_options", [])),
        poll_max_answer=int(extra.get("poll_max_answer", 1)),
    )


_INSERT_NEW: tuple[str, list] | None = None  # the statement and the fields it writes, built once


def _insert_new(row) -> bool:
    """Insert `row`, a new SandboxMessage, unless its sender has sent its ID before; whether it was inserted (its
    pk set). One statement, INSERT ... ON CONFLICT DO NOTHING RETURNING (SQLite and PostgreSQL alike), where
    create() would need a savepoint around it (two statements more on every message sent) to survive the
    IntegrityError of a resend."""
    global _INSERT_NEW
    from django.db import connection

    from messaging.models import SandboxMessage

    if _INSERT_NEW is None:
        q = connection.ops.quote_name
        fields = [f for f in SandboxMessage._meta.concrete_fields if not f.primary_key]
        sql = (
            f"INSERT INTO {q(SandboxMessage._meta.db_table)} ({', '.join(q(f.column) for f in fields)})"
            f" VALUES ({', '.join(['%s'] * len(fields))})"
            f" ON CONFLICT ({q('sender')}, {q('msg_id')}) DO NOTHING RETURNING {q('id')}"
        )
        _INSERT_NEW = sql, fields
    sql, fields = _INSERT_NEW
    values = [f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    row.pk = inserted[0]
    row._state.adding = False
    row._state.db = connection.alias
    return True
