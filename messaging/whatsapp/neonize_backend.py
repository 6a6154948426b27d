"""The real WhatsApp backend: one neonize (whatsmeow) asyncio client per linked device.

neonize is imported lazily (`neonize_lib()`): importing any neonize module loads its Go library, and if the
library file were missing neonize would download it from GitHub. Importing this module touches neither.

Where whatsmeow keeps a device's session ("store"):
- embedded default: one SQLite file per device, `<WA_SESSION_DIR>/device-<id>.sqlite3` (neonize opens any
  name that does not start with "postgres" as `file:<name>?_foreign_keys=on`);
- production (`DATABASE_URL` is a PostgreSQL URL): whatsmeow's tables in our PostgreSQL database, one store
  shared by all devices; a linked device is found by its phone number among the stored sessions, a new one
  is created as a fresh device (`new_device=True`) so it never resumes another device's session.

Worked around:
- neonize cannot send with our pre-generated message ID (its Go `SendMessage` passes no `SendRequestExtra`,
  so whatsmeow picks the ID). `MessageIds` keeps, per device, which WhatsApp ID each of our IDs went out as,
  and the client translates both ways: receipts, reactions, edits, revokes and quotes of our messages come
  back with our ID, and revoke/edit/react/quote of our ID use WhatsApp's; nothing outside this module sees
  the difference. The same map makes a repeated send of one ID a no-op, across restarts of the process too;
- neonize's audio/video builders need ffmpeg (duration, thumbnail): we upload and describe those ourselves;
- neonize does not tell Python when linking timed out: the last QR code's expiry ends it here.

Not supported by neonize 0.5.2 (the operation raises `NotSupported`; see each method):
- approve/reject group join requests (whatsmeow's UpdateGroupRequestParticipants is not exported);
- star/unstar and delete-for-me: app-state patches. `send_app_state` exists, but the Go side's
  `DecodePatchInfo` maps no patch type for them (REGULAR_HIGH is missing and the others are compared by
  pointer), so the patch would go to an unnamed collection; we refuse instead of sending a broken patch
  (`star_patch`/`delete_for_me_patch` build it; flip APP_STATE_PATCHES_WORK once neonize is fixed);
- business profile (whatsmeow's GetBusinessProfile is not exported);
- group join-request notifications and history sync are not turned into events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from django.conf import settings

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize import media

logger = logging.getLogger(__name__)

# whatsmeow's QR channel: the first code is valid for 60 s, each following one for 20 s.
FIRST_QR_SECONDS = 60.0
NEXT_QR_SECONDS = 20.0
QR_GRACE_SECONDS = 5.0
PAIR_CODE_SECONDS = 160.0
FIRST_QR_WAIT_SECONDS = 30.0
STOP_WAIT_SECONDS = 8.0  # under the session worker's own stop timeout (10 s)
# A stop during linking first waits this long for the first QR code: only once whatsmeow's QR emitter runs does
# neonize's Go linking loop end by itself (when the codes run out), see NeonizeClient.stop.
LINK_STOP_WAIT_SECONDS = 5.0
# The longest a stopped linking call stays in Go: the QR emitter's six codes (60 s, then 5 x 20 s).
LINGERING_LINK_SECONDS = FIRST_QR_SECONDS + 5 * NEXT_QR_SECONDS
# Set to True once neonize's Go DecodePatchInfo keeps the patch type (see the module docstring).
APP_STATE_PATCHES_WORK = False


def default_backoff(attempt: int) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1, 2, ...): doubling from 1 s, at most 60 s."""
    return float(min(60, 2 ** max(0, attempt - 1)))


def neonize_lib() -> SimpleNamespace:
    """The neonize names we use, imported on first need (loads the Go library)."""
    from neonize import exc
    from neonize.aioze import events as ev
    from neonize.aioze.client import ClientFactory, NewAClient
    from neonize.builder import build_edit
    from neonize.proto import Neonize_pb2 as np
    from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
    from neonize.proto.waSyncAction import WAWebProtobufSyncAction_pb2 as sync
    from neonize.utils import enum, gen_vcard
    from neonize.utils.jid import Jid2String, JIDToNonAD

    return SimpleNamespace(
        exc=exc,
        ev=ev,
        ClientFactory=ClientFactory,
        NewAClient=NewAClient,
        build_edit=build_edit,
        np=np,
        DeviceProps=DeviceProps,
        e2e=e2e,
        sync=sync,
        enum=enum,
        gen_vcard=gen_vcard,
        Jid2String=Jid2String,
        JIDToNonAD=JIDToNonAD,
    )


# ---------------------------------------------------------------------------------------------- JIDs


def to_jid(value: str):
    """A neonize JID protobuf from "user@server" (or "user:device@server")."""
    lib = neonize_lib()
    user, _, server = value.rpartition("@")
    if not server:
        raise p.InvalidRequest(f"{value!r} is not a WhatsApp ID")
    device = 0
    if ":" in user:
        user, dev = user.split(":", 1)
        device = int(dev) if dev.isdigit() else 0
    if "." in user and server == p.USER_SERVER:
        user = user.split(".", 1)[0]
    return lib.np.JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def jid_str(jid, *, keep_device: bool = False) -> str:
    """The "user@server" of a neonize JID (device part dropped unless asked); "" for an empty JID."""
    if jid is None or not jid.User:
        return ""
    if keep_device and jid.Device:
        return f"{jid.User}:{jid.Device}@{jid.Server}"
    return f"{jid.User}@{jid.Server}"


def _phone_jid(jid, alt) -> str:
    """Prefer the phone-number JID over a hidden-user (@lid) one when WhatsApp told us both."""
    if jid is not None and jid.Server == p.LID_SERVER and alt is not None and alt.User:
        return jid_str(alt)
    return jid_str(jid)


def _seconds(value) -> float:
    """WhatsApp timestamps arrive in s, ms or µs depending on the call; make them unix seconds."""
    value = float(value or 0)
    if value > 1e14:
        return value / 1e6
    if value > 1e11:
        return value / 1e3
    return value


# ---------------------------------------------------------------------------------------------- errors


# whatsmeow's errors reach Python as text only: its IQ errors read "info query returned status 403: forbidden",
# the others are fixed sentences (ErrNotConnected, ErrNotLoggedIn, ErrGroupNotFound, ErrInviteLinkRevoked...).
_STATUS_RE = re.compile(r"\b(?:status(?: code)?|error) (\d{3})\b")
_STATUS_ERRORS = {
    400: p.InvalidRequest,
    401: p.Forbidden,
    403: p.Forbidden,
    404: p.NotFound,
    406: p.InvalidRequest,
}
_STATUS_ERRORS |= {408: p.UpstreamTimeout, 409: p.InvalidRequest, 410: p.NotFound}
_PHRASES: tuple[tuple[tuple[str, ...], type[p.WhatsAppError]], ...] = (
    (("not logged in", "doesn't contain a device jid"), p.NotLoggedIn),
    (("not connected", "websocket is closed"), p.NotConnected),
    (("timed out", "timeout", "deadline exceeded"), p.UpstreamTimeout),
    (
        ("forbidden", "not-authorized", "not authorized", "not an admin", "permission", "not participating"),
        p.Forbidden,
    ),
    # "the user has hidden their profile picture from you": for us, as for the viewer, no picture.
    (("not found", "item-not-found", "does not have", "no such", "hidden their profile picture"), p.NotFound),
    (
        ("bad-request", "invalid", "not valid", "revoked", "cannot identify image", "not-acceptable"),
        p.InvalidRequest,
    ),
)


