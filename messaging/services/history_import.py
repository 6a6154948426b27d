"""Importing the history a phone sends a newly linked number (protocol.HistorySyncEvent) into chats and messages.

Two steps, so that live events never wait for an import:

1. `receive_chunk` (in the event handler's transaction, as any event): the chunk is stored as it came
   (HistoryChunk) and counted. Quick: one row. Nothing accepted is lost: a worker that dies before importing
   it leaves the row, and the next `schedule` of the device imports it.
2. `schedule` starts, on the runtime loop, one importer per device (`_import_all`), which imports the pending
   chunks one at a time on the runtime's DB threads (`import_next_chunk`), each in batches of
   BATCH_MESSAGES messages, one short transaction per batch with bulk writes. One chunk at a time in the whole
   process (`_gate`): the other DB threads stay free for live events.

Idempotent: messages are keyed by (device, WhatsApp message ID) and inserted only when missing, so a chunk sent
again (or imported again after a crash) adds nothing. Imports never overwrite newer live state: a chat's
unread count and last message only move forward, its name is only filled in when it has none.

Imported messages fire no per-message `message` webhooks (they are not news); the end of a sync fires one
`history.synced` with its counts. The number's page shows the progress live (`history.progress` pushes).

How far back: the organization's `history_days` (None: everything; 0: nothing); older messages are skipped
and counted as such.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from messaging.services import lids
from messaging.whatsapp import protocol, wire

logger = logging.getLogger(__name__)

BATCH_MESSAGES = 200
BATCH_PAUSE = 0.005  # seconds between batches
PROGRESS_EVENT = "history.progress"  # live only: the number's page
SYNCED_EVENT = "history.synced"  # live and webhook: a sync finished
# Kinds that act on another message: not rows of their own, and not worth replaying from history.
_ACTIONS = frozenset(
    {
        protocol.MessageKind.REACTION,
        protocol.MessageKind.EDIT,
        protocol.MessageKind.REVOKE,
        protocol.MessageKind.POLL_VOTE,
    }
)


# ------------------------------------------------------------------------------------------ payloads


def progress_payload(sync) -> dict:
    return {
        "state": sync.state,
        "phone_progress": sync.phone_progress,
        "chunks_received": sync.chunks_received,
        "chunks_imported": sync.chunks_imported,
        "chats": sync.chats_imported,
        "messages": sync.messages_imported,
        "skipped": sync.messages_skipped,
        "days": sync.days,
        "started_at": _rfc3339(sync.started_at),
        "finished_at": _rfc3339(sync.finished_at),
    }


def sync_from_payload(device, data: dict):
    """The HistorySync a progress payload describes (unsaved; for rendering), or the stored one without it."""
    from django.utils.dateparse import parse_datetime

    from messaging.models import HistorySync

    if "state" not in data:
        return HistorySync.objects.filter(device=device).first()
    finished = data.get("finished_at")
    return HistorySync(
        organization_id=device.organization_id,
        device=device,
        state=data["state"],
        phone_progress=data.get("phone_progress") or 0,
        chunks_received=data.get("chunks_received") or 0,
        chunks_imported=data.get("chunks_imported") or 0,
        chats_imported=data.get("chats") or 0,
        messages_imported=data.get("messages") or 0,
        messages_skipped=data.get("skipped") or 0,
        days=data.get("days"),
        finished_at=parse_datetime(finished) if finished else None,
    )


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _outcome(name: str, sync, *, webhook: bool = False):
    from messaging.events import Outcome

    return Outcome(name, sync.organization_id, sync.device_id, progress_payload(sync), webhook=webhook)


# ------------------------------------------------------------------------------------------ 1. receiving


def receive_chunk(event: protocol.HistorySyncEvent) -> list:
    """Store one chunk of a device's history for import (sync; the runtime's DB threads). Its own short
    transaction, on the device's HistorySync row only: the device row (which every live event of the number
    locks) is not held, and the chunk is encoded before the transaction.

    A chunk arriving after a sync finished starts a new one (a new link): its counters start again and the
    organization's choice of how far back is read anew."""
    from messaging.models import Device

    conversations = wire.encode(list(event.conversations))
    total = sum(len(c.messages) for c in event.conversations)
    device = Device.objects.select_related("organization").filter(pk=event.device_id).first()
    if device is None:
        return []  # removed meanwhile
    with transaction.atomic():
        return _store_chunk(device, event, conversations, total)


