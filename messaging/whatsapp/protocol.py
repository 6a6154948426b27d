"""The one contract between waportal and WhatsApp: operations, their typed inputs and results, and domain events.

Both backends (`neonize`, the real one, and `sandbox`, a simulated network) implement
`WhatsAppClient`; nothing outside `messaging/whatsapp/` knows which one runs. Every value here is made of
plain types and dataclasses so it crosses the channel layer (msgpack) through `wire.encode`/`wire.decode`.
"""

from __future__ import annotations

import abc
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from django.utils.translation import gettext_noop as _noop

# ---------------------------------------------------------------------------------------------- JIDs

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"
NEWSLETTER_SERVER = "newsletter"
LID_SERVER = "lid"
_JID_RE = re.compile(
    r"^(?P<user>[0-9A-Za-z.:_-]{1,64})@(?P<server>s\.whatsapp\.net|g\.us|newsletter|lid|broadcast)$"
)
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 \-().]{4,30}$")


def normalize_jid(value: str) -> str:
    """A full JID as given, or bare digits (with +, spaces, dashes) made into a user JID. ValueError otherwise."""
    value = (value or "").strip()
    if not value:
        raise ValueError(_noop("is required"))
    if "@" in value:
        if not _JID_RE.match(value):
            raise ValueError(
                _noop("%(value)s is not a WhatsApp ID (like 905xxxxxxxxx@s.whatsapp.net or ID@g.us)")
                % {"value": repr(value)}
            )
        user, server = value.split("@", 1)
        if server == USER_SERVER:
            user = user.split(":", 1)[0]  # a device-qualified JID names the same chat
            if not user.isdigit():
                raise ValueError(
                    _noop("%(value)s is not a WhatsApp ID: the number must be digits")
                    % {"value": repr(value)}
                )
        return f"{user}@{server}"
    if not _PHONE_RE.match(value):
        raise ValueError(
            _noop("%(value)s is not a phone number (country code and number, e.g. 905xxxxxxxxx)")
            % {"value": repr(value)}
        )
    digits = re.sub(r"\D", "", value)
    if not 7 <= len(digits) <= 15:
        raise ValueError(
            _noop("%(value)s is not a phone number: it needs 7 to 15 digits with the country code")
            % {"value": repr(value)}
        )
    return f"{digits}@{USER_SERVER}"


def normalize_phone(value: str) -> str:
    """Bare digits with country code (for pairing codes and 'is on WhatsApp'). ValueError otherwise."""
    return normalize_jid(re.sub(r"@s\.whatsapp\.net$", "", (value or "").strip())).split("@", 1)[0]


def jid_user(jid: str) -> str:
    return jid.split("@", 1)[0]


def is_group(jid: str) -> bool:
    return jid.endswith("@" + GROUP_SERVER)


def is_lid(jid: str) -> bool:
    """A hidden user ID (…@lid): a person WhatsApp names without their phone number."""
    return jid.endswith("@" + LID_SERVER)


# The disappearing-message timers WhatsApp offers: off, 24 hours, 7 days, 90 days.
DISAPPEARING_TIMERS = (0, 86_400, 604_800, 7_776_000)


def generate_message_id() -> str:
    """A WhatsApp-style message ID (as whatsmeow makes them), created before sending so nothing is lost."""
    return "3EB0" + secrets.token_hex(9).upper()


# ---------------------------------------------------------------------------------------------- errors


class ErrorCode(StrEnum):
    NOT_CONNECTED = "DEVICE_NOT_CONNECTED"
    NOT_LOGGED_IN = "DEVICE_NOT_LOGGED_IN"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    INVALID = "VALIDATION_ERROR"
    TIMEOUT = "UPSTREAM_TIMEOUT"
    UPSTREAM = "UPSTREAM_ERROR"
    # Not WhatsApp's: the web tier cannot reach the session workers (the channel layer is down).
    UNAVAILABLE = "SERVICE_UNAVAILABLE"
    REACHOUT_TIMELOCK = "WA_REACHOUT_TIMELOCK"  # WhatsApp's error 463: too many new chats, wait before more


