"""Domain events of the session workers: persisted first, then pushed live, then handed to the webhooks.

`handle(event)` is what a worker's clients emit into. Every step after the write is best effort: a received
message is stored before anything else is done with it, and a failing push or webhook never loses it.
Live messages go to the channel groups f"org-{id}" and f"device-{id}":
{"type": "wa.event", "event": name, "device_id": id, "data": payload + a few internal keys, "eid": unique}.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from messaging import gateway, runtime
from messaging.services.media import UNKNOWN_TYPE
from messaging.whatsapp import protocol

logger = logging.getLogger(__name__)

MessageKind = protocol.MessageKind
MEDIA_DOWNLOAD_TIMEOUT = 30.0

# Observers of every published event (name, device_id, data), called on the loop; the test fixture uses it.
_listeners: list[Callable[[str, int, dict], None]] = []


def add_listener(listener: Callable[[str, int, dict], None]) -> None:
    _listeners.append(listener)


def remove_listener(listener: Callable[[str, int, dict], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


@dataclass(slots=True)
class Outcome:
    """One named event to publish after the write: webhook payload plus live-only extras."""

    name: str
    organization_id: int
    device_id: int
    payload: dict
    extra: dict = field(default_factory=dict)
    # False: live only (not a webhook event, or no endpoint of the organization receives).
    webhook: bool = True
    media_message_id: int | None = None  # a received message whose media is still to fetch
    held_deliveries: list[int] = field(default_factory=list)  # its webhook deliveries, waiting for the media
    media_ref: dict | None = None


# ------------------------------------------------------------------------------------------ payloads


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _from_unix(ts: float | None) -> datetime:
    if not ts:
        return timezone.now()
    return datetime.fromtimestamp(ts, UTC)


def message_payload(message) -> dict:
    """The contract's message payload (webhooks and live) of a stored Message."""
    media = None
    if message.media or message.media_mime:
        media = {
            "mime_type": message.media_mime,
            "size": message.media_size or 0,
            "filename": message.media_filename,
        }
        if message.media:
            try:
                media["url"] = message.media.url
            except ValueError:
                pass
    return {
        "id": message.wa_id,
        "chat_id": message.chat.jid,
        "from": message.sender_jid,
        "from_lid": message.sender_lid,
        "chat_lid": message.chat.lid,
        "from_name": message.sender_name,
        "from_me": message.from_me,
        "timestamp": rfc3339(message.timestamp),
        "kind": message.kind,
        "text": message.text,
        "caption": message.caption,
        "media": media,
        "reaction": "",
        "reacted_message_id": "",
        "replied_to_id": message.reply_to_id,
        "quoted_body": message.quoted_body,
        "status": message.status,
    }


def _incoming_payload(msg: protocol.IncomingMessage, *, status: str = "received") -> dict:
    """Payload of a received message that is not stored as its own row (reaction, edit, revoke)."""
    return {
        "id": msg.id,
        "chat_id": msg.chat,
        "from": msg.sender,
        "from_lid": msg.sender_lid,
        "chat_lid": msg.chat_lid,
        "from_name": msg.sender_name,
        "from_me": msg.from_me,
        "timestamp": rfc3339(_from_unix(msg.timestamp)),
        "kind": str(msg.kind),
        "text": msg.text,
        "caption": msg.caption,
        "media": None,
        "reaction": msg.reaction if msg.kind == MessageKind.REACTION else "",
        "reacted_message_id": msg.target_id if msg.kind == MessageKind.REACTION else "",
        "replied_to_id": msg.reply_to_id,
        "quoted_body": msg.quoted_body,
        "status": status,
        "target_id": msg.target_id,
    }


def device_payload(device) -> dict:
    return {
        "status": device.status,
        "reason": device.status_reason,
        "jid": device.jid,
        "phone": device.phone,
        "push_name": device.push_name,
    }


