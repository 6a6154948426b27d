"""The history a simulated phone sends a device it links: its earlier chats and messages, in chunks.

As WhatsApp does, the phone sends what it holds (its chats with peers and its groups, from seeding or from
earlier activity on the network) once, after the link, as HistorySyncEvent chunks of at most CHUNK_MESSAGES
messages; the last one is marked final. A phone with nothing to tell sends one empty final chunk.
`seed_phone_history` gives a phone such a past (the demo's number, tests).
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction

from messaging.whatsapp import protocol as p
from messaging.whatsapp.sandbox.messages import _incoming
from messaging.whatsapp.sandbox.network import _phone, _user_jid, now
from messaging.whatsapp.sandbox.seeding import _network

CHUNK_MESSAGES = 50


def history_chunks(
    phone: str, *, upto_id: int | None = None, chunk_messages: int = CHUNK_MESSAGES
) -> list[p.HistorySyncEvent]:
    """The chunks the phone `phone` sends a device it has just linked (sync; the device's DB thread): what it
    held when linked, the network's messages up to id `upto_id` (None: all so far). They are read after the
    device is connected, on a DB thread a busy machine may run late: without the cut, a message sent right
    after the link would be in them or not by chance (and the history, by number, could file it before its
    live delivery, by LID, did)."""
    from messaging.models import SandboxAccount, SandboxGroup, SandboxMessage

    me = _user_jid(phone)
    groups = {g.jid: g.name for g in SandboxGroup.objects.all() if me in (g.participants or {})}
    rows = SandboxMessage.objects.filter(timestamp__lte=now(), revoked=False).filter(
        _mine(me) | _in_groups(list(groups))
    )
    if upto_id is not None:
        rows = rows.filter(id__lte=upto_id)
    names = dict(SandboxAccount.objects.values_list("phone", "push_name"))
    by_chat: dict[str, list[p.IncomingMessage]] = {}
    unread: dict[str, int] = {}
    for row in rows.order_by("timestamp", "id"):
        if me in (row.deleted_for or []):
            continue
        if row.to in groups:
            chat = row.to
        else:
            chat = row.to if row.sender == me else row.sender
        sender_name = names.get(p.jid_user(row.sender), "")
        if row.sender != me and me not in (row.read_by or []):
            unread[chat] = unread.get(chat, 0) + 1
        by_chat.setdefault(chat, []).append(
            _incoming(row, chat=chat, from_me=row.sender == me, sender_name=sender_name)
        )
    push_names = {
        _user_jid(ph): name for ph, name in names.items() if name and _user_jid(ph) in _people(by_chat, me)
    }
    pieces: list[p.HistoryConversation] = []
    for chat, messages in by_chat.items():
        for start in range(0, len(messages), chunk_messages):
            part = messages[start : start + chunk_messages]
            pieces.append(
                p.HistoryConversation(
                    jid=chat,
                    name=groups.get(chat, ""),
                    # The phone's count, on the chat's newest piece.
                    unread_count=unread.get(chat, 0) if start + chunk_messages >= len(messages) else 0,
                    last_message_at=messages[-1].timestamp,
                    messages=part,
                )
            )
    chunks: list[list[p.HistoryConversation]] = [[]]
    size = 0
    for piece in pieces:
        if size and size + len(piece.messages) > chunk_messages:
            chunks.append([])
            size = 0
        chunks[-1].append(piece)
        size += len(piece.messages)
    total = len(chunks)
    return [
        p.HistorySyncEvent(
            sync_type=p.HistorySyncType.INITIAL_BOOTSTRAP if order == 1 else p.HistorySyncType.RECENT,
            chunk_order=order,
            progress=order * 100 // total,
            final=order == total,
            conversations=conversations,
            push_names=push_names if order == 1 else {},
        )
        for order, conversations in enumerate(chunks, start=1)
    ]


def _mine(me: str):
    from django.db.models import Q

    return Q(sender=me) | Q(to=me)


def _in_groups(jids: list[str]):
    from django.db.models import Q

    return Q(to__in=jids)


def _people(by_chat: dict[str, list[p.IncomingMessage]], me: str) -> set[str]:
    return {m.sender for messages in by_chat.values() for m in messages if m.sender != me} | {
        chat for chat in by_chat if not p.is_group(chat)
    }


def seed_phone_history(phone: str, *, days_ago: list[float] | None = None, peers: int = 3) -> list[str]:
    """Give the phone `phone` (made if new) a past: with each of the first `peers` seeded peers, a message
    each way `days_ago` days back (default: 1, 10, 45, 200 and 400 days), the newest from the peer an
    image. Returns the messages' IDs. Sync; for the demo and tests."""
    from messaging.models import SandboxAccount, SandboxMedia, SandboxMessage
    from messaging.whatsapp.sandbox.linking import _phone_account
    from messaging.whatsapp.sandbox.media import sample_media

    _network()
    phone = _phone(phone)
    days_ago = [1, 10, 45, 200, 400] if days_ago is None else list(days_ago)
    ids: list[str] = []
    with transaction.atomic():
        me = _phone_account(phone).jid
        partners = list(SandboxAccount.objects.filter(kind="peer", registered=True).order_by("id")[:peers])
        stamp = now()
        for index, peer in enumerate(partners):
            for days in sorted(days_ago, reverse=True):
                at = stamp - days * 86_400 - index * 60
                mine = SandboxMessage.objects.create(
                    msg_id=p.generate_message_id(),
                    sender=me,
                    to=peer.jid,
                    text=f"Hello {peer.push_name.split()[0]}, {days:g} days ago",
                    timestamp=at,
                    read_by=[peer.jid],
                )
                data: dict = {"reply_to_id": mine.msg_id, "quoted_body": mine.text}
                kind, caption, text = p.MessageKind.TEXT, "", f"Hi! ({days:g} days ago)"
                if days == min(days_ago):
                    media, mime, filename = sample_media("image", f"history:{peer.phone}")
                    token = secrets.token_hex(16)
                    sha = hashlib.sha256(media).hexdigest()
                    SandboxMedia.objects.create(
                        token=token, data=media, mime_type=mime, filename=filename, sha256=sha
                    )
                    data["media"] = {
                        "mime_type": mime,
                        "size": len(media),
                        "filename": filename,
                        "sha256": sha,
                        "ref": {"sandbox": token},
                    }
                    kind, caption, text = p.MessageKind.IMAGE, f"A photo, {days:g} days ago", ""
                theirs = SandboxMessage.objects.create(
                    msg_id=p.generate_message_id(),
                    sender=peer.jid,
                    to=me,
                    kind=str(kind),
                    text=text,
                    caption=caption,
                    data=data,
                    timestamp=at + 30,
                    read_by=[me] if days != min(days_ago) else [],
                )
                ids += [mine.msg_id, theirs.msg_id]
    return ids