class WhatsAppError(Exception):
    """An operation WhatsApp (or the simulated network) refused. `code` is stable, `message` is for people."""

    code: ErrorCode = ErrorCode.UPSTREAM

    def __init__(self, message: str, *, code: ErrorCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __reduce__(self):
        return (error_from_code, (str(self.code), self.message))


class NotConnected(WhatsAppError):
    code = ErrorCode.NOT_CONNECTED


class NotLoggedIn(WhatsAppError):
    code = ErrorCode.NOT_LOGGED_IN


class NotSupported(WhatsAppError):
    code = ErrorCode.NOT_SUPPORTED


class NotFound(WhatsAppError):
    code = ErrorCode.NOT_FOUND


class Forbidden(WhatsAppError):
    code = ErrorCode.FORBIDDEN


class InvalidRequest(WhatsAppError):
    code = ErrorCode.INVALID


class UpstreamTimeout(WhatsAppError):
    code = ErrorCode.TIMEOUT


class ReachoutTimelock(WhatsAppError):
    code = ErrorCode.REACHOUT_TIMELOCK


class SendOutcomeUnknown(WhatsAppError):
    """A send of this message was started before (by a worker that died, or one that timed out) and it is not
    known whether WhatsApp took it. Raised, instead of sending again, by a backend that cannot send with our
    message ID; the outbox marks the message `unknown` and leaves the choice to resend to a person."""


_ERRORS = {
    cls.code.value: cls
    for cls in (
        NotConnected,
        NotLoggedIn,
        NotSupported,
        NotFound,
        Forbidden,
        InvalidRequest,
        UpstreamTimeout,
        ReachoutTimelock,
    )
}


def error_from_code(code: str, message: str) -> WhatsAppError:
    cls = _ERRORS.get(code, WhatsAppError)
    return cls(message) if cls is not WhatsAppError else WhatsAppError(message, code=ErrorCode.UPSTREAM)


# ---------------------------------------------------------------------------------------------- inputs


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    CONTACT = "contact"
    LOCATION = "location"
    LINK = "link"
    POLL = "poll"
    # received only:
    REACTION = "reaction"
    EDIT = "edit"
    REVOKE = "revoke"
    POLL_VOTE = "poll_vote"
    UNKNOWN = "unknown"


MEDIA_KINDS = frozenset(
    {MessageKind.IMAGE, MessageKind.AUDIO, MessageKind.VIDEO, MessageKind.DOCUMENT, MessageKind.STICKER}
)


@dataclass(slots=True, kw_only=True)
class QuotedMessage:
    """What a reply points at: enough for WhatsApp to render the quote."""

    id: str
    sender: str  # JID of the quoted message's author
    text: str = ""
    from_me: bool = False


@dataclass(slots=True, kw_only=True)
class OutgoingMessage:
    """One message to send. `id` is generated (generate_message_id) and stored before sending."""

    id: str
    to: str  # chat JID (user, group or newsletter)
    kind: MessageKind
    text: str = ""  # TEXT body; LINK: the link; the caption of media goes in `caption`
    caption: str = ""
    media: bytes | None = None
    # The stored file, in place of `media` for a stored message: a client whose READS_MEDIA_PATH is true reads
    # (streams) it itself; others are handed `media` read from it just before their send (`with_media`).
    media_path: str = ""
    mime_type: str = ""
    filename: str = ""
    view_once: bool = False
    compress: bool = False
    is_forwarded: bool = False
    reply_to: QuotedMessage | None = None
    contact_name: str = ""
    contact_phone: str = ""
    latitude: float | None = None
    longitude: float | None = None
    poll_question: str = ""
    poll_options: list[str] = field(default_factory=list)
    poll_max_answer: int = 1
    # Extras the peer server's clients send: JIDs to mention (EVERYONE mentions every member of a group),
    # a disappearing timer in seconds, a voice note (None: by its type) and a video that plays as a GIF.
    mentions: list[str] = field(default_factory=list)
    expiration: int = 0
    ptt: bool | None = None
    gif_playback: bool = False


EVERYONE = "@everyone"


class ParticipantAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    PROMOTE = "promote"
    DEMOTE = "demote"


class Presence(StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"


class ChatPresenceState(StrEnum):
    COMPOSING = "composing"  # "start" in the API
    PAUSED = "paused"  # "stop" in the API


# ---------------------------------------------------------------------------------------------- results


@dataclass(slots=True, kw_only=True)
class SendResult:
    id: str
    timestamp: float  # unix seconds, as WhatsApp's server stamped it


@dataclass(slots=True, kw_only=True)
class PairCode:
    code: str  # "ABCD-EFGH"
    expires_in: float = 160.0


@dataclass(slots=True, kw_only=True)
class UserInfo:
    jid: str
    status: str = ""
    picture_id: str = ""
    devices: list[str] = field(default_factory=list)
    verified_name: str = ""


@dataclass(slots=True, kw_only=True)
class Avatar:
    url: str
    id: str = ""
    type: str = "image"  # "image" or "preview"
    direct_path: str = ""


@dataclass(slots=True, kw_only=True)
class PrivacySettings:
    group_add: str = ""
    last_seen: str = ""
    status: str = ""
    profile: str = ""
    read_receipts: str = ""
    online: str = ""
    call_add: str = ""


@dataclass(slots=True, kw_only=True)
class ContactInfo:
    jid: str
    first_name: str = ""
    full_name: str = ""
    push_name: str = ""
    business_name: str = ""


@dataclass(slots=True, kw_only=True)
class OnWhatsApp:
    query: str
    jid: str
    is_in: bool
    verified_name: str = ""


@dataclass(slots=True, kw_only=True)
class BusinessProfile:
    jid: str
    email: str = ""
    address: str = ""
    description: str = ""
    website: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class GroupParticipant:
    jid: str
    is_admin: bool = False
    is_super_admin: bool = False
    display_name: str = ""


@dataclass(slots=True, kw_only=True)
class GroupInfo:
    jid: str
    name: str = ""
    topic: str = ""
    owner: str = ""
    created_at: float = 0.0
    locked: bool = False  # only admins edit group info
    announce: bool = False  # only admins send
    join_approval: bool = False
    participants: list[GroupParticipant] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class ParticipantResult:
    """One row per participant, so a partial failure is visible per number."""

    participant: str
    status: str  # "success" or "error"
    message: str = ""


@dataclass(slots=True, kw_only=True)
class JoinRequest:
    jid: str
    requested_at: float = 0.0


@dataclass(slots=True, kw_only=True)
class Newsletter:
    jid: str
    name: str = ""
    description: str = ""
    subscribers: int = 0
    role: str = ""  # subscriber, admin, owner


@dataclass(slots=True, kw_only=True)
class NewsletterPost:
    """One message of a newsletter (channel), as its server numbers it."""

    server_id: int
    kind: str = "text"  # a MessageKind value
    text: str = ""  # the body, or a media message's caption
    timestamp: float = 0.0  # 0 when WhatsApp does not say
    views: int = 0
    reactions: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- events


@dataclass(slots=True, kw_only=True)
class Event:
    """Base of every domain event. The session worker stamps `device_id` before handing it on."""

    device_id: int = 0


@dataclass(slots=True, kw_only=True)
class QRCodeEvent(Event):
    code: str  # the text to render as a QR
    expires_in: float  # seconds until this code stops working


@dataclass(slots=True, kw_only=True)
class PairCodeEvent(Event):
    code: str
    expires_in: float = 160.0


@dataclass(slots=True, kw_only=True)
class PairedEvent(Event):
    jid: str
    push_name: str = ""
    platform: str = ""


@dataclass(slots=True, kw_only=True)
class ConnectedEvent(Event):
    jid: str = ""
    push_name: str = ""


class DisconnectCause(StrEnum):
    """Why a connection ended, where the dashboard has something to tell people about it."""

    UNREACHABLE = (
        "unreachable"  # this server cannot open a connection to WhatsApp (DNS, route, firewall, proxy)
    )


# What the device's status_reason says for DisconnectCause.UNREACHABLE (the API's "reason"; pages translate it).
UNREACHABLE_REASON = "Can't reach WhatsApp from this server; check its network."


@dataclass(slots=True, kw_only=True)
class DisconnectedEvent(Event):
    reason: str = ""
    will_reconnect: bool = True
    cause: str = ""  # a DisconnectCause, or "" (the raw `reason` is then all there is to say)


@dataclass(slots=True, kw_only=True)
class LoggedOutEvent(Event):
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class MediaInfo:
    mime_type: str = ""
    size: int = 0
    filename: str = ""
    sha256: str = ""
    # Opaque to everything but the backend that made it; passed back to download_media.
    ref: dict = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class IncomingMessage:
    """`chat` and `sender` by phone number when WhatsApp told it, else by hidden user ID (…@lid);
    `chat_lid` and `sender_lid`: that ID when WhatsApp named one (both known: the event maps one to the other)."""

    id: str
    chat: str
    sender: str
    sender_name: str = ""
    from_me: bool = False  # sent from the phone or another linked device of ours
    timestamp: float = 0.0
    kind: MessageKind = MessageKind.TEXT
    text: str = ""
    caption: str = ""
    media: MediaInfo | None = None
    view_once: bool = False
    is_forwarded: bool = False
    reply_to_id: str = ""
    quoted_body: str = ""
    latitude: float | None = None
    longitude: float | None = None
    contact_name: str = ""
    contact_vcard: str = ""
    poll_question: str = ""
    poll_options: list[str] = field(default_factory=list)
    target_id: str = ""  # REACTION / EDIT / REVOKE / POLL_VOTE: the message acted on
    reaction: str = ""  # REACTION: the emoji ("" removes it)
    # POLL_VOTE: the options now chosen (all of the voter's choices; none withdraws the vote), each as WhatsApp
    # names it: the SHA-256 (hex) of the option's text.
    poll_selected: list[str] = field(default_factory=list)
    chat_lid: str = ""
    sender_lid: str = ""


@dataclass(slots=True, kw_only=True)
class MessageEvent(Event):
    message: IncomingMessage


@dataclass(slots=True, kw_only=True)
class LidMappingEvent(Event):
    """WhatsApp told the device which phone number a hidden user ID stands for (outside a message)."""

    lid: str  # "123456789@lid"
    phone: str  # "905551234567@s.whatsapp.net"


class ReceiptType(StrEnum):
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"


@dataclass(slots=True, kw_only=True)
class ReceiptEvent(Event):
    chat: str
    sender: str  # who delivered/read
    message_ids: list[str]
    type: ReceiptType
    timestamp: float = 0.0


@dataclass(slots=True, kw_only=True)
class PresenceEvent(Event):
    jid: str
    available: bool
    last_seen: float | None = None


@dataclass(slots=True, kw_only=True)
class ChatPresenceEvent(Event):
    chat: str
    sender: str
    state: ChatPresenceState
    media: str = ""  # "audio" while recording


class GroupChange(StrEnum):
    PARTICIPANTS = "participants"
    SUBJECT = "subject"
    SETTINGS = "settings"


@dataclass(slots=True, kw_only=True)
class GroupChangedEvent(Event):
    group: str
    change: GroupChange
    actor: str = ""
    action: str = ""  # participants: add/remove/promote/demote/leave/join
    participants: list[str] = field(default_factory=list)
    name: str | None = None
    topic: str | None = None
    locked: bool | None = None
    announce: bool | None = None
    timestamp: float = 0.0


@dataclass(slots=True, kw_only=True)
class JoinRequestEvent(Event):
    group: str
    requester: str
    action: str = "created"  # created / revoked
    timestamp: float = 0.0


@dataclass(slots=True, kw_only=True)
class HistoryConversation:
    """One chat of a history sync: what the phone knew of it, and a slice of its messages (oldest first)."""

    jid: str
    name: str = ""
    unread_count: int = 0
    last_message_at: float = 0.0  # unix seconds; 0 when the phone did not say
    messages: list[IncomingMessage] = field(default_factory=list)


class HistorySyncType(StrEnum):
    """whatsmeow's HistorySync.syncType, by name (INITIAL_BOOTSTRAP, RECENT, FULL... in lower case)."""

    INITIAL_BOOTSTRAP = "initial_bootstrap"
    INITIAL_STATUS_V3 = "initial_status_v3"
    FULL = "full"
    RECENT = "recent"
    PUSH_NAME = "push_name"
    NON_BLOCKING_DATA = "non_blocking_data"
    ON_DEMAND = "on_demand"


@dataclass(slots=True, kw_only=True)
class HistorySyncEvent(Event):
    """One chunk of the history the phone sends a newly linked device: chats, their messages, push names.

    A sync comes in chunks (`chunk_order` 1, 2, ...; the same chunk may come again); `progress` is the phone's
    percentage of the whole; `final` marks the last chunk (the backend's judgement: neonize says progress 100).
    """

    sync_type: HistorySyncType = HistorySyncType.RECENT
    chunk_order: int = 0
    progress: int = 0
    final: bool = False
    conversations: list[HistoryConversation] = field(default_factory=list)
    push_names: dict[str, str] = field(default_factory=dict)  # JID -> the name its owner gave themselves


@dataclass(slots=True, kw_only=True)
class CallOfferEvent(Event):
    """Someone is calling the number. The session worker fills `rejected`/`reply_sent` (the number's auto-reject
    setting) before it is handled; a backend emits both False."""

    call_id: str
    caller: str  # the caller's phone JID when known (else as the offer named them)
    caller_lid: str = ""  # the hidden ID (@lid) the offer named the caller by, when it did
    is_video: bool = False
    is_group: bool = False
    group: str = ""  # a group call's group JID, when the offer says
    timestamp: float = 0.0
    rejected: bool = False
    reply_sent: bool = False  # the reply text was queued in the outbox (it goes out like any send)
    reject_error: str = ""  # why rejecting failed (rejected stays False)


@dataclass(slots=True, kw_only=True)
class LabelEditEvent(Event):
    """A WhatsApp Business label made, renamed, recoloured or deleted (on the phone or another linked device)."""

    label_id: str
    name: str = ""
    color: int = 0  # LABEL_COLORS index
    deleted: bool = False
    timestamp: float = 0.0


@dataclass(slots=True, kw_only=True)
class LabelAssociationEvent(Event):
    """A label put on a chat (`labeled`) or taken off it."""

    chat: str
    label_id: str
    labeled: bool = True
    timestamp: float = 0.0


# WhatsApp's label palette (index -> colour), as its apps draw it: a label's `color` is an index into it.
LABEL_COLORS = (
    "#ff9485", "#64c4ff", "#ffd429", "#dfaef0", "#99b6c1", "#55ccb3", "#ff9dff", "#d3a91d", "#6d7cce",
    "#d7e752", "#00d0e2", "#ffc5c7", "#93ceac", "#f74848", "#00a0f2", "#83e422", "#ffaf04", "#b5ebff",
    "#9ba6ff", "#9368cf",
)  # fmt: skip


EmitEvent = Callable[[Event], Awaitable[None]]


# ---------------------------------------------------------------------------------------------- the client


class WhatsAppClient(abc.ABC):
    """One linked device's connection. Async; every method may raise WhatsAppError.

    A client is made by `Backend.create_client` and driven only by the session worker that holds the
    device's lease. Events (QR codes, messages, receipts, ...) are handed to `emit` as they happen.
    """

    # Whether `send`/`send_many` read a stored message's file from `OutgoingMessage.media_path` themselves.
    # False: the session worker hands them `media` bytes instead, one such message at a time (`with_media`).
    READS_MEDIA_PATH: bool = False
    # The number's proxy (socks5://, socks5h://, http://, https://, with user:pass or not); "" for none. Set
    # by the session worker (`use_proxy`) before `start`; a change reaches the client by a restart.
    proxy_url: str = ""

    def use_proxy(self, url: str) -> None:
        """Connect through `url` from the next `start` on ("" connects directly)."""
        self.proxy_url = url or ""

    # -- lifecycle
    @abc.abstractmethod
    async def start(self) -> None:
        """Connect. With a stored session this logs in; without, it starts linking (QRCodeEvents follow)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Disconnect, keeping the session (a later start reconnects without a new QR)."""

    @abc.abstractmethod
    async def pair_phone(self, *, phone: str) -> PairCode:
        """Link by pairing code instead of QR: the user enters the code on the phone `phone` (digits)."""

    @abc.abstractmethod
    async def logout(self) -> None:
        """Unlink from the phone and delete the stored session."""

    @abc.abstractmethod
    async def reconnect(self) -> None: ...

    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    # -- sending
    @abc.abstractmethod
    async def send(self, *, message: OutgoingMessage) -> SendResult:
        """Send with the message's own ID. Sending an ID already sent must not deliver it twice."""

    async def send_many(self, *, messages: list[OutgoingMessage]) -> list[SendResult | Exception]:
        """Send `messages` in this order (see `send_in_order`). A backend that sends several for less than
        one at a time overrides it: the sandbox stores them on its network in one transaction."""
        return await send_in_order(self, messages)

    @abc.abstractmethod
    async def send_presence(self, *, presence: Presence) -> None: ...

    @abc.abstractmethod
    async def send_chat_presence(self, *, chat: str, state: ChatPresenceState, media: str = "") -> None: ...

    # -- acting on messages (sender: the JID of the message's author; from_me for our own)
    @abc.abstractmethod
    async def revoke(self, *, chat: str, message_id: str, sender: str) -> SendResult: ...

    @abc.abstractmethod
    async def delete_for_me(self, *, chat: str, message_id: str, sender: str, from_me: bool) -> None: ...

    @abc.abstractmethod
    async def react(self, *, chat: str, message_id: str, sender: str, emoji: str) -> SendResult: ...

    @abc.abstractmethod
    async def edit(self, *, chat: str, message_id: str, text: str) -> SendResult: ...

    @abc.abstractmethod
    async def mark_read(self, *, chat: str, message_ids: list[str], sender: str) -> None: ...

    @abc.abstractmethod
    async def star(
        self, *, chat: str, message_id: str, sender: str, from_me: bool, starred: bool
    ) -> None: ...

    @abc.abstractmethod
    async def download_media(self, *, ref: dict) -> bytes: ...

    # -- users and profile
    @abc.abstractmethod
    async def user_info(self, *, jids: list[str]) -> list[UserInfo]: ...

    @abc.abstractmethod
    async def avatar(self, *, jid: str, preview: bool = False, community: bool = False) -> Avatar | None: ...

    @abc.abstractmethod
    async def set_avatar(self, *, image: bytes) -> str:
        """Returns the new picture ID."""

    @abc.abstractmethod
    async def set_push_name(self, *, name: str) -> None: ...

    @abc.abstractmethod
    async def privacy(self) -> PrivacySettings: ...

    @abc.abstractmethod
    async def contacts(self) -> list[ContactInfo]: ...

    @abc.abstractmethod
    async def check_numbers(self, *, phones: list[str]) -> list[OnWhatsApp]: ...

    @abc.abstractmethod
    async def business_profile(self, *, jid: str) -> BusinessProfile: ...

    # -- chat state (app state on WhatsApp: every linked device of the number sees it)
    @abc.abstractmethod
    async def pin_chat(self, *, chat: str, pinned: bool) -> None: ...

    @abc.abstractmethod
    async def archive_chat(self, *, chat: str, archived: bool) -> None: ...

    @abc.abstractmethod
    async def set_disappearing_timer(self, *, chat: str, seconds: int) -> None:
        """Messages of `chat` disappear after `seconds` (one of DISAPPEARING_TIMERS; 0 turns it off)."""

    @abc.abstractmethod
    async def label_chat(self, *, chat: str, label_id: str, label_name: str, labeled: bool) -> None:
        """Put a WhatsApp Business label on the chat (or take it off); `label_name` names a new label."""

    @abc.abstractmethod
    async def edit_label(self, *, label_id: str, name: str, color: int, deleted: bool = False) -> None:
        """Make, rename or recolour the label `label_id` (a LABEL_COLORS index), or delete it."""

    # -- calls
    @abc.abstractmethod
    async def reject_call(self, *, caller: str, call_id: str) -> None:
        """Decline an incoming call (`caller` as the offer named them)."""

    # -- groups
    @abc.abstractmethod
    async def joined_groups(self) -> list[GroupInfo]: ...

    @abc.abstractmethod
    async def group_info(self, *, jid: str) -> GroupInfo: ...

    @abc.abstractmethod
    async def create_group(self, *, name: str, participants: list[str]) -> GroupInfo: ...

    @abc.abstractmethod
    async def update_participants(
        self, *, jid: str, participants: list[str], action: ParticipantAction
    ) -> list[ParticipantResult]: ...

    @abc.abstractmethod
    async def join_with_link(self, *, code: str) -> str:
        """Join by invite code (the part after https://chat.whatsapp.com/); returns the group JID."""

    @abc.abstractmethod
    async def group_info_from_link(self, *, code: str) -> GroupInfo:
        """A group's info by its invite code, without joining it."""

    @abc.abstractmethod
    async def invite_link(self, *, jid: str, reset: bool = False) -> str: ...

    @abc.abstractmethod
    async def join_requests(self, *, jid: str) -> list[JoinRequest]: ...

    @abc.abstractmethod
    async def answer_join_requests(
        self, *, jid: str, participants: list[str], approve: bool
    ) -> list[ParticipantResult]: ...

    @abc.abstractmethod
    async def leave_group(self, *, jid: str) -> None: ...

    @abc.abstractmethod
    async def set_group_name(self, *, jid: str, name: str) -> None: ...

    @abc.abstractmethod
    async def set_group_topic(self, *, jid: str, topic: str) -> None: ...

    @abc.abstractmethod
    async def set_group_photo(self, *, jid: str, image: bytes) -> str: ...

    @abc.abstractmethod
    async def set_group_locked(self, *, jid: str, locked: bool) -> None: ...

    @abc.abstractmethod
    async def set_group_announce(self, *, jid: str, announce: bool) -> None: ...

    # -- newsletters
    @abc.abstractmethod
    async def newsletters(self) -> list[Newsletter]: ...

    @abc.abstractmethod
    async def unfollow_newsletter(self, *, jid: str) -> None: ...

    @abc.abstractmethod
    async def newsletter_messages(
        self, *, jid: str, count: int = 50, before: int = 0
    ) -> list[NewsletterPost]:
        """The newest `count` posts (older than server ID `before`, when given), newest last."""


# The operations the web tier may ask a worker for (by name, over the channel layer): every public
# coroutine of WhatsAppClient but the lifecycle ones the worker drives itself.
OPERATIONS = frozenset(
    name
    for name, member in vars(WhatsAppClient).items()
    if getattr(member, "__isabstractmethod__", False) and name not in {"start", "stop", "is_connected"}
)


class Backend(abc.ABC):
    """Makes clients. One instance per worker process."""

    name: str

    @abc.abstractmethod
    def create_client(self, *, device_id: int, jid: str | None, emit: EmitEvent) -> WhatsAppClient:
        """A client for device `device_id`; `jid` is set once the device was linked (None while linking)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (called when the worker stops)."""


def with_media(message: OutgoingMessage) -> OutgoingMessage:
    """`message` with its stored file (`media_path`) read into `media`, for a client that needs the bytes;
    InvalidRequest (a refusal of this message) when the file cannot be read."""
    if not message.media_path or message.media is not None:
        return message
    try:
        with open(message.media_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InvalidRequest(
            _noop("the stored file cannot be read: %(value)s") % {"value": exc.strerror or exc}
        ) from None
    return replace(message, media=data, media_path="")


# Refusals of one message (it will never go out as it is); other errors stop a run of sends.
REFUSALS = (InvalidRequest, NotFound, Forbidden, NotSupported)


async def send_in_order(client, messages: list[OutgoingMessage]) -> list[SendResult | Exception]:
    """`client.send` each message in order; for each, its SendResult or the exception it met. After an
    exception other than a refusal of that message alone (REFUSALS), e.g. NotConnected or a timeout, the
    rest are not tried: the list ends with that exception."""
    results: list[SendResult | Exception] = []
    for message in messages:
        try:
            results.append(await client.send(message=message))
        except (*REFUSALS, SendOutcomeUnknown) as exc:  # this message's alone: the rest go on
            results.append(exc)
        except Exception as exc:
            results.append(exc)
            break
    return results