def call_payload(event: protocol.CallOfferEvent) -> dict:
    """The call.offer payload: who calls (phone JID, with the @lid the offer named them by), and what the
    number's auto-reject setting did (`rejected`, and `reply_sent`: its reply text was queued)."""
    return {
        "call_id": event.call_id,
        "from": event.caller,
        "from_lid": event.caller_lid,
        "caller_jid": event.caller,  # what POST /call/reject takes
        "is_video": event.is_video,
        "is_group": event.is_group,
        "group_id": event.group,
        "timestamp": rfc3339(_from_unix(event.timestamp)),
        "rejected": event.rejected,
        "reply_sent": event.reply_sent,
        "reject_error": event.reject_error,
    }


def preview_of(kind: str, text: str, caption: str) -> str:
    body = text or caption
    return (body or f"[{kind}]")[:200]


# ------------------------------------------------------------------------------------------ persisting


def _device(device_id: int, *, only=()):
    """The device row, locked for the event's transaction; `only`: just these fields (a receipt needs no more
    than the device's identity, and the whole row is read for nothing on every receipt)."""
    from messaging.models import Device

    rows = Device.objects.select_for_update(no_key=True).filter(pk=device_id)
    return (rows.only(*only) if only else rows).first()


def _for_webhooks(outcomes: list[Outcome]) -> list[Outcome]:
    """Mark outcomes not for webhooks when their organization has no endpoint that receives anything now.

    One cheap EXISTS per organization with the write, so that for an organization without webhooks (the
    common case) the dispatcher is not called at all: no extra trip to the database, no transaction to
    dispatch to nobody.
    """
    from messaging import webhooks

    receiving: dict[int, bool] = {}
    for outcome in outcomes:
        if not outcome.webhook:
            continue
        if outcome.name not in webhooks.EVENT_NAMES:
            outcome.webhook = False
            continue
        org = outcome.organization_id
        if org not in receiving:
            receiving[org] = webhooks_receiving(org)
        outcome.webhook = receiving[org]
    return outcomes


def _update_device(device, **changes) -> None:
    for key, value in changes.items():
        setattr(device, key, value)
    device.save(update_fields=[*changes, "updated_at"])


def _persist_device_event(device, event: protocol.Event) -> list[Outcome]:
    from messaging.models import DeviceStatus

    now = timezone.now()
    org, dev = device.organization_id, device.pk
    if isinstance(event, protocol.QRCodeEvent):
        _update_device(
            device,
            qr_code=event.code,
            qr_expires_at=now + timedelta(seconds=event.expires_in),
            status=DeviceStatus.QR_WAITING,
            status_reason="",
        )
        payload = {**device_payload(device), "qr_code": event.code, "qr_duration": event.expires_in}
        payload["expires_at"] = rfc3339(device.qr_expires_at)
        return [Outcome("device.qr", org, dev, payload)]
    if isinstance(event, protocol.PairCodeEvent):
        _update_device(device, pair_code=event.code, status=DeviceStatus.PAIRING, status_reason="")
        return [
            Outcome(
                "device.pair_code",
                org,
                dev,
                {**device_payload(device), "pair_code": event.code, "expires_in": event.expires_in},
            )
        ]
    if isinstance(event, protocol.PairedEvent):
        jid = protocol.normalize_jid(event.jid) if event.jid else device.jid
        _update_device(
            device,
            jid=jid,
            phone=protocol.jid_user(jid) if jid else device.phone,
            push_name=event.push_name or device.push_name,
            qr_code="",
            qr_expires_at=None,
            pair_code="",
            status=DeviceStatus.CONNECTING,
            status_reason="",
        )
        return [Outcome("device.status", org, dev, device_payload(device))]
    if isinstance(event, protocol.ConnectedEvent):
        changes = dict(
            status=DeviceStatus.CONNECTED,
            status_reason="",
            qr_code="",
            qr_expires_at=None,
            pair_code="",
            connected_at=now,
            last_seen_at=now,
        )
        if event.jid:
            changes["jid"] = protocol.normalize_jid(event.jid)
            changes["phone"] = protocol.jid_user(changes["jid"])
        if event.push_name:
            changes["push_name"] = event.push_name
        _update_device(device, **changes)
        return [Outcome("device.connected", org, dev, device_payload(device))]
    if isinstance(event, protocol.DisconnectedEvent):
        if device.status == DeviceStatus.LOGGED_OUT:
            return []
        # A known cause replaces the backend's raw words (a Go dial error), which say nothing to a person.
        reason = (
            protocol.UNREACHABLE_REASON
            if event.cause == protocol.DisconnectCause.UNREACHABLE
            else event.reason
        )
        _update_device(device, status=DeviceStatus.DISCONNECTED, status_reason=reason[:200], last_seen_at=now)
        return [
            Outcome(
                "device.disconnected",
                org,
                dev,
                {**device_payload(device), "will_reconnect": event.will_reconnect},
            )
        ]
    if isinstance(event, protocol.LoggedOutEvent):
        _update_device(
            device,
            status=DeviceStatus.LOGGED_OUT,
            status_reason=event.reason[:200],
            wanted=False,
            jid="",
            qr_code="",
            qr_expires_at=None,
            pair_code="",
            last_seen_at=now,
        )
        return [Outcome("device.logged_out", org, dev, device_payload(device))]
    return []