def translate_error(exc: Exception) -> p.WhatsAppError:
    """A neonize/whatsmeow failure as one of our errors, by what its message says."""
    if isinstance(exc, p.WhatsAppError):
        return exc
    text = str(exc) or type(exc).__name__
    low = text.lower()
    status = _STATUS_RE.search(low)
    if status and int(status.group(1)) in _STATUS_ERRORS:
        return _STATUS_ERRORS[int(status.group(1))](text)
    for phrases, error in _PHRASES:
        if any(phrase in low for phrase in phrases):
            return error(text)
    return p.WhatsAppError(text, code=p.ErrorCode.UPSTREAM)


# Per-participant codes of a group participants change.
_PARTICIPANT_ERRORS = {
    401: "not allowed",
    403: "not allowed (privacy settings, or we are not an admin)",
    404: "not on WhatsApp or not in the group",
    408: "they left the group recently",
    409: "already in that state (member, admin...)",
    500: "the group is full",
}


# ---------------------------------------------------------------------------------------------- messages in


_MEDIA_FIELDS = {
    "imageMessage": p.MessageKind.IMAGE,
    "videoMessage": p.MessageKind.VIDEO,
    "ptvMessage": p.MessageKind.VIDEO,
    "audioMessage": p.MessageKind.AUDIO,
    "documentMessage": p.MessageKind.DOCUMENT,
    "stickerMessage": p.MessageKind.STICKER,
}
_POLL_FIELDS = (
    "pollCreationMessage",
    "pollCreationMessageV2",
    "pollCreationMessageV3",
    "pollCreationMessageV4",
    "pollCreationMessageV5",
    "pollCreationMessageV6",
)
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
)
_VIEW_ONCE_WRAPPERS = ("viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension")
# Content that is bookkeeping, not a message anyone wrote: never stored as a chat message.
_SILENT_FIELDS = frozenset(
    {
        "senderKeyDistributionMessage",
        "messageContextInfo",
        "fastRatchetKeySenderKeyDistributionMessage",
        "keepInChatMessage",
        "encReactionMessage",  # community announcement reactions: neonize cannot decrypt them (module docstring)
        "pinInChatMessage",
        "encEventResponseMessage",
        "placeholderMessage",
    }
)


def _unwrap(message) -> tuple[object, bool]:
    """The content message inside ephemeral/view-once/edit wrappers, and whether it was view-once."""
    view_once = False
    for _ in range(5):
        for name in _WRAPPERS:
            if message.HasField(name):
                view_once = view_once or name in _VIEW_ONCE_WRAPPERS
                message = getattr(message, name).message
                break
        else:
            return message, view_once
    return message, view_once


def text_of(message) -> str:
    """The human text of a message (body or caption), for quotes and edits."""
    if message is None:
        return ""
    message, _ = _unwrap(message)
    if message.conversation:
        return message.conversation
    if message.HasField("extendedTextMessage"):
        return message.extendedTextMessage.text
    for name in _MEDIA_FIELDS:
        if message.HasField(name):
            return getattr(getattr(message, name), "caption", "") or ""
    for name in _POLL_FIELDS:
        if message.HasField(name):
            return getattr(message, name).name
    return ""


def media_ref(kind: str, media) -> dict:
    """What `download_media` needs, as JSON-safe values (it is stored with the message)."""
    b64 = lambda data: base64.b64encode(data or b"").decode()  # noqa: E731
    return {
        "backend": "neonize",
        "kind": str(kind),
        "direct_path": media.directPath,
        "media_key": b64(media.mediaKey),
        "file_sha256": b64(media.fileSHA256),
        "file_enc_sha256": b64(media.fileEncSHA256),
        "file_length": int(media.fileLength or 0),
        "mime_type": media.mimetype,
    }


def convert_message(event) -> p.IncomingMessage | None:
    """A neonize Message event as our IncomingMessage; None for protocol noise (key shares, votes...)."""
    info = event.Info
    src = info.MessageSource
    from_me = bool(src.IsFromMe)
    sender = _phone_jid(src.Sender, src.SenderAlt)
    chat = jid_str(src.Chat)
    if src.Chat.Server == p.LID_SERVER and not src.IsGroup:
        chat = _phone_jid(src.Chat, src.RecipientAlt if from_me else src.SenderAlt)
    content, view_once = _unwrap(event.Message)
    view_once = view_once or bool(event.IsViewOnce or event.IsViewOnceV2 or event.IsViewOnceV2Extension)
    msg = p.IncomingMessage(
        id=info.ID,
        chat=chat,
        sender=sender,
        sender_name=info.Pushname,
        from_me=from_me,
        timestamp=_seconds(info.Timestamp),
        view_once=view_once,
    )
    context = None

    if content.HasField("protocolMessage"):
        proto = content.protocolMessage
        kinds = type(proto)
        if proto.type == kinds.REVOKE:
            msg.kind, msg.target_id = p.MessageKind.REVOKE, proto.key.ID
            return msg
        if proto.type == kinds.MESSAGE_EDIT:
            msg.kind, msg.target_id = p.MessageKind.EDIT, proto.key.ID
            msg.text = text_of(proto.editedMessage)
            if proto.timestampMS:
                msg.timestamp = proto.timestampMS / 1000
            return msg
        return None
    if content.HasField("pollUpdateMessage"):
        # The vote is encrypted with the poll's secret; NeonizeClient.translate decrypts it (whatsmeow has it).
        msg.kind, msg.target_id = p.MessageKind.POLL_VOTE, content.pollUpdateMessage.pollCreationMessageKey.ID
        return msg
    if content.HasField("reactionMessage"):
        reaction = content.reactionMessage
        msg.kind, msg.target_id, msg.reaction = p.MessageKind.REACTION, reaction.key.ID, reaction.text
        return msg
    if content.conversation:
        msg.kind, msg.text = p.MessageKind.TEXT, content.conversation
    elif content.HasField("extendedTextMessage"):
        ext = content.extendedTextMessage
        msg.kind, msg.text, context = p.MessageKind.TEXT, ext.text, ext.contextInfo
    elif any(content.HasField(name) for name in _MEDIA_FIELDS):
        name = next(name for name in _MEDIA_FIELDS if content.HasField(name))
        media = getattr(content, name)
        msg.kind = _MEDIA_FIELDS[name]
        msg.caption = getattr(media, "caption", "") or ""
        msg.view_once = msg.view_once or bool(getattr(media, "viewOnce", False))
        msg.media = p.MediaInfo(
            mime_type=media.mimetype,
            size=int(media.fileLength or 0),
            filename=getattr(media, "fileName", "") or "",
            sha256=(media.fileSHA256 or b"").hex(),
            ref=media_ref(msg.kind, media),
        )
        context = media.contextInfo
    elif content.HasField("locationMessage") or content.HasField("liveLocationMessage"):
        loc = content.locationMessage if content.HasField("locationMessage") else content.liveLocationMessage
        msg.kind = p.MessageKind.LOCATION
        msg.latitude, msg.longitude = loc.degreesLatitude, loc.degreesLongitude
        msg.text = getattr(loc, "name", "") or getattr(loc, "address", "") or ""
        context = loc.contextInfo
    elif content.HasField("contactMessage"):
        contact = content.contactMessage
        msg.kind, msg.contact_name, msg.contact_vcard = (
            p.MessageKind.CONTACT,
            contact.displayName,
            contact.vcard,
        )
        context = contact.contextInfo
    elif content.HasField("contactsArrayMessage") and content.contactsArrayMessage.contacts:
        contact = content.contactsArrayMessage.contacts[0]
        msg.kind, msg.contact_name, msg.contact_vcard = (
            p.MessageKind.CONTACT,
            contact.displayName,
            contact.vcard,
        )
        context = content.contactsArrayMessage.contextInfo
    elif any(content.HasField(name) for name in _POLL_FIELDS):
        poll = getattr(content, next(name for name in _POLL_FIELDS if content.HasField(name)))
        msg.kind, msg.poll_question = p.MessageKind.POLL, poll.name
        msg.poll_options = [option.optionName for option in poll.options]
        context = poll.contextInfo
    else:
        present = {field.name for field, _ in content.ListFields()} - _SILENT_FIELDS
        if not present:
            return None
        msg.kind = p.MessageKind.UNKNOWN
    if context is not None:
        msg.is_forwarded = bool(context.isForwarded)
        if context.stanzaID:
            msg.reply_to_id = context.stanzaID
            msg.quoted_body = text_of(context.quotedMessage) if context.HasField("quotedMessage") else ""
    return msg