def _store_chunk(device, event, conversations: list, total: int) -> list:
    from messaging.models import HistoryChunk, HistorySync, HistorySyncState

    sync, _ = HistorySync.objects.select_for_update().get_or_create(
        device=device,
        defaults={"organization_id": device.organization_id, "days": device.organization.history_days},
    )
    if sync.state == HistorySyncState.FINISHED:
        sync = _restart(sync, device.organization.history_days)
    chunk, created = HistoryChunk.objects.update_or_create(
        device=device,
        sync_type=str(event.sync_type),
        chunk_order=event.chunk_order,
        defaults=dict(
            organization_id=device.organization_id,
            progress=max(0, min(100, event.progress)),
            final=event.final,
            conversations=conversations,
            push_names=dict(event.push_names),
            messages_total=total,
            imported_at=None,  # (again) to import: what is already there is not added twice
        ),
    )
    sync.state = HistorySyncState.IMPORTING
    sync.phone_progress = max(sync.phone_progress, chunk.progress)
    sync.final_received = sync.final_received or event.final
    if created:
        sync.chunks_received += 1
    sync.save()
    return [_outcome(PROGRESS_EVENT, sync)]


def _restart(sync, days):
    from messaging.models import HistorySyncState

    for name in ("chunks_received", "chunks_imported", "chats_imported", "messages_imported"):
        setattr(sync, name, 0)
    sync.messages_skipped = 0
    sync.phone_progress = 0
    sync.final_received = False
    sync.state = HistorySyncState.WAITING
    sync.days = days
    sync.started_at = timezone.now()
    sync.finished_at = None
    return sync


# ------------------------------------------------------------------------------------------ 2. importing


def import_next_chunk(device_id: int) -> tuple[list, bool]:
    """Import the oldest pending chunk of the device (sync; the runtime's DB threads), in batches.

    Returns (outcomes to publish, whether a chunk was imported: call again)."""
    from messaging.models import Device, HistoryChunk, HistorySync

    chunk = (
        HistoryChunk.objects.filter(device_id=device_id, imported_at__isnull=True)
        .order_by("received_at", "id")
        .first()
    )
    if chunk is None:
        return [], False
    device = Device.objects.select_related("organization").filter(pk=device_id).first()
    if device is None:
        return [], False
    sync = device.history_sync
    cutoff = None if sync.days is None else timezone.now() - timedelta(days=sync.days)
    conversations: list[protocol.HistoryConversation] = wire.decode(chunk.conversations)
    _store_push_names(device, chunk.push_names or {})
    # The LIDs whose numbers the history tells, learnt first: their LID chats merge into the numbers' before
    # the messages go into those.
    merged = lids.learn_from_history(device, [m for c in conversations for m in c.messages])
    batch: list[tuple[protocol.HistoryConversation, list[protocol.IncomingMessage]]] = []
    size = skipped_total = 0
    for conversation in conversations:
        kept = [m for m in conversation.messages if m.kind not in _ACTIONS]
        if cutoff is not None:
            recent = [m for m in kept if sync.days and _when(m.timestamp) >= cutoff]
            skipped_total += len(kept) - len(recent)
            kept = recent
        if not kept and (sync.days == 0 or not _recent_enough(conversation, cutoff)):
            continue
        unread = _unread_ids(conversation, kept)
        # A long chat is split over batches (each piece moves the chat forward, never back).
        for start in range(0, max(len(kept), 1), BATCH_MESSAGES):
            piece = kept[start : start + BATCH_MESSAGES]
            batch.append((conversation, piece, unread))
            size += len(piece)
            if size >= BATCH_MESSAGES:
                _import_batch(device, batch, chunk.push_names or {})
                batch, size = [], 0
    if batch:
        _import_batch(device, batch, chunk.push_names or {})
    if skipped_total and not chunk.imports:  # a chunk imported before was counted then
        HistorySync.objects.filter(pk=sync.pk).update(messages_skipped=F("messages_skipped") + skipped_total)
    return merged + _finish_chunk(device, chunk), True


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else timezone.now()