def _chosen(poll_payload: dict | None, selected: list[str]) -> list[str]:
    """The option texts a vote chose (WhatsApp names each by the SHA-256 of its text; one the poll does not
    list stays a hash)."""
    options = (poll_payload or {}).get("poll_options") or []
    by_hash = {hashlib.sha256(o.encode()).hexdigest(): o for o in options}
    return [by_hash.get(h, h) for h in selected]


def _with_vote(payload: dict | None, voter: str, selected: list[str]) -> dict:
    """A poll's payload with `voter`'s current choice in `poll_votes` (voter JID -> option texts).

    WhatsApp names a chosen option by the SHA-256 of its text; one the poll does not list stays a hash."""
    payload = dict(payload or {})
    votes = dict(payload.get("poll_votes") or {})
    if selected:
        votes[voter] = _chosen(payload, selected)
    else:
        votes.pop(voter, None)  # the vote was withdrawn
    payload["poll_votes"] = votes
    return payload


def _persist_message(device, msg: protocol.IncomingMessage) -> list[Outcome]:
    from messaging.services import lids

    # By phone number where the device knows it; a pair the message carries may merge a LID chat first.
    merged = lids.note_message(device, msg)
    return merged + _persist_addressed_message(device, msg)


def _persist_addressed_message(device, msg: protocol.IncomingMessage) -> list[Outcome]:
    from messaging.models import Chat, Message, MessageStatus

    org, dev = device.organization_id, device.pk
    chat_jid = msg.chat
    # The chat row is locked before the message is written, as a send (`outbox.queue_message`) and a LID merge
    # lock it: the message's INSERT locks the chat's hourly tally row (messaging.tallies), so a writer taking
    # the tally first and the chat second deadlocks with one going the other way on PostgreSQL. And the
    # unread count incremented below is the one read under the lock, not one a reader reset meanwhile.
    chat, _ = Chat.objects.select_for_update(no_key=True).get_or_create(
        device=device,
        jid=chat_jid,
        defaults={"organization_id": org, "is_group": protocol.is_group(chat_jid), "lid": msg.chat_lid},
    )
    if msg.chat_lid and chat.lid != msg.chat_lid:
        chat.lid = msg.chat_lid
        Chat.objects.filter(pk=chat.pk).update(lid=chat.lid)
    if msg.kind in (MessageKind.REACTION, MessageKind.EDIT, MessageKind.REVOKE, MessageKind.POLL_VOTE):
        target = (
            Message.objects.select_for_update(no_key=True).filter(device=device, wa_id=msg.target_id).first()
        )
        extra = {"chat_pk": chat.pk}
        if msg.kind == MessageKind.REACTION:
            name = "message.reaction"
            if target is not None and target.revoked_at is None:  # a deleted message keeps no reactions
                reactions = dict(target.reactions or {})
                if msg.reaction:
                    reactions[msg.sender] = msg.reaction
                else:
                    reactions.pop(msg.sender, None)
                target.reactions = reactions
                target.save(update_fields=["reactions"])
        elif msg.kind == MessageKind.POLL_VOTE:
            name = "message.poll_vote"
            if target is not None:
                target.payload = _with_vote(target.payload, msg.sender, msg.poll_selected)
                target.save(update_fields=["payload"])
        elif msg.kind == MessageKind.EDIT:
            name = "message.edited"
            if target is not None:
                if target.kind in (MessageKind.TEXT, MessageKind.LINK):
                    target.text = msg.text
                else:
                    target.caption = msg.text or msg.caption
                target.edited_at = _from_unix(msg.timestamp)
                target.save(update_fields=["text", "caption", "edited_at"])
        else:
            name = "message.revoked"
            if target is not None:
                # Deleted for everyone: what was said of it (its reactions, our star) goes with it.
                target.revoked_at = _from_unix(msg.timestamp)
                target.reactions, target.starred = {}, False
                target.save(update_fields=["revoked_at", "reactions", "starred"])
        if target is not None:
            extra["message_pk"] = target.pk
        payload = _incoming_payload(msg)
        if msg.kind == MessageKind.POLL_VOTE:
            # What the voter now chooses, as option texts (none: the vote was withdrawn).
            payload["poll_selected"] = _chosen(target.payload if target else None, msg.poll_selected)
        return [Outcome(name, org, dev, payload, extra)]

    timestamp = _from_unix(msg.timestamp)
    payload: dict = {}
    if msg.latitude is not None or msg.longitude is not None:
        payload.update(latitude=msg.latitude, longitude=msg.longitude)
    if msg.contact_name or msg.contact_vcard:
        payload.update(contact_name=msg.contact_name, contact_vcard=msg.contact_vcard)
    if msg.poll_question:
        payload.update(poll_question=msg.poll_question, poll_options=list(msg.poll_options))
    if msg.media is not None:
        payload["media_ref"] = msg.media.ref
        payload["media_sha256"] = msg.media.sha256
    message, created = Message.objects.get_or_create(
        device=device,
        wa_id=msg.id,
        defaults=dict(
            organization_id=org,
            chat=chat,
            from_me=msg.from_me,
            sender_jid=msg.sender,
            sender_lid=msg.sender_lid,
            sender_name=msg.sender_name,
            kind=str(msg.kind),
            text=msg.text,
            caption=msg.caption,
            # The sender's word is not taken: the type comes from the bytes once they are in (store_media).
            media_mime=UNKNOWN_TYPE if msg.media else "",
            media_size=msg.media.size if msg.media else None,
            media_filename=msg.media.filename if msg.media else "",
            payload=payload,
            reply_to_id=msg.reply_to_id,
            quoted_body=msg.quoted_body,
            is_forwarded=msg.is_forwarded,
            view_once=msg.view_once,
            # Sent from the phone (or another linked device): already out, not something we received.
            status=MessageStatus.SENT if msg.from_me else MessageStatus.RECEIVED,
            timestamp=timestamp,
            sent_at=timestamp if msg.from_me else None,
        ),
    )
    if not created:
        if not (message.payload or {}).get("history"):
            return []  # a redelivery: stored and published already
        # A message that came in while the phone was sending its history: the import stored it quietly
        # first, so this live delivery is its first announcement (pages, webhooks). The flag goes, so a
        # redelivery after this one is one again. (Under the device lock: two deliveries cannot both pass.)
        message.payload = {k: v for k, v in message.payload.items() if k != "history"}
        message.save(update_fields=["payload"])
        return _announce(message, chat, msg)
    changes = ["last_message_preview"]
    chat.last_message_preview = preview_of(message.kind, message.text, message.caption)
    if chat.last_message_at is None or timestamp >= chat.last_message_at:
        chat.last_message_at = timestamp
        changes.append("last_message_at")
    if not msg.from_me:
        chat.unread_count += 1
        changes.append("unread_count")
        if not chat.is_group and msg.sender_name and not chat.name:
            chat.name = msg.sender_name[:200]
            changes.append("name")
    chat.save(update_fields=changes)
    return _announce(message, chat, msg)