# ---------------------------------------------------------------------------------------------- results


def convert_group(info) -> p.GroupInfo:
    owner = info.OwnerPN if info.HasField("OwnerPN") and info.OwnerPN.User else info.OwnerJID
    return p.GroupInfo(
        jid=jid_str(info.JID),
        name=info.GroupName.Name,
        topic=info.GroupTopic.Topic,
        owner=jid_str(owner),
        created_at=_seconds(info.GroupCreated),
        locked=bool(info.GroupLocked.isLocked),
        announce=bool(info.GroupAnnounce.IsAnnounce),
        participants=[
            p.GroupParticipant(
                jid=_phone_jid(part.JID, part.PhoneNumber),
                is_admin=bool(part.IsAdmin or part.IsSuperAdmin),
                is_super_admin=bool(part.IsSuperAdmin),
                display_name=part.DisplayName,
            )
            for part in info.Participants
        ],
    )


def _enum_name(message, field: str) -> str:
    descriptor = message.DESCRIPTOR.fields_by_name[field].enum_type
    if not message.HasField(field):
        return ""
    return descriptor.values_by_number[getattr(message, field)].name.lower()


def convert_privacy(settings_pb) -> p.PrivacySettings:
    def value(field: str) -> str:
        name = _enum_name(settings_pb, field)
        return "" if name == "undefined" else name

    return p.PrivacySettings(
        group_add=value("GroupAdd"),
        last_seen=value("LastSeen"),
        status=value("Status"),
        profile=value("Profile"),
        read_receipts=value("ReadReceipts"),
        online=value("Online"),
        call_add=value("CallAdd"),
    )


def convert_newsletter(meta) -> p.Newsletter:
    thread = meta.ThreadMeta
    return p.Newsletter(
        jid=jid_str(meta.ID),
        name=thread.Name.Text,
        description=thread.Description.Text,
        subscribers=int(thread.SubscriberCount or 0),
        role=_enum_name(meta.ViewerMeta, "Role") if meta.HasField("ViewerMeta") else "",
    )


# ---------------------------------------------------------------------------------------------- app state


def star_patch(*, chat: str, message_id: str, sender: str, from_me: bool, starred: bool):
    """whatsmeow's appstate.BuildStar as a neonize PatchInfo (see APP_STATE_PATCHES_WORK)."""
    lib = neonize_lib()
    value = lib.sync.SyncActionValue(starAction=lib.sync.StarAction(starred=starred))
    return _patch(
        ["star", chat, message_id, "1" if from_me else "0", _participant(chat, sender, from_me)], 2, value
    )


def delete_for_me_patch(*, chat: str, message_id: str, sender: str, from_me: bool):
    lib = neonize_lib()
    action = lib.sync.DeleteMessageForMeAction(deleteMedia=True, messageTimestamp=int(time.time() * 1000))
    value = lib.sync.SyncActionValue(deleteMessageForMeAction=action)
    return _patch(
        [
            "deleteMessageForMe",
            chat,
            message_id,
            "1" if from_me else "0",
            _participant(chat, sender, from_me),
        ],
        3,
        value,
    )


def _participant(chat: str, sender: str, from_me: bool) -> str:
    # In a one-to-one chat (or for our own message) the index names no participant, as WhatsApp Web does.
    return sender if p.is_group(chat) and not from_me and sender else "0"


def _patch(index: list[str], version: int, value):
    np = neonize_lib().np
    return np.PatchInfo(
        Timestamp=time.time_ns(),  # the Go side reads nanoseconds and requires it
        Type=np.PatchInfo.REGULAR_HIGH,
        Mutations=[np.MutationInfo(Index=index, Version=version, Value=value)],
    )


# ---------------------------------------------------------------------------------------------- message IDs