def _recent_enough(conversation: protocol.HistoryConversation, cutoff) -> bool:
    """A chat without messages to import is still worth listing (its name) when active since the cut."""
    if cutoff is None:
        return True
    return bool(conversation.last_message_at) and _when(conversation.last_message_at) >= cutoff


def _store_push_names(device, push_names: dict[str, str]) -> None:
    """Contacts' own names: new contacts get theirs; a contact whose push name is not known yet gets it."""
    from messaging.models import Contact

    names = {jid: name[:200] for jid, name in push_names.items() if jid and name}
    if not names:
        return
    with transaction.atomic():
        existing = {c.jid: c for c in Contact.objects.filter(device=device, jid__in=list(names))}
        Contact.objects.bulk_create(
            [
                Contact(organization_id=device.organization_id, device=device, jid=jid, push_name=name)
                for jid, name in names.items()
                if jid not in existing
            ],
            ignore_conflicts=True,
        )
        blank = [c for c in existing.values() if not c.push_name]
        for contact in blank:
            contact.push_name = names[contact.jid]
        if blank:
            Contact.objects.bulk_update(blank, ["push_name"])


def _chat_name(conversation: protocol.HistoryConversation, push_names: dict[str, str]) -> str:
    if conversation.name:
        return conversation.name[:200]
    if protocol.is_group(conversation.jid):
        return ""
    named = next((m.sender_name for m in conversation.messages if not m.from_me and m.sender_name), "")
    return (push_names.get(conversation.jid) or named)[:200]