def _announce(message, chat, msg: protocol.IncomingMessage) -> list[Outcome]:
    """The "message" outcome of a message stored from a live delivery (its media to fetch, if any)."""
    message.chat = chat
    outcome = Outcome(
        "message",
        message.organization_id,
        message.device_id,
        message_payload(message),
        {"message_pk": message.pk, "chat_pk": chat.pk},
    )
    if msg.media is not None and msg.media.ref and not message.media:
        outcome.media_message_id = message.pk
        outcome.media_ref = msg.media.ref
    return [outcome]


def _persist_receipt(device, event: protocol.ReceiptEvent) -> list[Outcome]:
    from messaging.models import Message
    from messaging.models.chat import STATUS_ORDER

    new = str(event.type)
    rank = STATUS_ORDER.get(new, -1)
    found = {
        m.wa_id: m
        for m in Message.objects.select_for_update(no_key=True)
        .filter(device=device, wa_id__in=list(event.message_ids), from_me=True)
        # Not the whole rows (JSON fields and all): a receipt is hot.
        .only("pk", "wa_id", "chat_id", "status")
    }
    # Receipts only move a message forward (a late "delivered" never undoes "read"); one UPDATE for all.
    forward = [m for m in found.values() if m.status in STATUS_ORDER and STATUS_ORDER[m.status] < rank]
    if forward:
        Message.objects.filter(pk__in=[m.pk for m in forward]).update(status=new)
        for message in forward:
            message.status = new
    outcomes = []
    for wa_id in event.message_ids:
        message = found.get(wa_id)
        extra = {}
        status = new
        if message is not None:
            extra = {"message_pk": message.pk, "chat_pk": message.chat_id}
            status = message.status
        payload = {
            "id": wa_id,
            "chat_id": event.chat,
            "from": event.sender,
            "receipt": new,
            "status": status,
            "timestamp": rfc3339(_from_unix(event.timestamp)),
        }
        outcomes.append(Outcome("message.receipt", device.organization_id, device.pk, payload, extra))
    return outcomes


