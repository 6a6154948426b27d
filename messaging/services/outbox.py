"""The outbox: an accepted send is stored first (with its WhatsApp ID), then sent once by the owning worker."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.services import record_audit
from messaging import events, gateway, runtime
from messaging.models import Chat, Device, Message, MessageStatus
from messaging.services import downloads, lids
from messaging.services import text as text_rules
from messaging.whatsapp import protocol
from waportal import fast_insert
from waportal.i18n import localize

__all__ = ["queue_message"]

logger = logging.getLogger(__name__)

# Give up on a message that keeps failing for reasons other than WhatsApp's refusal.
MAX_ATTEMPTS = 5

_PAYLOAD_FIELDS = (
    "view_once",
    "compress",
    "contact_name",
    "contact_phone",
    "latitude",
    "longitude",
    "poll_question",
    "poll_options",
    "poll_max_answer",
    "mentions",
    "expiration",
    "ptt",
    "gif_playback",
)


def _kind(value) -> protocol.MessageKind:
    try:
        kind = protocol.MessageKind(value or "text")
    except ValueError:
        raise ValidationError({"kind": f"{value!r} is not a kind of message that can be sent."}) from None
    if kind in (
        protocol.MessageKind.REACTION,
        protocol.MessageKind.EDIT,
        protocol.MessageKind.REVOKE,
        protocol.MessageKind.UNKNOWN,
    ):
        raise ValidationError({"kind": f"{kind} messages are not sent through the outbox."})
    return kind


def queue_message(*, organization, device, outgoing: dict, actor=None, api_key=None) -> Message:
    """Store a message to send (status queued, its WhatsApp ID generated now), hand it to the owning worker.

    `outgoing` holds OutgoingMessage fields except `id` (`reply_to_id` names a message of the chat to quote).
    Returns the Message: `sent` if the worker sent it within WA_SEND_WAIT_SECONDS, else `queued` (it goes out
    once the device is connected, never twice). Bad input raises ValidationError naming the field.
    """
    # Through the organization (tenancy), with the lease that says which worker to hand it to: read again
    # unless the caller just read it so (the API reads the device with its lease for this request).
    if device.organization_id != organization.pk or not Device._meta.get_field("lease").is_cached(device):
        device = organization.devices.select_related("lease").get(pk=device.pk)
    lease = getattr(device, "lease", None)  # RelatedObjectDoesNotExist is an AttributeError too
    channel = lease.channel_name if lease is not None and lease.is_live else None
    outgoing = dict(outgoing)
    # Text the database would refuse mid-transaction (a lone surrogate, a NUL) is bad input, said as such.
    if (bad := text_rules.problem_at({k: v for k, v in outgoing.items() if k != "media"})) is not None:
        raise ValidationError({text_rules.field_path(bad[0][:1]): bad[1]})
    try:
        to = protocol.normalize_jid(outgoing.pop("to", ""))
    except ValueError as exc:
        raise ValidationError({"to": localize(str(exc))}) from None
    lid_to = to if protocol.is_lid(to) else ""
    to = lids.phone_for(device, to)  # a hidden user ID whose number the device knows: to the number
    kind = _kind(outgoing.pop("kind", "text"))
    media = _media_file(outgoing.pop("media", None))
    if kind in protocol.MEDIA_KINDS and (media is None or not media.size):
        raise ValidationError({"media": f"a {kind} message needs the file."})
    reply_to_id = (outgoing.pop("reply_to_id", "") or "").strip()
    text = outgoing.pop("text", "") or ""
    caption = outgoing.pop("caption", "") or ""
    mime_type = outgoing.pop("mime_type", "") or ""
    filename = outgoing.pop("filename", "") or ""
    is_forwarded = bool(outgoing.pop("is_forwarded", False))
    payload = {key: outgoing.pop(key) for key in _PAYLOAD_FIELDS if key in outgoing}
    if outgoing:
        raise ValidationError({sorted(outgoing)[0]: "is not a field of a message to send."})
    if kind == protocol.MessageKind.TEXT and not text.strip():
        raise ValidationError({"text": "the message is empty."})

    # Everything that only reads (a quoted message) or writes no row (the media file) is done before
    # the transaction: on SQLite it holds the one write lock from its first statement to its commit.
    now = timezone.now()
    quoted_body = ""
    if reply_to_id:
        quoted = Message.objects.filter(device=device, chat__jid=to, wa_id=reply_to_id).first()
        if quoted is not None:
            quoted_body = quoted.text or quoted.caption
            payload["reply_to"] = {"sender": quoted.sender_jid or to, "from_me": quoted.from_me}
        else:
            payload["reply_to"] = {"sender": to, "from_me": False}
    message = Message(
        organization=organization,
        device=device,
        wa_id=protocol.generate_message_id(),
        from_me=True,
        sender_jid=device.jid,
        sender_name=device.push_name,
        kind=str(kind),
        text=text,
        caption=caption,
        media_mime=mime_type,
        media_size=media.size if media is not None else None,
        media_filename=filename,
        payload=payload,
        reply_to_id=reply_to_id,
        quoted_body=quoted_body,
        is_forwarded=is_forwarded,
        view_once=bool(payload.get("view_once")),
        status=MessageStatus.QUEUED,
        timestamp=now,
    )
    if media is not None and media.size:
        # Not under the sender's file name (see downloads.stored_name); storage moves an upload Django spooled
        # to disk into place, and copies any other file in chunks.
        message.media.save(downloads.stored_name(message.wa_id, mime_type), media, save=False)

    preview = events.preview_of(message.kind, text, caption)

    def store():
        nonlocal to
        with transaction.atomic():
            chat_id = _touch_chat(device.pk, to, now, preview)
            if chat_id is None and to == lid_to and (resolved := lids.phone_for(device, lid_to)) != to:
                # Its LID chat was merged into the number's meanwhile (lids.merge_chats): that chat it is.
                to = resolved
                chat_id = _touch_chat(device.pk, to, now, preview)
            if chat_id is None:  # the first message of the chat
                chat, created = Chat.objects.get_or_create(
                    device=device,
                    jid=to,
                    defaults={
                        "organization": organization,
                        "is_group": protocol.is_group(to),
                        "lid": lid_to or lids.lid_for(device, to),
                        "last_message_at": now,
                        "last_message_preview": preview,
                    },
                )
                chat_id = chat.pk if created else _touch_chat(device.pk, to, now, preview)
            message.chat_id = chat_id
            fast_insert.insert(message)
            record_audit(
                organization=organization,
                action="message.queue",
                actor=actor,
                api_key=api_key,
                obj=message,
                details={"to": to, "kind": str(kind), "device_id": device.pk},
            )

    wa_id = message.wa_id

    def sent(msg: dict) -> bool:
        return msg.get("event") in ("message.sent", "message.failed") and msg["data"].get("id") == wa_id

    async def nudge() -> None:  # (whether a worker was found is not the outcome `wait_subscribed` waits for)
        await gateway.notify_worker(device.pk, {"type": gateway.OUTBOX}, channel=channel)

    result = None
    wait = float(settings.WA_SEND_WAIT_SECONDS)
    worker = runtime.local_worker(channel) if device.is_connected else None
    if worker is not None and not runtime.on_runtime_loop():
        # The worker holding the device runs in this process (the embedded default): hand the message to it
        # and wait for the outcome in this thread, with no channel-layer round trip.
        outcome = events.expect_send_result(device.pk, wa_id)
        try:
            store()
            if worker.nudge_threadsafe(device.pk):
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    result = outcome.result(timeout=wait)
            else:  # it is stopping: whichever worker holds the device next sends it
                _nudge_only(lambda: gateway.notify_worker(device.pk, {"type": gateway.OUTBOX}))
        finally:
            events.stop_expecting(device.pk, wa_id)
    elif device.is_connected and channel:
        # Listen for the message's outcome before it is stored: the worker may send it the moment it is
        # committed, and nothing has to be read again to see whether that happened already.
        group = events.outbox_group(device.pk, wa_id)
        listening = _nudge_only(lambda: gateway.subscribe(group))
        try:
            store()
        except BaseException:
            if listening is not None:
                _nudge_only(lambda: gateway.unsubscribe(group, listening))
            raise
        gateway.release_db_connection()  # (the wait below may last WA_SEND_WAIT_SECONDS)
        if listening is None:  # the channel layer is down: stored, and the worker's heartbeat sends it
            _nudge_only(nudge)
        else:
            result = _nudge_only(
                lambda: gateway.wait_subscribed(listening, group, match=sent, timeout=wait, first=nudge),
                timeout=wait + 5,
            )
    else:
        store()
        # Offline: still tell the workers (one may be about to hold it); it is sent when the device connects.
        _nudge_only(nudge)
    if isinstance(result, dict):  # the message.sent / message.failed event: it says how the send went
        message.status = result["data"].get("status") or message.status
        message.error = result["data"].get("error", "")
        return message
    message.refresh_from_db()
    return message


def _media_file(media) -> File | None:
    """The file to store: bytes as they are, or a file object (an upload, a fetched URL), never read whole."""
    if media is None or isinstance(media, File):
        return media
    if isinstance(media, bytes | bytearray | memoryview):
        return ContentFile(bytes(media))
    return File(media)


def _nudge_only(make_coro, *, timeout: float = 5):
    """Run a channel-layer step of a send (subscribe, nudge, wait for the outcome); None if the layer fails.

    The message is in the database before any of these matter: they only make it go out (and be answered
    `sent`) sooner. With Redis down it is answered `queued`, and the holding worker's heartbeat, which looks
    for unsent messages, sends it."""
    try:
        return gateway.run_sync(make_coro, timeout=timeout)
    except (*gateway.CHANNEL_LAYER_ERRORS, protocol.UpstreamTimeout) as exc:
        logger.warning(
            "send: the channel layer failed (%s: %s); the message stays queued", type(exc).__name__, exc
        )
        return None


def _touch_chat(device_id: int, jid: str, at, preview: str) -> int | None:
    """Make this the chat's last message; returns the chat's id, None when the device has no such chat yet.

    One statement (UPDATE ... RETURNING, which SQLite and PostgreSQL both have) where the ORM takes a read and
    an update: this runs on every send, and the two cost the request ~0.3 ms of the interpreter more."""
    q = connection.ops.quote_name
    at = Chat._meta.get_field("last_message_at").get_db_prep_save(at, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {q(Chat._meta.db_table)} SET {q('last_message_at')} = %s, {q('last_message_preview')} = %s"
            f" WHERE {q('device_id')} = %s AND {q('jid')} = %s RETURNING {q('id')}",
            [at, preview, device_id, jid],
        )
        row = cursor.fetchone()
    return row[0] if row else None


# ------------------------------------------------------------------------------ the worker's side (sync)


def outgoing_of(message: Message) -> protocol.OutgoingMessage:
    """The protocol message to send for a stored outbox row (same ID every attempt: WhatsApp dedups by it)."""
    payload = message.payload or {}
    media, media_path = None, ""
    if message.media:
        # The stored file's path, not its bytes: a claimed batch is up to CLAIM_BATCH messages, each file up
        # to 100 MB. The session worker reads it for the backend when it sends it (`protocol.with_media`).
        try:
            media_path = message.media.path
        except NotImplementedError:  # a storage with no local files
            with message.media.open("rb") as fh:
                media = fh.read()
    reply_to = None
    if message.reply_to_id:
        quoted = payload.get("reply_to") or {}
        reply_to = protocol.QuotedMessage(
            id=message.reply_to_id,
            sender=quoted.get("sender") or message.chat.jid,
            text=message.quoted_body,
            from_me=bool(quoted.get("from_me")),
        )
    return protocol.OutgoingMessage(
        id=message.wa_id,
        to=message.chat.jid,
        kind=protocol.MessageKind(message.kind),
        text=message.text,
        caption=message.caption,
        media=media,
        media_path=media_path,
        mime_type=message.media_mime,
        filename=message.media_filename,
        view_once=message.view_once,
        compress=bool(payload.get("compress")),
        is_forwarded=message.is_forwarded,
        reply_to=reply_to,
        contact_name=payload.get("contact_name", ""),
        contact_phone=payload.get("contact_phone", ""),
        latitude=payload.get("latitude"),
        longitude=payload.get("longitude"),
        poll_question=payload.get("poll_question", ""),
        poll_options=list(payload.get("poll_options") or []),
        poll_max_answer=int(payload.get("poll_max_answer") or 1),
        mentions=list(payload.get("mentions") or []),
        expiration=int(payload.get("expiration") or 0),
        ptt=payload.get("ptt"),
        gif_playback=bool(payload.get("gif_playback")),
    )


# The most messages a drain claims at once: the messages that queued up while it sent the last ones go out
# together, and the reads, the status writes and the transactions around them are shared by all of them.
CLAIM_BATCH = 16

Claimed = tuple[int, protocol.OutgoingMessage, Message]


def claim_batch(device_id: int) -> list[Claimed]:
    """The device's oldest unsent messages (up to CLAIM_BATCH, oldest first), claimed: each marked sending
    (attempts+1) by an atomic status update, each with the protocol message to send.

    "sending" rows are included: only the lease holder drains a device, one drain at a time, so a row
    left in "sending" was being sent by a worker that died; resending it with the same ID is exactly once.
    """
    for _ in range(3):  # candidates that changed meanwhile are skipped; look again if all of them had
        candidates = _unsent(device_id)
        if not candidates:
            return []
        if claimed := _claim(candidates):
            return _sendable(device_id, claimed)
    return []


# What sending a stored message and reporting it read of its row (`outgoing_of`, `events.message_payload`,
# `events.outcome_of_message`): a drain reads these for every message, not the row's other dozen columns.
_SENDING_FIELDS = (
    *(
        "organization_id",
        "device_id",
        "chat__jid",
        "chat__lid",
        "wa_id",
        "from_me",
        "sender_jid",
        "sender_lid",
    ),
    "sender_name",
    "kind",
    *("text", "caption", "media", "media_mime", "media_size", "media_filename", "payload", "reply_to_id"),
    *("quoted_body", "is_forwarded", "view_once", "status", "error", "timestamp"),
)


@functools.cache
def _unsent_sql(excluded: int, vendor: str) -> str:
    """The SELECT of `_unsent` for `excluded` ids left out: written once, as the ORM would (its compiling the
    select_related query cost ~0.7 ms of the interpreter, twice for every batch a drain sends)."""
    q = connection.ops.quote_name
    own = [name for name in _SENDING_FIELDS if not name.startswith("chat__")]
    columns = ", ".join(f"m.{q(Message._meta.get_field(name).column)}" for name in ("id", "chat", *own))
    left_out = f" AND m.{q('id')} NOT IN ({', '.join(['%s'] * excluded)})" if excluded else ""
    return (
        f"SELECT {columns}, c.{q('jid')} AS chat_jid_, c.{q('lid')} AS chat_lid_ "
        f"FROM {q(Message._meta.db_table)} m INNER JOIN {q(Chat._meta.db_table)} c ON c.{q('id')} = m.{q('chat_id')} "
        f"WHERE m.{q('device_id')} = %s AND m.{q('from_me')} = %s AND m.{q('status')} IN (%s, %s){left_out} "
        f"ORDER BY m.{q('id')} ASC LIMIT %s"
    )


def _unsent(device_id: int, *, exclude=(), limit: int = CLAIM_BATCH) -> list[Message]:
    """The oldest unsent messages of the device (each with its chat's jid and lid), to claim from; the fields
    not in _SENDING_FIELDS are deferred, as with QuerySet.only()."""
    exclude = list(exclude)
    rows = Message.objects.raw(
        _unsent_sql(len(exclude), connection.vendor),
        [device_id, True, MessageStatus.QUEUED, MessageStatus.SENDING, *exclude, limit],
    )
    messages = list(rows)
    for message in messages:
        chat = Chat.from_db(
            rows.db, ["id", "jid", "lid"], [message.chat_id, message.chat_jid_, message.chat_lid_]
        )
        Message.chat.field.set_cached_value(message, chat)
        del message.chat_jid_, message.chat_lid_
    return messages


def _claim(candidates: list[Message]) -> list[Message]:
    """Claim `candidates`, as read, in one statement; the rare candidate that changed meanwhile (failed by
    someone else, say) is left out."""
    pending = [MessageStatus.QUEUED, MessageStatus.SENDING]
    with transaction.atomic():
        claimed = Message.objects.filter(pk__in=[m.pk for m in candidates], status__in=pending).update(
            status=MessageStatus.SENDING, attempts=F("attempts") + 1
        )
        if claimed == len(candidates):
            return candidates
        # Some changed: the ones this statement claimed are those sending now (read inside the write lock).
        now_sending = set(
            Message.objects.filter(
                pk__in=[m.pk for m in candidates], status=MessageStatus.SENDING
            ).values_list("pk", flat=True)
        )
    return [message for message in candidates if message.pk in now_sending]


def _sendable(device_id: int, claimed: list[Message]) -> list[Claimed]:
    """The claimed rows as protocol messages to send; one that cannot be built fails (and is left out)."""
    sendable = []
    for message in claimed:
        try:
            sendable.append((message.pk, outgoing_of(message), message))
        except (OSError, ValueError) as exc:
            # Its webhook deliveries are stored by mark_failed; only the live push of this rare case is skipped.
            mark_failed(message.pk, f"the stored message cannot be sent: {exc}")
    return sendable


def _mark_sent(sent: list[tuple[Message, protocol.SendResult]]) -> list[tuple[str, dict]]:
    """Record that WhatsApp took these messages; for each, its status now (sent, or further if a receipt came
    first) and the fields written.

    Forward only, and usually one statement for the batch: a raw UPDATE run for each message (executemany),
    where the ORM builds a query per message (~0.1 ms of the interpreter each, on every message sent)."""
    now = timezone.now()
    written = [
        {
            "sent_at": now,
            "timestamp": events._from_unix(result.timestamp) if result.timestamp else now,
            "error": "",
        }
        for _, result in sent
    ]
    q = connection.ops.quote_name
    field = Message._meta.get_field
    pending = [MessageStatus.QUEUED, MessageStatus.SENDING]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {q(Message._meta.db_table)} SET {q('status')} = %s, {q('sent_at')} = %s,"
            f" {q('timestamp')} = %s, {q('error')} = %s WHERE {q('id')} = %s AND {q('status')} IN (%s, %s)",
            [
                [
                    MessageStatus.SENT,
                    field("sent_at").get_db_prep_save(w["sent_at"], connection),
                    field("timestamp").get_db_prep_save(w["timestamp"], connection),
                    "",
                    message.pk,
                    *pending,
                ]
                for (message, _), w in zip(sent, written, strict=True)
            ],
        )
        updated = cursor.rowcount
    outcome = [(str(MessageStatus.SENT), w) for w in written]
    if updated != len(sent):  # a receipt got to some first: their status stays as it moved on
        statuses = dict(Message.objects.filter(pk__in=[m.pk for m, _ in sent]).values_list("pk", "status"))
        for i, (message, _) in enumerate(sent):
            if (status := statuses.get(message.pk, "")) != MessageStatus.SENT:
                Message.objects.filter(pk=message.pk).update(**written[i])
                outcome[i] = (status, written[i])
    return outcome


def sent_and_claim_next(
    sent: list[tuple[Message, protocol.SendResult]], device_id: int, *, claim: bool = True
) -> tuple[list[events.Outcome], list[Claimed]]:
    """After sends went out: mark them sent, make their message.sent outcomes and claim the device's next
    messages (unless `claim` is false).

    One trip to the database and one write transaction for all of it: the drain of a busy device does this
    after every batch. Each message is the row as claimed (with its chat); its outcome is built from it and
    what was written, not read again. They are published only after this returns.
    """
    # Reads before the write lock is taken.
    candidates = _unsent(device_id, exclude=[m.pk for m, _ in sent]) if claim else []
    receiving = events.webhooks_receiving(sent[0][0].organization_id) if sent else False
    outcomes: list[events.Outcome] = []
    with transaction.atomic():
        for (message, _), (status, written) in zip(sent, _mark_sent(sent) if sent else [], strict=True):
            message.status = status
            for name, value in written.items():
                setattr(message, name, value)
            outcomes += events.outcome_of_message(message, "message.sent", receiving=receiving)
        following = _claim(candidates) if candidates else []
    if candidates and not following:  # changed meanwhile (not by this drain): look again
        return outcomes, claim_batch(device_id)
    return outcomes, _sendable(device_id, following)


def mark_failed(message_id: int, error: str) -> list[events.Outcome]:
    """Fail an unsent message for good; returns its message.failed event to publish (its webhook deliveries
    are stored with the write). Nothing when it was no longer unsent."""
    return _settle(message_id, MessageStatus.FAILED, error, "message.failed")


def _settle(message_id: int, status: str, error: str, event: str) -> list[events.Outcome]:
    """An unsent message's last word (failed, unknown): written only while it is still unsent."""
    message = Message.objects.select_related("chat").filter(pk=message_id).first()
    if message is None:
        return []
    receiving = events.webhooks_receiving(message.organization_id)
    with transaction.atomic():
        settled = Message.objects.filter(
            pk=message_id, status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
        ).update(status=status, error=error[:300])
        if not settled:
            return []
        message.status, message.error = status, error[:300]
        return events.outcome_of_message(message, event, receiving=receiving)


def mark_unknown(message_id: int, reason: str) -> list[events.Outcome]:
    """An unsent message whose earlier send may or may not have reached WhatsApp (`protocol.SendOutcomeUnknown`):
    `unknown`, not sent again until someone asks (`messages.resend_message`). Returns its message.unknown event, whose
    webhook deliveries are stored with the write."""
    return _settle(message_id, MessageStatus.UNKNOWN, reason, "message.unknown")


def requeue(message_id: int, error: str = "") -> list[events.Outcome] | None:
    """Back to queued after a send that did not go out (None); after MAX_ATTEMPTS it is failed instead, and
    its message.failed event (see `mark_failed`) is returned. No `error`: the device was not connected, and
    that try does not count (`release_claims`)."""
    if not error:
        release_claims([message_id])
        return None
    message = Message.objects.filter(pk=message_id).only("attempts").first()
    if message is not None and message.attempts >= MAX_ATTEMPTS:
        return mark_failed(message_id, error)
    Message.objects.filter(pk=message_id, status=MessageStatus.SENDING, attempts__gt=0).update(
        status=MessageStatus.QUEUED, error=error[:300]
    )
    return None


def release_claims(message_ids) -> None:
    """Back to queued, not counting the try: messages claimed by a drain that stopped before sending them."""
    Message.objects.filter(pk__in=list(message_ids), status=MessageStatus.SENDING, attempts__gt=0).update(
        status=MessageStatus.QUEUED, attempts=F("attempts") - 1
    )


def devices_with_pending(device_ids) -> set[int]:
    return set(
        Message.objects.filter(
            device_id__in=list(device_ids),
            from_me=True,
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING],
        )
        .values_list("device_id", flat=True)
        .distinct()
    )