class MessageIds:
    """Our message IDs and the IDs WhatsApp used for them, kept in a small SQLite file per device.

    Also what makes a repeated send of the same outgoing message a no-op, across restarts too.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sent (ours TEXT PRIMARY KEY, wa TEXT NOT NULL, ts REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS sent_wa ON sent (wa)")
        return self._db

    def remember(self, ours: str, wa: str, timestamp: float) -> None:
        if not ours or not wa:
            return
        with self._lock:
            conn = self._conn()
            conn.execute("INSERT OR REPLACE INTO sent (ours, wa, ts) VALUES (?, ?, ?)", (ours, wa, timestamp))
            conn.commit()

    def sent(self, ours: str) -> p.SendResult | None:
        """The result of an earlier send of `ours`, if it went out."""
        with self._lock:
            row = self._conn().execute("SELECT ts FROM sent WHERE ours = ?", (ours,)).fetchone()
        return p.SendResult(id=ours, timestamp=row[0]) if row else None

    def wa(self, ours: str) -> str:
        """The ID WhatsApp knows for our message `ours` (itself when it is not one we sent)."""
        if not ours:
            return ours
        with self._lock:
            row = self._conn().execute("SELECT wa FROM sent WHERE ours = ?", (ours,)).fetchone()
        return row[0] if row else ours

    def ours(self, wa: str) -> str:
        """Our ID for the WhatsApp ID `wa` (itself when it is not one we sent)."""
        if not wa:
            return wa
        with self._lock:
            row = self._conn().execute("SELECT ours FROM sent WHERE wa = ?", (wa,)).fetchone()
        return row[0] if row else wa

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


# ---------------------------------------------------------------------------------------------- client


def _data_events() -> tuple[type, ...]:
    """Events that are news whichever client of the device delivered them (unlike connection-state events)."""
    ev = neonize_lib().ev
    return (ev.MessageEv, ev.ReceiptEv, ev.PresenceEv, ev.ChatPresenceEv, ev.GroupInfoEv, ev.JoinedGroupEv)


class NeonizeClient(p.WhatsAppClient):
    """One device's neonize client, driven by the session worker that holds the device."""

    def __init__(self, *, backend: NeonizeBackend, device_id: int, jid: str | None, emit: p.EmitEvent):
        self.backend = backend
        self.device_id = device_id
        self.jid = jid or ""
        self._emit = emit
        self.neo = None  # the neonize NewAClient of the current connection, a new one for each (see _run)
        self._connection: asyncio.Future | None = None  # neonize's connect task: its Go Neonize() call
        self._fresh_session = False  # the current connection has no stored session to resume: it links
        self._connected = False
        self._stopping = False
        self._final = False  # logged out, linking expired, replaced, banned: do not reconnect
        self._supervisor: asyncio.Task | None = None
        self._qr_count = 0
        self._qr_ready: asyncio.Event | None = None
        self._qr_watchdog: asyncio.TimerHandle | None = None
        self._attempt = 0
        self._in_backoff = False
        self.ids = backend.message_ids(device_id)
        self._background: set[asyncio.Task] = set()
        # neonize schedules one coroutine per event; taking this lock first keeps them in arrival order.
        self._event_order = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    def is_connected(self) -> bool:
        return self._connected

    def _linking(self) -> bool:
        """Whether the current connection is a linking session (whatsmeow's QR loop runs in its Go call)."""
        return self.neo is not None and not self._connected and self._fresh_session

    async def start(self) -> None:
        if self._supervisor is not None and not self._supervisor.done():
            return
        self._stopping = False
        self._final = False
        self._qr_ready = asyncio.Event()
        self._qr_count = 0
        self._supervisor = asyncio.create_task(self._run(), name=f"neonize-device-{self.device_id}")
        # Let the connection begin before returning (the QR or "connected" event follows).
        await asyncio.sleep(0)

    async def stop(self) -> None:
        self._stopping = True
        self._cancel_watchdog()
        linking = self._linking()
        self._connected = False
        connection = self._connection
        running = connection is not None and not connection.done()
        if linking and running and self._qr_ready is not None and not self._qr_ready.is_set():
            # neonize's Go Neonize() loops over whatsmeow's QR channel, and our disconnect closes that channel
            # only once whatsmeow's QR emitter runs (it ends when its codes run out): wait for the first code.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(
                        [asyncio.ensure_future(self._qr_ready.wait()), connection],
                        return_when=asyncio.FIRST_COMPLETED,
                    ),
                    LINK_STOP_WAIT_SECONDS,
                )
        if self.neo is not None:
            with contextlib.suppress(Exception):
                await self.neo.stop()
        task, self._supervisor = self._supervisor, None
        if task is not None and (self._in_backoff or linking):
            task.cancel()  # waiting to reconnect, or linking (its Go call cannot end now): nothing to wind down
        elif task is not None and not task.done() and task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                logger.exception("neonize client of device %s ended with an error", self.device_id)
        if connection is not None and not connection.done():
            # Its Go call still holds a thread of the loop's pool: count it until it ends (the pool must keep
            # room for the live devices); a linking one ends within LINGERING_LINK_SECONDS.
            self.backend.linger(connection)

    async def reconnect(self) -> None:
        await self.stop()
        await self.start()

    async def logout(self) -> None:
        """Unlink on the phone (when connected), stop, and delete the stored session."""
        if self.neo is not None and self._connected:
            try:
                await self.neo.logout()
            except Exception as exc:
                raise translate_error(exc) from exc
        self._final = True
        await self.stop()
        self.backend.remove_session(self.device_id)
        self.jid = ""
        await self._emit_event(p.LoggedOutEvent(reason="logged out"))

    async def pair_phone(self, *, phone: str) -> p.PairCode:
        """Link by pairing code: whatsmeow wants the linking connection up (first QR issued) first."""
        try:
            digits = p.normalize_phone(phone)
        except ValueError as exc:
            raise p.InvalidRequest(f"phone: {exc}") from exc
        if self._connected:
            raise p.InvalidRequest("this device is already linked; log out first")
        if self._supervisor is None or self._supervisor.done():
            await self.start()
        try:
            await asyncio.wait_for(self._qr_ready.wait(), FIRST_QR_WAIT_SECONDS)
        except TimeoutError as exc:
            raise p.UpstreamTimeout("WhatsApp did not open a linking session in time") from exc
        enum = neonize_lib().enum
        try:
            code = await self.neo.PairPhone(digits, True, enum.ClientName.LINUX, enum.ClientType.CHROME)
        except Exception as exc:
            raise translate_error(exc) from exc
        await self._emit_event(p.PairCodeEvent(code=code, expires_in=PAIR_CODE_SECONDS))
        return p.PairCode(code=code, expires_in=PAIR_CODE_SECONDS)

    async def _run(self) -> None:
        """Keep the client connected: restart neonize's connection with backoff when it ends by itself.

        Every connection gets a new neonize client. neonize passes the client's `jid`/`new_device` to Go on every
        connect(), so reusing the client a device was linked with (`new_device=True`, on PostgreSQL) would make
        Go create a blank device again: a QR code instead of the session just paired. The new client is opened
        for the stored session of `self.jid`, which pairing or connecting has set."""
        while not self._stopping and not self._final:
            began = time.monotonic()
            reason = "connection closed"
            try:
                neo = await self.backend.open_neonize(self)
                self._subscribe(neo)
                self.neo = neo
                self.backend.reserve_threads(asyncio.get_running_loop())
                self._connection = await neo.connect()
                # Shielded: a stop must not cancel the task of a Go call that does not end yet (see stop()).
                await asyncio.shield(self._connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                logger.warning("neonize connection of device %s ended: %s", self.device_id, reason)
            self._connected = False
            if self._stopping or self._final:
                return
            # A connection that lived a while starts the backoff over.
            self._attempt = 1 if time.monotonic() - began > 60 else self._attempt + 1
            await self._emit_event(p.DisconnectedEvent(reason=reason, will_reconnect=True))
            self._in_backoff = True
            try:
                await asyncio.sleep(self.backend.backoff(self._attempt))
            finally:
                self._in_backoff = False

    def _subscribe(self, neo) -> None:
        ev = neonize_lib().ev
        for event_type in (
            ev.ConnectedEv,
            ev.DisconnectedEv,
            ev.LoggedOutEv,
            ev.PairStatusEv,
            ev.ConnectFailureEv,
            ev.StreamReplacedEv,
            ev.StreamErrorEv,
            ev.TemporaryBanEv,
            ev.ClientOutdatedEv,
            ev.MessageEv,
            ev.ReceiptEv,
            ev.PresenceEv,
            ev.ChatPresenceEv,
            ev.GroupInfoEv,
            ev.JoinedGroupEv,
        ):
            neo.event(event_type)(self.on_event)
        neo.qr(self.on_qr)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _emit_event(self, event: p.Event) -> None:
        event.device_id = self.device_id
        try:
            await self._emit(event)
        except Exception:
            logger.exception("handling %s of device %s failed", type(event).__name__, self.device_id)

    # ------------------------------------------------------------------ events in

    async def on_qr(self, neo, data: bytes) -> None:
        """neonize's QR callback: one call per code whatsmeow rotates in."""
        if neo is not self.neo:
            return  # a stopped linking session's Go loop keeps rotating codes until they run out: not ours to show
        if self._qr_ready is not None:
            self._qr_ready.set()  # whatsmeow's QR emitter runs (what a stop during linking waits for)
        if self._stopping:
            return
        async with self._event_order:
            code = data.decode() if isinstance(data, bytes | bytearray) else str(data)
            expires = FIRST_QR_SECONDS if self._qr_count == 0 else NEXT_QR_SECONDS
            self._qr_count += 1
            self._arm_watchdog(expires + QR_GRACE_SECONDS)
            await self._emit_event(p.QRCodeEvent(code=code, expires_in=expires))

    def _arm_watchdog(self, seconds: float) -> None:
        # whatsmeow stops issuing codes after the last one expires and leaves the socket idle; neonize does not
        # tell Python, so linking ends here when no new code, pairing or connection came in time.
        self._cancel_watchdog()
        self._qr_watchdog = asyncio.get_running_loop().call_later(
            seconds, lambda: self._spawn(self._linking_expired())
        )

    def _cancel_watchdog(self) -> None:
        if self._qr_watchdog is not None:
            self._qr_watchdog.cancel()
            self._qr_watchdog = None

    async def _linking_expired(self) -> None:
        self._qr_watchdog = None
        if self._connected:
            return
        self._final = True
        await self.stop()
        await self._emit_event(
            p.DisconnectedEvent(reason="QR code expired before it was scanned", will_reconnect=False)
        )

    async def on_event(self, neo, event) -> None:
        """neonize's event callback (on our loop): translate and emit, one event at a time, in order."""
        if neo is not self.neo and not isinstance(event, _data_events()):
            return  # the state of a replaced client's connection is not this device's any more
        async with self._event_order:
            try:
                converted = await self.translate(event)
            except Exception:
                logger.exception(
                    "could not translate neonize %s for device %s", type(event).__name__, self.device_id
                )
                return
            for item in converted:
                await self._emit_event(item)

    async def translate(self, event) -> list[p.Event]:
        """Our domain events for one neonize protobuf event (state changes of this client included)."""
        ev = neonize_lib().ev
        if isinstance(event, ev.MessageEv):
            message = convert_message(event)
            if message is None:
                return []
            if message.kind == p.MessageKind.POLL_VOTE:
                try:
                    vote = await self.neo.decrypt_poll_vote(event)
                except Exception as exc:
                    # whatsmeow does not know the poll's secret (a poll from before this device was linked).
                    logger.warning(
                        "poll vote %s of device %s not decrypted: %s", message.id, self.device_id, exc
                    )
                    return []
                message.poll_selected = [bytes(option).hex() for option in vote.selectedOptions]
            # A reply to, reaction to, edit or revoke of one of our messages names it by WhatsApp's ID.
            message.id = self.ids.ours(message.id)
            message.target_id = self.ids.ours(message.target_id)
            message.reply_to_id = self.ids.ours(message.reply_to_id)
            return [p.MessageEvent(message=message)]
        if isinstance(event, ev.ReceiptEv):
            return self._receipt(event)
        if isinstance(event, ev.PresenceEv):
            # Go's zero time (no last-seen: hidden, or never) arrives as -62135596800 (year 1): unknown.
            last_seen = _seconds(event.LastSeen) if event.LastSeen > 0 else None
            return [
                p.PresenceEvent(jid=jid_str(event.From), available=not event.Unavailable, last_seen=last_seen)
            ]
        if isinstance(event, ev.ChatPresenceEv):
            src = event.MessageSource
            state = (
                p.ChatPresenceState.COMPOSING
                if event.State == type(event).COMPOSING
                else p.ChatPresenceState.PAUSED
            )
            media = "audio" if event.Media == type(event).AUDIO else ""
            return [
                p.ChatPresenceEvent(
                    chat=jid_str(src.Chat),
                    sender=_phone_jid(src.Sender, src.SenderAlt),
                    state=state,
                    media=media,
                )
            ]
        if isinstance(event, ev.GroupInfoEv):
            return await self._group_changes(event)
        if isinstance(event, ev.JoinedGroupEv):
            info = event.GroupInfo
            return [
                p.GroupChangedEvent(
                    group=jid_str(info.JID),
                    change=p.GroupChange.PARTICIPANTS,
                    actor=_phone_jid(event.Sender, event.SenderPN),
                    action="join",
                    participants=[self.jid] if self.jid else [],
                    name=info.GroupName.Name or None,
                    timestamp=time.time(),
                )
            ]
        return await self._connection_event(event)

    async def _connection_event(self, event) -> list[p.Event]:
        ev = neonize_lib().ev
        np = neonize_lib().np
        if isinstance(event, ev.ConnectedEv):
            self._connected = True
            self._attempt = 0
            self._cancel_watchdog()
            push_name = ""
            with contextlib.suppress(Exception):
                me = await self.neo.get_me()
                self.jid = jid_str(me.JID) or self.jid
                push_name = me.PushName
            return [p.ConnectedEvent(jid=self.jid, push_name=push_name)]
        if isinstance(event, ev.PairStatusEv):
            if event.Status == np.PairStatus.SUCCESS:
                self._cancel_watchdog()
                self._fresh_session = (
                    False  # whatsmeow's QR loop ends with the pairing; the connection goes on
                )
                self.jid = jid_str(event.ID)
                return [p.PairedEvent(jid=self.jid, push_name=event.BusinessName, platform=event.Platform)]
            return [p.DisconnectedEvent(reason=f"pairing failed: {event.Error}", will_reconnect=True)]
        if isinstance(event, ev.DisconnectedEv):
            self._connected = False
            if self._stopping or self._final:
                return []
            # whatsmeow reconnects by itself after a dropped socket.
            return [p.DisconnectedEvent(reason="connection lost", will_reconnect=True)]
        if isinstance(event, ev.LoggedOutEv):
            reason = _enum_name(event, "Reason") or "logged out from the phone"
            self._connected = False
            self._final = True
            self._spawn(self._forget_session())
            return [p.LoggedOutEvent(reason=reason)]
        if isinstance(event, ev.ConnectFailureEv):
            reason = " ".join(filter(None, [_enum_name(event, "Reason"), event.Message])) or "connect failure"
            return [p.DisconnectedEvent(reason=reason, will_reconnect=True)]
        if isinstance(event, ev.StreamErrorEv):
            return [p.DisconnectedEvent(reason=f"stream error {event.Code}".strip(), will_reconnect=True)]
        final_reason = None
        if isinstance(event, ev.StreamReplacedEv):
            final_reason = "another client connected with this session"
        elif isinstance(event, ev.TemporaryBanEv):
            final_reason = (
                f"temporarily banned by WhatsApp ({_enum_name(event, 'Code')}), for {int(event.Expire)} s"
            )
        elif isinstance(event, ev.ClientOutdatedEv):
            final_reason = "WhatsApp says this client version is outdated (update neonize)"
        if final_reason is not None:
            # whatsmeow does not reconnect after these; neither do we (a reconnect from the dashboard may).
            self._connected = False
            self._final = True
            self._spawn(self.stop())
            return [p.DisconnectedEvent(reason=final_reason, will_reconnect=False)]
        return []

    async def _forget_session(self) -> None:
        await self.stop()
        self.backend.remove_session(self.device_id)
        self.jid = ""

    def _receipt(self, event) -> list[p.Event]:
        kinds = type(event)
        mapping = {
            kinds.DELIVERED: p.ReceiptType.DELIVERED,
            kinds.READ: p.ReceiptType.READ,
            kinds.PLAYED: p.ReceiptType.PLAYED,
        }
        # SENDER/RETRY/READ_SELF/... are about our other devices or delivery internals, not the recipient.
        kind = mapping.get(event.Type) if event.HasField("Type") else p.ReceiptType.DELIVERED
        if kind is None or not event.MessageIDs:
            return []
        src = event.MessageSource
        return [
            p.ReceiptEvent(
                chat=jid_str(src.Chat),
                sender=_phone_jid(src.Sender, src.SenderAlt),
                message_ids=[self.ids.ours(wa) for wa in event.MessageIDs],
                type=kind,
                timestamp=_seconds(event.Timestamp),
            )
        ]

    async def _phone_number(self, jid_pb) -> str:
        """A participant as group_info() names them: a hidden user (@lid) by phone number when whatsmeow knows it."""
        if jid_pb.Server != p.LID_SERVER or self.neo is None:
            return jid_str(jid_pb)
        try:
            phone = await self.neo.get_pn_from_lid(jid_pb)
        except Exception:
            phone = None
        return jid_str(phone) if phone is not None and phone.User else jid_str(jid_pb)

    async def _group_changes(self, event) -> list[p.Event]:
        # In an @lid group whatsmeow names people by LID; group_info() gives phone numbers: map them alike.
        names = {}
        for who in [event.Sender, *event.Join, *event.Leave, *event.Promote, *event.Demote]:
            key = jid_str(who)
            if key and key not in names:
                names[key] = await self._phone_number(who)
        group, actor, ts = jid_str(event.JID), names.get(jid_str(event.Sender), ""), _seconds(event.Timestamp)
        out: list[p.Event] = []

        def participants(action: str, jids) -> None:
            if jids:
                out.append(
                    p.GroupChangedEvent(
                        group=group,
                        change=p.GroupChange.PARTICIPANTS,
                        actor=actor,
                        action=action,
                        participants=[names.get(jid_str(j), jid_str(j)) for j in jids],
                        timestamp=ts,
                    )
                )

        participants("join" if event.JoinReason else "add", event.Join)
        leaving = list(event.Leave)
        self_left = [j for j in leaving if names.get(jid_str(j)) == actor]
        participants("leave", self_left)
        participants("remove", [j for j in leaving if names.get(jid_str(j)) != actor])
        participants("promote", event.Promote)
        participants("demote", event.Demote)
        if event.HasField("Name"):
            out.append(
                p.GroupChangedEvent(
                    group=group, change=p.GroupChange.SUBJECT, actor=actor, name=event.Name.Name, timestamp=ts
                )
            )
        settings_change = {}
        if event.HasField("Topic"):
            settings_change["topic"] = "" if event.Topic.TopicDeleted else event.Topic.Topic
        if event.HasField("Locked"):
            settings_change["locked"] = bool(event.Locked.isLocked)
        if event.HasField("Announce"):
            settings_change["announce"] = bool(event.Announce.IsAnnounce)
        if settings_change:
            out.append(
                p.GroupChangedEvent(
                    group=group, change=p.GroupChange.SETTINGS, actor=actor, timestamp=ts, **settings_change
                )
            )
        return out

    # ------------------------------------------------------------------ calls out

    def _client(self):
        if self.neo is None or not self._connected:
            raise p.NotConnected("the device is not connected to WhatsApp")
        return self.neo

    async def _call(self, method: Callable, *args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except p.WhatsAppError:
            raise
        except Exception as exc:
            raise translate_error(exc) from exc

    # -- sending

    async def send(self, *, message: p.OutgoingMessage) -> p.SendResult:
        # neonize cannot send with our ID (see the module docstring), so a retry of the same outgoing message
        # within this process returns the first result instead of sending again.
        earlier = self.ids.sent(message.id)
        if earlier is not None:
            return earlier
        neo = self._client()
        to = to_jid(message.to)
        wa_message = await self._call(self._build, neo, message)
        response = await self._call(neo.send_message, to, wa_message)
        timestamp = _seconds(response.Timestamp) or time.time()
        self.ids.remember(message.id, response.ID or message.id, timestamp)
        return p.SendResult(id=message.id, timestamp=timestamp)

    def _quoted(self, message: p.OutgoingMessage):
        """A neonize message event standing for the quoted message (what neonize's builders take)."""
        q = message.reply_to
        if q is None:
            return None
        lib = neonize_lib()
        source = lib.np.MessageSource(
            Chat=to_jid(message.to),
            Sender=to_jid(q.sender),
            IsFromMe=q.from_me,
            IsGroup=p.is_group(message.to),
        )
        return lib.np.Message(
            Info=lib.np.MessageInfo(ID=self.ids.wa(q.id), MessageSource=source),
            Message=lib.e2e.Message(conversation=q.text),
        )

    def _context(self, message: p.OutgoingMessage):
        e2e = neonize_lib().e2e
        context = e2e.ContextInfo()
        if message.reply_to is not None:
            q = message.reply_to
            context.stanzaID = self.ids.wa(q.id)
            context.participant = q.sender
            context.quotedMessage.CopyFrom(e2e.Message(conversation=q.text))
        if message.is_forwarded:
            context.isForwarded = True
            context.forwardingScore = 1
        return context

    async def _build(self, neo, message: p.OutgoingMessage):
        lib = neonize_lib()
        e2e, enum = lib.e2e, lib.enum
        kind = p.MessageKind(message.kind)
        quoted = self._quoted(message)
        if kind in p.MEDIA_KINDS and not message.media:
            raise p.InvalidRequest(f"a {kind} message needs the media bytes")
        if kind == p.MessageKind.TEXT:
            if message.reply_to is None and not message.is_forwarded:
                return e2e.Message(conversation=message.text)
            return e2e.Message(
                extendedTextMessage=e2e.ExtendedTextMessage(
                    text=message.text, contextInfo=self._context(message)
                )
            )
        if kind == p.MessageKind.LINK:
            body = f"{message.caption}\n{message.text}" if message.caption else message.text
            # No preview fetch: neonize would fetch the page from this server (the API validates URLs, not neonize).
            ext = e2e.ExtendedTextMessage(
                text=body, matchedText=message.text, contextInfo=self._context(message)
            )
            return e2e.Message(extendedTextMessage=ext)
        # neonize's image/document builders turn "@" and 5 to 16 digits in a caption into a mention (and look up
        # "@...@g.us" as groups): the caption is set after building, so it goes out as typed.
        if kind == p.MessageKind.IMAGE:
            built = await neo.build_image_message(message.media, quoted=quoted, viewonce=message.view_once)
            built.imageMessage.caption = message.caption
        elif kind == p.MessageKind.DOCUMENT:
            built = await neo.build_document_message(
                message.media,
                title=message.filename or None,
                filename=message.filename or None,
                mimetype=message.mime_type or None,
                quoted=quoted,
            )
            built.documentMessage.caption = message.caption
        elif kind == p.MessageKind.STICKER:
            # A WebP goes as it is; other images are converted to WebP by neonize.
            built = await neo.build_sticker_message(
                message.media, quoted=quoted, passthrough=message.mime_type == "image/webp"
            )
        elif kind in (p.MessageKind.AUDIO, p.MessageKind.VIDEO):
            # neonize's build_audio/video_message run ffmpeg for duration and thumbnail; we upload and describe
            # the media ourselves so sending does not depend on ffmpeg being installed.
            media_type = (
                enum.MediaType.MediaAudio if kind == p.MessageKind.AUDIO else enum.MediaType.MediaVideo
            )
            upload = await neo.upload(message.media, media_type)
            fields = dict(
                URL=upload.url,
                directPath=upload.DirectPath,
                mediaKey=upload.MediaKey,
                fileEncSHA256=upload.FileEncSHA256,
                fileSHA256=upload.FileSHA256,
                fileLength=upload.FileLength,
                contextInfo=self._context(message),
            )
            # Without its length a voice note shows 0:00, and a video no length, size or preview.
            if kind == p.MessageKind.AUDIO:
                mime = message.mime_type or "audio/ogg; codecs=opus"
                seconds = await asyncio.to_thread(media.audio_seconds, message.media)
                audio = e2e.AudioMessage(mimetype=mime, PTT="ogg" in mime, seconds=seconds, **fields)
                return e2e.Message(audioMessage=audio)
            facts = await asyncio.to_thread(media.video_facts, message.media)
            video = e2e.VideoMessage(
                mimetype=message.mime_type or "video/mp4",
                caption=message.caption,
                viewOnce=message.view_once,
                seconds=facts.seconds,
                width=facts.width,
                height=facts.height,
                JPEGThumbnail=facts.thumbnail or None,
                **fields,
            )
            return e2e.Message(videoMessage=video)
        elif kind == p.MessageKind.CONTACT:
            try:
                vcard = lib.gen_vcard(message.contact_name, message.contact_phone)
            except Exception as exc:
                raise p.InvalidRequest(
                    f"contact_phone: {message.contact_phone!r} is not a phone number"
                ) from exc
            contact = e2e.ContactMessage(
                displayName=message.contact_name, vcard=vcard, contextInfo=self._context(message)
            )
            return e2e.Message(contactMessage=contact)
        elif kind == p.MessageKind.LOCATION:
            if message.latitude is None or message.longitude is None:
                raise p.InvalidRequest("a location needs latitude and longitude")
            location = e2e.LocationMessage(
                degreesLatitude=message.latitude,
                degreesLongitude=message.longitude,
                name=message.text or None,
                contextInfo=self._context(message),
            )
            return e2e.Message(locationMessage=location)
        elif kind == p.MessageKind.POLL:
            vote = enum.VoteType.SINGLE if message.poll_max_answer == 1 else enum.VoteType.MULTIPLE
            built = await neo.build_poll_vote_creation(
                message.poll_question, list(message.poll_options), vote, quoted=quoted
            )
            if message.poll_max_answer > 1:
                for name in _POLL_FIELDS:
                    if built.HasField(name):
                        getattr(built, name).selectableOptionsCount = message.poll_max_answer
        else:
            raise p.NotSupported(f"sending {kind} messages is not possible")
        if message.is_forwarded:
            for field, value in built.ListFields():
                if field.message_type is not None and "contextInfo" in value.DESCRIPTOR.fields_by_name:
                    value.contextInfo.isForwarded = True
                    value.contextInfo.forwardingScore = 1
        return built

    async def send_presence(self, *, presence: p.Presence) -> None:
        enum = neonize_lib().enum
        value = (
            enum.Presence.AVAILABLE
            if p.Presence(presence) == p.Presence.AVAILABLE
            else enum.Presence.UNAVAILABLE
        )
        await self._call(self._client().send_presence, value)

    async def send_chat_presence(self, *, chat: str, state: p.ChatPresenceState, media: str = "") -> None:
        enum = neonize_lib().enum
        composing = p.ChatPresenceState(state) == p.ChatPresenceState.COMPOSING
        value = (
            enum.ChatPresence.CHAT_PRESENCE_COMPOSING if composing else enum.ChatPresence.CHAT_PRESENCE_PAUSED
        )
        kind = (
            enum.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
            if media == "audio"
            else enum.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        )
        await self._call(self._client().send_chat_presence, to_jid(chat), value, kind)

    # -- acting on messages

    async def revoke(self, *, chat: str, message_id: str, sender: str) -> p.SendResult:
        neo = self._client()
        revoke = await self._call(neo.build_revoke, to_jid(chat), to_jid(sender), self.ids.wa(message_id))
        response = await self._call(neo.send_message, to_jid(chat), revoke)
        return p.SendResult(id=message_id, timestamp=_seconds(response.Timestamp) or time.time())

    async def edit(self, *, chat: str, message_id: str, text: str) -> p.SendResult:
        neo = self._client()
        lib = neonize_lib()
        edit = lib.build_edit(to_jid(chat), self.ids.wa(message_id), lib.e2e.Message(conversation=text))
        response = await self._call(neo.send_message, to_jid(chat), edit)
        return p.SendResult(id=message_id, timestamp=_seconds(response.Timestamp) or time.time())

    async def react(self, *, chat: str, message_id: str, sender: str, emoji: str) -> p.SendResult:
        neo = self._client()
        reaction = await self._call(
            neo.build_reaction, to_jid(chat), to_jid(sender), self.ids.wa(message_id), emoji
        )
        response = await self._call(neo.send_message, to_jid(chat), reaction)
        return p.SendResult(id=message_id, timestamp=_seconds(response.Timestamp) or time.time())

    async def mark_read(self, *, chat: str, message_ids: list[str], sender: str) -> None:
        if not message_ids:
            return
        enum = neonize_lib().enum
        await self._call(
            self._client().mark_read,
            *message_ids,
            chat=to_jid(chat),
            sender=to_jid(sender),
            receipt=enum.ReceiptType.READ,
        )

    async def star(self, *, chat: str, message_id: str, sender: str, from_me: bool, starred: bool) -> None:
        patch = star_patch(chat=chat, message_id=message_id, sender=sender, from_me=from_me, starred=starred)
        await self._send_patch(patch, "starring messages")

    async def delete_for_me(self, *, chat: str, message_id: str, sender: str, from_me: bool) -> None:
        patch = delete_for_me_patch(chat=chat, message_id=message_id, sender=sender, from_me=from_me)
        await self._send_patch(patch, "deleting a message for me")

    async def _send_patch(self, patch, what: str) -> None:
        if not APP_STATE_PATCHES_WORK:
            # neonize 0.5.2's Go DecodePatchInfo drops the REGULAR_HIGH patch type these need (module docstring).
            raise p.NotSupported(
                f"{what} is not supported by the neonize backend (neonize 0.5.2 cannot send this app-state patch)"
            )
        await self._call(self._client().send_app_state, patch)

    async def download_media(self, *, ref: dict) -> bytes:
        neo = self._client()
        enum = neonize_lib().enum
        kinds = {
            "image": (enum.MediaType.MediaImage, enum.MediaTypeToMMS.MediaImage),
            "sticker": (enum.MediaType.MediaImage, enum.MediaTypeToMMS.MediaImage),
            "video": (enum.MediaType.MediaVideo, enum.MediaTypeToMMS.MediaVideo),
            "audio": (enum.MediaType.MediaAudio, enum.MediaTypeToMMS.MediaAudio),
            "document": (enum.MediaType.MediaDocument, enum.MediaTypeToMMS.MediaDocument),
        }
        if not ref or ref.get("kind") not in kinds or not ref.get("direct_path"):
            raise p.NotFound("this message has no downloadable media")
        media_type, mms_type = kinds[ref["kind"]]
        return await self._call(
            neo.download_media_with_path,
            ref["direct_path"],
            base64.b64decode(ref.get("file_enc_sha256", "")),
            base64.b64decode(ref.get("file_sha256", "")),
            base64.b64decode(ref.get("media_key", "")),
            int(ref.get("file_length") or 0),
            media_type,
            mms_type,
        )

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
                raise p.InvalidRequest(f"phone: {exc}") from exc
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
            "business profiles are not supported by the neonize backend (neonize 0.5.2 has no such call)"
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
            "approving or rejecting join requests is not supported by the neonize backend (neonize 0.5.2 has no such call)"
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

    # -- newsletters

    async def newsletters(self) -> list[p.Newsletter]:
        return [
            convert_newsletter(meta) for meta in await self._call(self._client().get_subscribed_newletters)
        ]

    async def unfollow_newsletter(self, *, jid: str) -> None:
        await self._call(self._client().unfollow_newsletter, to_jid(jid))


# ---------------------------------------------------------------------------------------------- backend


class NeonizeBackend(p.Backend):
    """Makes one NeonizeClient per device; knows where whatsmeow keeps the sessions."""

    name = "neonize"

    def __init__(
        self,
        *,
        session_dir: str | Path | None = None,
        database_url: str | None = None,
        make_neonize: Callable[..., object] | None = None,
        stored_devices: Callable[[str], list] | None = None,
        backoff: Callable[[int], float] = default_backoff,
    ):
        if session_dir is None:
            session_dir = getattr(settings, "WA_SESSION_DIR", None) or Path(settings.DATA_DIR) / "sessions"
        self.session_dir = Path(session_dir)
        url = getattr(settings, "DATABASE_URL", "") if database_url is None else database_url
        self.database_url = url if (url or "").startswith("postgres") else ""
        self._make_neonize = make_neonize
        self._stored_devices = stored_devices
        self.backoff = backoff
        self.clients: dict[int, NeonizeClient] = {}
        self.lingering: set[asyncio.Future] = set()  # Go calls of stopped clients that have not returned yet
        # Each neonize client gets a Go session ID of its own: Go keys clients, stop signals and event channels
        # by it, and neonize's finalizer of a collected client stops that ID: shared, it stopped the live one.
        self._instances = itertools.count(1)

    def reserve_threads(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make room in the loop's default thread pool: neonize runs every Go call there (asyncio.to_thread),
        and each connected device keeps one thread blocked in its Go `Neonize()` call for as long as it is
        connected, as does a stopped linking session until its QR codes run out (`linger`). With the default
        pool (min(32, cpus + 4) threads) a few devices would starve every other call on the loop; so the pool
        gets the room of the devices and the lingering calls plus a margin."""
        needed = 32 + 2 * len(self.clients) + len(self.lingering)
        executor = getattr(loop, "_default_executor", None)
        if executor is None:
            loop.set_default_executor(ThreadPoolExecutor(max_workers=needed, thread_name_prefix="asyncio"))
        elif isinstance(executor, ThreadPoolExecutor) and executor._max_workers < needed:
            executor._max_workers = needed  # CPython starts threads lazily up to this bound

    def linger(self, connection: asyncio.Future) -> None:
        """Count a stopped client's Go call that has not returned yet until it does (see reserve_threads)."""
        if connection.done() or connection in self.lingering:
            return
        self.lingering.add(connection)

        def ended(done: asyncio.Future) -> None:
            self.lingering.discard(done)
            if not done.cancelled() and done.exception() is not None:
                logger.info("a stopped neonize connection ended: %s", done.exception())

        connection.add_done_callback(ended)
        with contextlib.suppress(RuntimeError):
            self.reserve_threads(asyncio.get_running_loop())

    def create_client(self, *, device_id: int, jid: str | None, emit: p.EmitEvent) -> NeonizeClient:
        client = NeonizeClient(backend=self, device_id=device_id, jid=jid, emit=emit)
        self.clients[device_id] = client
        return client

    async def close(self) -> None:
        for client in list(self.clients.values()):
            with contextlib.suppress(Exception):
                await client.stop()

    # -- sessions

    def session_path(self, device_id: int) -> Path:
        return self.session_dir / f"device-{device_id}.sqlite3"

    def message_ids(self, device_id: int) -> MessageIds:
        """The device's map of our message IDs to WhatsApp's (a local file, also with PostgreSQL sessions)."""
        return MessageIds(self.session_dir / f"device-{device_id}.ids.sqlite3")

    def store_name(self, device_id: int) -> str:
        """neonize's `name`: the whatsmeow store (a PostgreSQL URL, or this device's SQLite file)."""
        return self.database_url or str(self.session_path(device_id))

    def remove_session(self, device_id: int) -> None:
        """Delete the device's SQLite session and ID map (PostgreSQL rows are deleted by whatsmeow's Logout)."""
        client = self.clients.get(device_id)
        if client is not None:
            client.ids.close()
        with contextlib.suppress(FileNotFoundError):
            (self.session_dir / f"device-{device_id}.ids.sqlite3").unlink()
        if self.database_url:
            return
        path = self.session_path(device_id)
        for candidate in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
            path.with_name(path.name + "-journal"),
        ):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()

    async def stored_session_jid(self, jid: str):
        """In the shared PostgreSQL store: the full JID (with device number) of `jid`'s stored session."""
        if not jid:
            return None
        lister = self._stored_devices or stored_device_jids
        stored = await asyncio.to_thread(lister, self.database_url)
        user = p.jid_user(jid)
        for value in stored:
            found = to_jid(value)
            if found.User == user:
                return found
        return None

    async def open_neonize(self, client: NeonizeClient):
        """A new neonize NewAClient for `client`'s device, on the right session store."""
        name = self.store_name(client.device_id)
        jid = None
        new_device = False
        if self.database_url:
            jid = await self.stored_session_jid(client.jid)
            new_device = jid is None  # never resume another device's session from the shared store
        else:
            self.session_dir.mkdir(parents=True, exist_ok=True)
        client._fresh_session = new_device or not client.jid
        uuid = f"device-{client.device_id}-{next(self._instances)}"
        if self._make_neonize is not None:
            return self._make_neonize(name=name, jid=jid, uuid=uuid, new_device=new_device)
        lib = neonize_lib()
        props = lib.DeviceProps(os="waportal", platformType=lib.DeviceProps.CHROME)
        # Not NewAClient(jid=...): that would make the Go session ID the phone number, the same for every client
        # of the device. neonize reads `jid` when it connects.
        neo = lib.NewAClient(name, props=props, uuid=uuid, new_device=new_device)
        neo.jid = jid
        return neo


def stored_device_jids(database_url: str) -> list[str]:
    """The JIDs of the sessions in whatsmeow's PostgreSQL store, read from its device table.

    Not neonize's ClientFactory.get_all_devices_from_db: it splits comma-joined rows, so one push or business
    name with a comma ("Acme, Inc.") raised for every device of the store."""
    import psycopg
    from psycopg import errors

    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            return [row[0] for row in conn.execute("SELECT jid FROM whatsmeow_device")]
    except errors.UndefinedTable:
        return []  # whatsmeow creates its tables on the first connection