def _persist_group(device, event) -> list[Outcome]:
    from messaging.models import Chat

    org, dev = device.organization_id, device.pk
    if isinstance(event, protocol.JoinRequestEvent):
        payload = {
            "group_id": event.group,
            "requester": event.requester,
            "action": event.action,
            "timestamp": rfc3339(_from_unix(event.timestamp)),
        }
        return [Outcome("group.join_request", org, dev, payload)]
    if event.change == protocol.GroupChange.SUBJECT and event.name is not None:
        Chat.objects.filter(device=device, jid=event.group).update(name=event.name[:200])
    payload = {
        "group_id": event.group,
        "change": str(event.change),
        "actor": event.actor,
        "action": event.action,
        "participants": list(event.participants),
        "name": event.name,
        "topic": event.topic,
        "locked": event.locked,
        "announce": event.announce,
        "timestamp": rfc3339(_from_unix(event.timestamp)),
    }
    name = "group.participants" if event.change == protocol.GroupChange.PARTICIPANTS else "group.settings"
    return [Outcome(name, org, dev, payload)]


def _persist_label(device, event) -> list[Outcome]:
    """A label made, changed or deleted (label.edit), or put on a chat or taken off it (label.association)."""
    from messaging.models import Chat, Label

    org, dev = device.organization_id, device.pk
    label_id = str(event.label_id)[:64]
    when = rfc3339(_from_unix(event.timestamp))
    if isinstance(event, protocol.LabelEditEvent):
        color = event.color if 0 <= event.color < len(protocol.LABEL_COLORS) else 0
        if event.deleted:
            Label.objects.filter(device=device, label_id=label_id).delete()
        else:
            Label.objects.update_or_create(
                device=device,
                label_id=label_id,
                defaults={"name": (event.name or "")[:100], "color": color},
                create_defaults={"organization_id": org, "name": (event.name or "")[:100], "color": color},
            )
        payload = {
            "label_id": label_id,
            "name": event.name,
            "color": color,
            "deleted": event.deleted,
            "timestamp": when,
        }
        return [Outcome("label.edit", org, dev, payload)]
    chat, _created = Chat.objects.get_or_create(
        device=device,
        jid=event.chat,
        defaults={"organization_id": org, "is_group": protocol.is_group(event.chat)},
    )
    label, _created = Label.objects.get_or_create(
        device=device, label_id=label_id, defaults={"organization_id": org}
    )
    if event.labeled:
        chat.labels.add(label)
    else:
        chat.labels.remove(label)
    payload = {"chat_id": event.chat, "label_id": label_id, "labeled": event.labeled, "timestamp": when}
    return [Outcome("label.association", org, dev, payload, {"chat_pk": chat.pk})]