def _import_batch(device, batch, push_names: dict[str, str]) -> None:
    """The batch's chats (created or moved forward) and its messages (those not stored yet), in two short
    transactions: the rows are built before either, so that the write lock (all of SQLite's) is held for
    the writes alone, and a live event waiting for it goes in between batches."""
    from messaging.models import Chat, HistorySync, Message

    jids = list(dict.fromkeys(conversation.jid for conversation, _, _ in batch))
    wanted = [m.id for _, messages, _ in batch for m in messages]
    stored = set(Message.objects.filter(device=device, wa_id__in=wanted).values_list("wa_id", flat=True))
    now = timezone.now()
    rows, seen = [], set()
    for conversation, messages, unread in batch:
        for msg in messages:
            if msg.id in stored or msg.id in seen:
                continue
            seen.add(msg.id)
            row = _message_row(device, None, msg, read_at=None if msg.id in unread else now)
            rows.append((conversation.jid, row))
    chats = {c.jid: c for c in Chat.objects.filter(device=device, jid__in=jids)}
    new_chats = list(
        {
            conversation.jid: Chat(
                organization_id=device.organization_id,
                device=device,
                jid=conversation.jid,
                is_group=protocol.is_group(conversation.jid),
                name=_chat_name(conversation, push_names),
                lid=next((m.chat_lid for m in conversation.messages if m.chat_lid), ""),
            )
            for conversation, _, _ in batch
            if conversation.jid not in chats
        }.values()
    )
    if new_chats:
        with transaction.atomic():
            Chat.objects.bulk_create(new_chats, ignore_conflicts=True)  # a live message may have made one
        chats = {c.jid: c for c in Chat.objects.filter(device=device, jid__in=jids)}
    for jid, row in rows:
        row.chat_id = chats[jid].pk
    with transaction.atomic():
        # The chats first (in id order, as a LID merge locks its two), then their messages: a send or a received
        # message locks its chat before its INSERT locks the chat's tally row, and the other order deadlocks.
        list(
            Chat.objects.select_for_update(no_key=True)
            .filter(pk__in=sorted({chat.pk for chat in chats.values()}))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if rows:
            Message.objects.bulk_create([row for _, row in rows], ignore_conflicts=True)
        for conversation, messages, _ in batch:
            _move_chat_forward(chats[conversation.jid], conversation, messages, push_names)
        HistorySync.objects.filter(device=device).update(
            chats_imported=F("chats_imported") + len(new_chats),
            messages_imported=F("messages_imported") + len(rows),
        )
    time.sleep(BATCH_PAUSE)  # let a writer waiting for the lock have it before the next batch


def _unread_ids(conversation: protocol.HistoryConversation, messages) -> set[str]:
    """The newest `unread_count` received messages are unread on the phone: so they are here."""
    if not conversation.unread_count:
        return set()
    received = sorted((m for m in messages if not m.from_me), key=lambda m: m.timestamp)
    return {m.id for m in received[-conversation.unread_count :]}


def _message_row(device, chat, msg: protocol.IncomingMessage, *, read_at):
    from messaging.models import Message, MessageStatus

    timestamp = _when(msg.timestamp)
    payload: dict = {"history": True}
    if msg.latitude is not None or msg.longitude is not None:
        payload.update(latitude=msg.latitude, longitude=msg.longitude)
    if msg.contact_name or msg.contact_vcard:
        payload.update(contact_name=msg.contact_name, contact_vcard=msg.contact_vcard)
    if msg.poll_question:
        payload.update(poll_question=msg.poll_question, poll_options=list(msg.poll_options))
    if msg.media is not None:  # not downloaded: the ref lets it be fetched on demand
        payload["media_ref"] = msg.media.ref
        payload["media_sha256"] = msg.media.sha256
    return Message(
        organization_id=device.organization_id,
        device=device,
        chat_id=chat.pk if chat is not None else None,
        wa_id=msg.id,
        from_me=msg.from_me,
        sender_jid=msg.sender,
        sender_name=(device.push_name if msg.from_me and not msg.sender_name else msg.sender_name)[:200],
        kind=str(msg.kind),
        text=msg.text,
        caption=msg.caption,
        media_mime=(msg.media.mime_type[:120] if msg.media else ""),
        media_size=(msg.media.size or None) if msg.media else None,
        media_filename=(msg.media.filename[:255] if msg.media else ""),
        payload=payload,
        reply_to_id=msg.reply_to_id[:128],
        quoted_body=msg.quoted_body,
        is_forwarded=msg.is_forwarded,
        view_once=msg.view_once,
        status=MessageStatus.SENT if msg.from_me else MessageStatus.RECEIVED,
        timestamp=timestamp,
        sent_at=timestamp if msg.from_me else None,
        read_by_me_at=None if msg.from_me else read_at,
    )


def _move_chat_forward(chat, conversation, messages, push_names) -> None:
    """Each change a single UPDATE that only moves forward, so a live message stored meanwhile is kept."""
    from messaging.events import preview_of
    from messaging.models import Chat

    rows = Chat.objects.filter(pk=chat.pk)
    name = _chat_name(conversation, push_names)
    if name:
        rows.filter(name="").update(name=name)
    if conversation.unread_count:
        rows.update(unread_count=Greatest(F("unread_count"), conversation.unread_count))
    newest = max(messages, key=lambda m: m.timestamp, default=None)
    if newest is not None:
        at = _when(newest.timestamp)
        rows.filter(Q(last_message_at__isnull=True) | Q(last_message_at__lt=at)).update(
            last_message_at=at,
            last_message_preview=preview_of(str(newest.kind), newest.text, newest.caption),
        )
    elif conversation.last_message_at:
        at = _when(conversation.last_message_at)
        rows.filter(Q(last_message_at__isnull=True) | Q(last_message_at__lt=at)).update(last_message_at=at)


def _finish_chunk(device, chunk) -> list:
    """Mark the chunk imported; when it was the last one the phone announced, the sync is finished."""
    from messaging import webhooks
    from messaging.events import webhooks_receiving
    from messaging.models import HistoryChunk, HistorySync, HistorySyncState

    receiving = webhooks_receiving(device.organization_id)
    with transaction.atomic():
        sync = HistorySync.objects.select_for_update().get(device=device)
        HistoryChunk.objects.filter(pk=chunk.pk).update(imported_at=timezone.now(), imports=F("imports") + 1)
        if not chunk.imports:  # a chunk sent again after its import is imported again, but counted once
            sync.chunks_imported += 1
            sync.save(update_fields=["chunks_imported", "updated_at"])
        sync.refresh_from_db()
        pending = HistoryChunk.objects.filter(device=device, imported_at__isnull=True).exists()
        outcomes = [_outcome(PROGRESS_EVENT, sync)]
        if sync.final_received and not pending and sync.state != HistorySyncState.FINISHED:
            sync.state = HistorySyncState.FINISHED
            sync.finished_at = timezone.now()
            sync.save(update_fields=["state", "finished_at", "updated_at"])
            synced = _outcome(SYNCED_EVENT, sync)
            if receiving:
                webhooks.dispatch_event(device=device, event=SYNCED_EVENT, payload=synced.payload)
            outcomes = [_outcome(PROGRESS_EVENT, sync), synced]
        # The chunk's content is of no more use once imported (it can be large): keep only its row.
        HistoryChunk.objects.filter(pk=chunk.pk, imported_at__isnull=False).update(
            conversations=[], push_names={}
        )
    return outcomes


# ------------------------------------------------------------------------------------------ the importer


_running: dict[int, asyncio.Task] = {}
_again: set[int] = set()
_gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
RETRY_DELAYS = (0.2, 1.0, 5.0)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        for old in [key for key in _gates if key.is_closed()]:
            del _gates[old]
        gate = _gates[loop] = asyncio.Semaphore(1)
    return gate


def schedule(device_id: int) -> asyncio.Task:
    """Import the device's pending chunks in the background (on the running loop); at most one importer per
    device: a chunk arriving while it runs is picked up by it."""
    task = _running.get(device_id)
    if task is not None and not task.done():
        _again.add(device_id)
        return task
    task = asyncio.ensure_future(_import_all(device_id))
    _running[device_id] = task
    task.add_done_callback(
        lambda done: _running.pop(device_id, None) if _running.get(device_id) is done else None
    )
    return task


def importing() -> list[asyncio.Task]:
    """The importers running now (a session worker's `settle` waits for them)."""
    return [task for task in _running.values() if not task.done()]


async def _import_all(device_id: int) -> None:
    from django.db import InterfaceError, OperationalError

    from messaging import runtime
    from messaging.events import deliver

    tries = 0
    while True:
        _again.discard(device_id)
        try:
            async with _gate():
                outcomes, more = await runtime.db(import_next_chunk, device_id)
        except (OperationalError, InterfaceError) as exc:  # busy or away: the chunk stays pending
            if tries >= len(RETRY_DELAYS):
                logger.warning(
                    "history import of device %s stopped (%s); resumes on its next connect", device_id, exc
                )
                return
            await asyncio.sleep(RETRY_DELAYS[tries])
            tries += 1
            continue
        except Exception:
            logger.exception("history import of device %s failed", device_id)
            return
        tries = 0
        await deliver(outcomes)
        if not more and device_id not in _again:
            return
