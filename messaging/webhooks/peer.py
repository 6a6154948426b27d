"""The reference server's webhook format (go-whatsapp-web-multidevice v9): our events as its receivers expect them.

An endpoint whose `payload_format` is "peer" gets `{"event", "device_id" (the number's JID), "session_id" (our
device id, a string), "payload", ["timestamp"]}` with the peer's event names and payload fields, so a receiver
written for it works unchanged. What the peer has no event for (connection, QR, outbox status, group settings,
join requests, test events) still goes, in the same envelope, under our name and with our payload. Retries,
signing and the Idempotency-Key header are the delivery's, the same in both formats.

The facts (names, fields, types) are the peer's documented webhook payloads (docs/webhook-payload.md of
aldinokemal/go-whatsapp-web-multidevice) and its event code; see also ../shared/spec/PEER-V9.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.core.serializers.json import DjangoJSONEncoder

from messaging.webhooks.wire import envelope

PEER_FORMAT = "peer"  # messaging.models.WebhookFormat.PEER (this package does not import the models at load)

# Our public event name -> the peer's. Names the peer shares with us (and those other parts of the house add
# under the peer's own name: call.offer, label.*, newsletter.*, message.deleted, group.joined) stay as they are.
PEER_EVENT_NAMES = {
    "message.receipt": "message.ack",
    "chat.presence": "chat_presence",
}

# The peer's events: translated into its fields. Anything else is one of our extra (lifecycle) events.
PEER_EVENTS = frozenset(
    {
        "message",
        "message.reaction",
        "message.revoked",
        "message.edited",
        "message.ack",
        "message.deleted",
        "chat_presence",
        "group.participants",
        "group.joined",
        "label.edit",
        "label.association",
        "newsletter.joined",
        "newsletter.left",
        "newsletter.message",
        "newsletter.mute",
        "call.offer",
    }
)

# The peer puts no top-level timestamp on these (their payload has one); on every other event it does.
NO_TOP_TIMESTAMP = frozenset(
    {"message", "message.reaction", "message.revoked", "message.edited", "message.deleted"}
)

# The peer's receipt_type_description, by receipt_type (its words, as its receivers may show them).
RECEIPT_DESCRIPTIONS = {
    "delivered": "means the message was delivered to the device (but the user might not have noticed).",
    "read": "the user opened the chat and saw the message.",
    "played": "the recipient played the media (a voice note, video or view-once message).",
}
UNKNOWN_RECEIPT = "unknown receipt type"

# Our group participant actions -> the peer's `type`.
GROUP_ACTIONS = {"add": "join", "join": "join", "remove": "leave", "leave": "leave"}

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker", "video_note")


def timestamp(value) -> str:
    """RFC 3339 to the second, UTC, as the peer writes it (Go's time.RFC3339): 2026-12-04T21:48:16Z.

    Takes our RFC 3339 strings (with fractions), datetimes and unix seconds; an unreadable value is kept."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def peer_name(event: str, payload: dict, *, own_jid: str = "") -> str:
    """The event's name in the peer's format (ours for our extra events)."""
    if event == "group.participants" and _we_joined(payload, own_jid):
        return "group.joined"
    return PEER_EVENT_NAMES.get(event, event)


def render_in(payload_format: str, *, event: str, device, payload: dict, at: datetime) -> tuple[str, str]:
    """(the event's name in the body, the JSON body) of our public `event` for an endpoint of `payload_format`;
    `device` may be None (a test event)."""
    if payload_format != PEER_FORMAT:
        return event, envelope(event=event, device_id=device.pk if device else None, payload=payload, at=at)
    return render(
        event=event,
        device_jid=device_jid(device) if device else "",
        session_id=device.pk if device else None,
        payload=payload,
        at=at,
    )


def device_jid(device) -> str:
    """The number's JID, the peer's device_id: read when the caller's instance lacks it (a bare Device(pk=...),
    a row read with only()); a logged-out number's from its phone."""
    jid, phone = device.__dict__.get("jid"), device.__dict__.get("phone")
    if not jid:
        from messaging.models import Device

        jid, phone = Device.objects.filter(pk=device.pk).values_list("jid", "phone").first() or ("", "")
    if jid:
        return jid
    return f"{phone}@s.whatsapp.net" if phone else ""


def render(*, event: str, device_jid: str, session_id, payload: dict, at: datetime) -> tuple[str, str]:
    """(the peer's event name, the JSON body) of our public `event` with our `payload`."""
    name, translated, when = translate(event, payload, own_jid=device_jid)
    body = {
        "event": name,
        "device_id": device_jid or "",
        "session_id": "" if session_id is None else str(session_id),
        "payload": translated,
    }
    if name not in NO_TOP_TIMESTAMP:
        body["timestamp"] = timestamp(when) or timestamp(at)
    return name, json.dumps(body, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def rerender_payload(body: str, event: str, payload: dict) -> str:
    """`body` (a peer-format body of our `event`) with its payload rebuilt from `payload` (a held message's,
    once its media is stored)."""
    parsed = json.loads(body)
    _, parsed["payload"], _ = translate(event, payload, own_jid=parsed.get("device_id") or "")
    return json.dumps(parsed, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def translate(event: str, payload: dict, *, own_jid: str = "") -> tuple[str, dict, object]:
    """(the peer's name, the peer's payload, the event's own time or None) of one of our events."""
    payload = dict(payload or {})
    name = peer_name(event, payload, own_jid=own_jid)
    if name not in PEER_EVENTS:
        return name, payload, None  # one of our extra events: our payload, in the peer's envelope
    build = _BUILDERS.get(name, _passthrough)
    translated = build(payload, own_jid)
    if name in NO_TOP_TIMESTAMP:
        return name, translated, None
    return name, translated, translated.pop("timestamp", None) or payload.get("timestamp")


# ------------------------------------------------------------------------------------------ the payloads


def _put(out: dict, key: str, value) -> None:
    """Set `key` only when there is something to say (the peer leaves empty optional fields out)."""
    if value not in (None, "", [], {}):
        out[key] = value


def _jids(out: dict, p: dict, *, chat_key: str = "chat_id") -> None:
    """chat_id / chat_lid, from / from_lid: a LID goes in *_lid; the phone-number JID (when known) in the other."""
    chat = p.get(chat_key) or p.get("chat_id") or ""
    chat_lid = p.get("chat_lid") or (chat if chat.endswith("@lid") else "")
    _put(out, "chat_lid", chat_lid)
    out["chat_id"] = chat
    sender = p.get("from") or ""
    from_lid = p.get("from_lid") or (sender if sender.endswith("@lid") else "")
    _put(out, "from_lid", from_lid)
    out["from"] = sender


def _common(p: dict) -> dict:
    """The fields every message event of the peer has: id, chat_id, from, from_name, timestamp, is_from_me."""
    out = {"id": p.get("id") or ""}
    _jids(out, p)
    _put(out, "from_name", p.get("from_name"))
    out["timestamp"] = timestamp(p.get("timestamp"))
    out["is_from_me"] = bool(p.get("from_me", p.get("is_from_me", False)))
    return out


def _message(p: dict, own_jid: str) -> dict:
    out = _common(p)
    text = p.get("body") or p.get("text") or p.get("caption") or ""
    _put(out, "body", text)
    _put(out, "replied_to_id", p.get("replied_to_id"))
    _put(out, "quoted_body", p.get("quoted_body"))
    if p.get("view_once"):
        out["view_once"] = True
    if p.get("forwarded") or p.get("is_forwarded"):
        out["forwarded"] = True
    kind = p.get("kind") or ""
    media = p.get("media")
    if kind in MEDIA_KINDS and isinstance(media, dict):
        # As the peer sends media it has not downloaded: an object with its URL (here, our stored copy's).
        attachment = {"url": media.get("url") or ""}
        if kind in ("image", "video", "video_note"):
            attachment["caption"] = p.get("caption") or ""
        elif kind == "document":
            attachment["filename"] = media.get("filename") or ""
        out[kind] = attachment
    if p.get("contact_name") or p.get("contact_vcard"):
        out["contact"] = {"displayName": p.get("contact_name") or "", "vcard": p.get("contact_vcard") or ""}
    if p.get("latitude") is not None and p.get("longitude") is not None:
        out["location"] = {"degreesLatitude": p["latitude"], "degreesLongitude": p["longitude"]}
    return out


def _reaction(p: dict, own_jid: str) -> dict:
    out = _common(p)
    out["reaction"] = p.get("reaction") or ""  # "" is a reaction taken back, as in WhatsApp
    out["reacted_message_id"] = p.get("reacted_message_id") or p.get("target_id") or ""
    return out


def _revoked(p: dict, own_jid: str) -> dict:
    out = _common(p)
    out["revoked_message_id"] = p.get("revoked_message_id") or p.get("target_id") or ""
    # Only one's own message can be revoked outside a group: the revoker's side is the message's.
    out["revoked_from_me"] = bool(p.get("revoked_from_me", out["is_from_me"]))
    _put(out, "revoked_chat", p.get("revoked_chat") or out["chat_id"])
    return out


def _edited(p: dict, own_jid: str) -> dict:
    out = _common(p)
    out["original_message_id"] = p.get("original_message_id") or p.get("target_id") or ""
    _put(out, "body", p.get("body") or p.get("text") or p.get("caption"))
    return out


def _deleted(p: dict, own_jid: str) -> dict:
    out = {"deleted_message_id": p.get("deleted_message_id") or p.get("target_id") or p.get("id") or ""}
    out["timestamp"] = timestamp(p.get("timestamp"))
    out["from"] = p.get("from") or ""
    out["chat_id"] = p.get("chat_id") or ""
    for key in ("original_content", "original_sender", "original_media_type", "original_filename"):
        _put(out, key, p.get(key))
    _put(out, "original_timestamp", timestamp(p.get("original_timestamp")))
    out["was_from_me"] = bool(p.get("was_from_me", p.get("from_me", False)))
    return out


def _ack(p: dict, own_jid: str) -> dict:
    ids = p.get("ids") or ([p["id"]] if p.get("id") else [])
    out: dict = {}
    _put(out, "ids", list(ids))
    chat = p.get("chat_id") or ""
    out["chat_id"] = chat
    _put(out, "chat_lid", p.get("chat_lid"))
    sender = p.get("from") or ""
    _put(out, "from_lid", p.get("from_lid") or (sender if sender.endswith("@lid") else ""))
    out["from"] = sender
    kind = p.get("receipt_type") or p.get("receipt") or ""
    out["receipt_type"] = kind
    out["receipt_type_description"] = RECEIPT_DESCRIPTIONS.get(kind, UNKNOWN_RECEIPT)
    out["timestamp"] = p.get("timestamp")  # moved to the envelope by `translate`
    return out


def _we_joined(p: dict, own_jid: str) -> bool:
    """A participants change that adds this very number: the peer's group.joined."""
    if not own_jid or GROUP_ACTIONS.get(p.get("action") or "") != "join":
        return False
    own = own_jid.split("@")[0].split(":")[0]
    return any((jid or "").split("@")[0].split(":")[0] == own for jid in p.get("participants") or [])


def _participants(p: dict, own_jid: str) -> dict:
    action = p.get("type") or p.get("action") or ""
    return {
        "chat_id": p.get("chat_id") or p.get("group_id") or "",
        "type": GROUP_ACTIONS.get(action, action),  # promote and demote are the same words
        "jids": list(p.get("jids") or p.get("participants") or []),
        "timestamp": p.get("timestamp"),
    }


def _joined(p: dict, own_jid: str) -> dict:
    out = {
        "chat_id": p.get("chat_id") or p.get("group_id") or "",
        "type": "join",
        "jids": list(p.get("jids") or ([own_jid] if own_jid else [])),
        "reason": p.get("reason") or "",
    }
    _put(out, "group_name", p.get("group_name") or p.get("name"))
    out["timestamp"] = p.get("timestamp")
    return out


def _chat_presence(p: dict, own_jid: str) -> dict:
    chat = p.get("chat_id") or ""
    out: dict = {}
    sender = p.get("from") or ""
    _put(out, "from_lid", p.get("from_lid") or (sender if sender.endswith("@lid") else ""))
    out["from"] = sender
    out["chat_id"] = chat
    out["state"] = p.get("state") or ""
    out["media"] = p.get("media") or ""
    out["is_group"] = bool(p.get("is_group", chat.endswith("@g.us")))
    return out


def _call_offer(p: dict, own_jid: str) -> dict:
    out = dict(p)  # the peer's own names already (call.offer is added under them); keep what else there is
    out["call_id"] = p.get("call_id") or p.get("id") or ""
    out.pop("id", None)
    out["from"] = p.get("from") or p.get("caller") or ""
    out["auto_rejected"] = bool(p.get("auto_rejected", False))
    out["remote_platform"] = p.get("remote_platform") or ""
    out["remote_version"] = p.get("remote_version") or ""
    if not p.get("group_jid"):
        out.pop("group_jid", None)
    return out


def _passthrough(p: dict, own_jid: str) -> dict:
    """Events added under the peer's own names and fields (label.*, newsletter.*): as they are."""
    return dict(p)


_BUILDERS = {
    "message": _message,
    "message.reaction": _reaction,
    "message.revoked": _revoked,
    "message.edited": _edited,
    "message.deleted": _deleted,
    "message.ack": _ack,
    "group.participants": _participants,
    "group.joined": _joined,
    "chat_presence": _chat_presence,
    "call.offer": _call_offer,
}