def persist(event: protocol.Event) -> list[Outcome]:
    """Write what `event` changes, in one transaction; returns what to publish. Sync (the worker's DB thread).

    Webhook deliveries are stored in the same transaction, so a crash after it cannot lose them; those of a
    received message whose media is still to fetch are held until `handle` has stored it (`release_held`).
    """
    from messaging import webhooks
    from messaging.models import WebhookEndpoint

    if isinstance(event, protocol.HistorySyncEvent):
        # Stored only (its own transaction, without the device row's lock): imported in the background.
        from messaging.services import history_import

        return history_import.receive_chunk(event)
    # A read before the write lock: for an organization without webhooks (the common case), nothing more.
    # A paused endpoint counts: its events are stored and held until it answers again.
    receiving = WebhookEndpoint.objects.filter(organization__devices=event.device_id, active=True).exists()
    with transaction.atomic():
        receipt = isinstance(event, protocol.ReceiptEvent)
        device = _device(event.device_id, only=("id", "organization_id") if receipt else ())
        if device is None:
            return []  # removed meanwhile
        outcomes = _persist(device, event)
        for outcome in outcomes:
            if receiving and outcome.webhook:
                ids = webhooks.dispatch_event(
                    device=device,
                    event=outcome.name,
                    payload=outcome.payload,
                    hold_seconds=MEDIA_DOWNLOAD_TIMEOUT + 30 if outcome.media_message_id else None,
                )
                if outcome.media_message_id:
                    outcome.held_deliveries = ids
            outcome.webhook = False  # dispatched (or nobody receives): `deliver` only publishes it
    return outcomes


def _persist(device, event: protocol.Event) -> list[Outcome]:
    """The writes of `persist`, by kind of event (inside its transaction, the device row locked)."""
    if isinstance(event, protocol.MessageEvent):
        return _persist_message(device, event.message)
    if isinstance(event, protocol.ReceiptEvent):
        return _persist_receipt(device, event)
    if isinstance(event, protocol.LidMappingEvent):
        from messaging.services import lids

        return lids.learn(device, lid=event.lid, phone=event.phone)
    if isinstance(event, protocol.GroupChangedEvent | protocol.JoinRequestEvent):
        return _persist_group(device, event)
    if isinstance(event, protocol.LabelEditEvent | protocol.LabelAssociationEvent):
        return _persist_label(device, event)
    if isinstance(event, protocol.PresenceEvent):
        payload = {"jid": event.jid, "available": event.available, "last_seen": event.last_seen}
        return [Outcome("presence", device.organization_id, device.pk, payload, webhook=False)]
    if isinstance(event, protocol.CallOfferEvent):
        return [Outcome("call.offer", device.organization_id, device.pk, call_payload(event))]
    if isinstance(event, protocol.ChatPresenceEvent):
        payload = {
            "chat_id": event.chat,
            "from": event.sender,
            "state": str(event.state),
            "media": event.media,
        }
        return [Outcome("chat.presence", device.organization_id, device.pk, payload)]
    return _persist_device_event(device, event)


def record_status(
    device_id: int, status: str, reason: str = "", *, only_if: str | None = None
) -> list[Outcome]:
    """Set a device's status from the worker itself (connecting, worker stopped); returns the device.status outcome.

    With `only_if`, only a device whose status is that one changes (a stopping worker marks connected ones).
    """
    with transaction.atomic():
        device = _device(device_id)
        if device is None or (device.status == status and device.status_reason == reason):
            return []
        if only_if is not None and device.status != only_if:
            return []
        _update_device(device, status=status, status_reason=reason[:200])
        outcome = Outcome("device.status", device.organization_id, device.pk, device_payload(device))
    return _for_webhooks([outcome])


@functools.cache
def _active_endpoint():
    from messaging.models import WebhookEndpoint
    from waportal.prepared import Prepared

    return Prepared(
        lambda organization_id: (
            WebhookEndpoint.objects.filter(organization_id=organization_id, active=True)
            .only("id")
            .order_by()[:1]
        ),
        int,
    )


def webhooks_receiving(organization_id: int) -> bool:
    """Whether the organization has an active endpoint (a paused one too: its events are held for it). Asked
    before a write's transaction (a read needs no write lock), so that `outcome_of_message` in it costs
    nothing more when nobody receives. (Asked for every message sent and received: its SQL is compiled once.)"""
    return bool(_active_endpoint()(organization_id))


def outcome_of_message(message, name: str, *, receiving: bool) -> list[Outcome]:
    """A stored outgoing message's event (message.sent, message.failed), made inside the transaction that
    wrote its status: its webhook deliveries are stored with that write (a crash right after the commit
    cannot lose them), and `deliver` only publishes it. `message` is the row as written, with its chat;
    `receiving` is `webhooks_receiving` of its organization."""
    from messaging import webhooks
    from messaging.models import Device

    payload = message_payload(message)
    if name in ("message.failed", "message.unknown"):
        payload["error"] = message.error
    outcome = Outcome(
        name,
        message.organization_id,
        message.device_id,
        payload,
        {"message_pk": message.pk, "chat_pk": message.chat_id},
        webhook=False,
    )
    if receiving:
        device = Device(pk=message.device_id, organization_id=message.organization_id)
        webhooks.dispatch_event(device=device, event=name, payload=payload)
    return [outcome]


def _store_media(message_id: int, data: bytes) -> None:
    from messaging.models import Message
    from messaging.services.downloads import store_media

    message = Message.objects.filter(pk=message_id).first()
    if message is None or message.media:
        return
    store_media(message, data)


def _refresh_payload(outcome: Outcome) -> None:
    from messaging.models import Message

    message = Message.objects.select_related("chat").filter(pk=outcome.media_message_id).first()
    if message is not None:
        outcome.payload = message_payload(message)


def _release_held(outcome: Outcome) -> None:
    from messaging import webhooks

    try:
        webhooks.release_held(outcome.held_deliveries, outcome.payload)
    except Exception:  # they go as they are once their hold has passed (requeue_stalled)
        logger.exception("held webhook deliveries %s were not released", outcome.held_deliveries)


# ------------------------------------------------------------------------------------------ publishing


# The end of an outbox send: also published to the message's own group, where the API request waits for it.
SEND_RESULTS = frozenset({"message.sent", "message.failed"})


def outbox_group(device_id: int, wa_id: str) -> str:
    """The channel group of one outgoing message, told when it was sent or failed (see `publish`). Named by
    its WhatsApp ID (unique per device), which the request that stores it knows before storing."""
    return f"outbox-{device_id}-{wa_id}"


# Requests of this process waiting for the end of a send, by (device ID, WhatsApp ID): `publish` hands the
# event to the waiting thread directly instead of through the message's channel group (see `queue_message`).
_send_waiters: dict[tuple[int, str], concurrent.futures.Future] = {}


def expect_send_result(device_id: int, wa_id: str) -> concurrent.futures.Future:
    """A future that gets the message.sent / message.failed event of the message, when this process's worker
    publishes it. Call `stop_expecting` when done waiting, whatever happened."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    _send_waiters[device_id, wa_id] = future
    return future


def stop_expecting(device_id: int, wa_id: str) -> None:
    _send_waiters.pop((device_id, wa_id), None)


async def publish(outcome: Outcome) -> None:
    """Push one outcome to the organization's and the device's channel groups (live dashboard); the end of a
    send also to the message's group (the request that queued it waits there, not woken by every event)."""
    data = {**outcome.payload, **outcome.extra}
    message = {
        "type": "wa.event",
        "event": outcome.name,
        "device_id": outcome.device_id,
        "data": data,
        # A socket in both groups receives it twice; consumers drop the repeat by this id.
        "eid": uuid.uuid4().hex,
    }
    groups = [f"org-{outcome.organization_id}", f"device-{outcome.device_id}"]
    if outcome.name in SEND_RESULTS and (wa_id := outcome.payload.get("id")):
        waiter = _send_waiters.pop((outcome.device_id, wa_id), None)
        if waiter is not None:  # the request waits in this process: it is the only one waiting
            waiter.set_result(message)
        else:
            groups.append(outbox_group(outcome.device_id, wa_id))
    layer = get_channel_layer()
    try:
        if not gateway.layer_recently_failed():  # (else skipped at once: it is down, see gateway)
            for group in groups:
                await layer.group_send(group, message)
    except gateway.CHANNEL_LAYER_ERRORS as exc:  # Redis is down: the pages catch up when they reload
        gateway.note_layer_failure()
        logger.warning(
            "live push of %s for device %s skipped: the channel layer is unavailable (%s: %s)",
            outcome.name,
            outcome.device_id,
            type(exc).__name__,
            exc,
        )
    except Exception:
        logger.exception("live push of %s for device %s failed", outcome.name, outcome.device_id)
    for listener in list(_listeners):
        try:
            listener(outcome.name, outcome.device_id, data)
        except Exception:
            logger.exception("event listener failed")


def dispatch_webhooks(outcomes: list[Outcome]) -> None:
    """Hand each outcome to the webhook dispatcher, each in its own transaction; failures are logged only."""
    from messaging import webhooks
    from messaging.models import Device

    outcomes = [o for o in _for_webhooks(outcomes) if o.webhook]
    if not outcomes:
        return  # no transaction to dispatch to nobody
    devices = {d.pk: d for d in Device.objects.filter(pk__in={o.device_id for o in outcomes})}
    for outcome in outcomes:
        device = devices.get(outcome.device_id)
        if device is None:
            continue
        try:
            with transaction.atomic():
                webhooks.dispatch_event(device=device, event=outcome.name, payload=outcome.payload)
        except Exception:
            logger.exception("webhook dispatch of %s for device %s failed", outcome.name, outcome.device_id)


async def deliver(outcomes: list[Outcome]) -> None:
    """After the write: push live, then webhooks."""
    if not outcomes:
        return
    for outcome in outcomes:
        await publish(outcome)
    if any(o.webhook for o in outcomes):
        await runtime.db(dispatch_webhooks, outcomes)


# A received event is retried on a database error, never dropped (a busy SQLite file, PostgreSQL restarting or
# at its connection limit): waits between tries, the last one repeating. `persist` is safe to run again: a
# rolled-back try wrote nothing, and a stored message is recognised by its ID.
PERSIST_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)


async def _persist_until_stored(event: protocol.Event) -> list[Outcome]:
    from django.db import InterfaceError, OperationalError

    tries = 0
    while True:
        try:
            return await runtime.db(persist, event)
        # Only the database being busy or away; a bug (ProgrammingError, IntegrityError...) fails as before.
        except (OperationalError, InterfaceError) as exc:
            delay = PERSIST_RETRY_DELAYS[min(tries, len(PERSIST_RETRY_DELAYS) - 1)]
            tries += 1
            logger.warning(
                "storing %s of device %s failed (%s); try %d again in %gs",
                type(event).__name__,
                event.device_id,
                exc,
                tries + 1,
                delay,
            )
            await asyncio.sleep(delay)


async def handle(
    event: protocol.Event, *, download: Callable[..., Awaitable[bytes]] | None = None
) -> list[Outcome]:
    """Persist `event`, fetch media of a received message, push it live, hand it to webhooks."""
    outcomes = await _persist_until_stored(event)
    for outcome in outcomes:
        if outcome.media_message_id and download is not None:
            try:
                data = await asyncio.wait_for(download(ref=outcome.media_ref), MEDIA_DOWNLOAD_TIMEOUT)
                await runtime.db(_store_media, outcome.media_message_id, data)
                await runtime.db(_refresh_payload, outcome)
            except Exception as exc:  # the stored ref lets it be fetched on demand later
                logger.warning("media of message %s not downloaded: %s", outcome.media_message_id, exc)
        if outcome.held_deliveries:
            await runtime.db(_release_held, outcome)
    await deliver(outcomes)
    if isinstance(event, protocol.HistorySyncEvent | protocol.ConnectedEvent):
        # History is imported beside live events, not before them; on connect, what a dead worker left.
        from messaging.services import history_import

        history_import.schedule(event.device_id)
    return outcomes


async def set_status(device_id: int, status: str, reason: str = "") -> None:
    await deliver(await runtime.db(record_status, device_id, status, reason))
