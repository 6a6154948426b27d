"""The sandbox backend: a simulated WhatsApp network in the database, deterministic under a seed.

Everything the network knows (accounts, sessions, link codes, groups, newsletters, messages, media) lives
in the `Sandbox*` models, so the web process, the session workers and the tests see one network. Writes
that concern a device (a message for it, a group change, a scan of its QR code) become `SandboxDelivery`
rows; the device's client picks them up in `poke()`, which the writer triggers: directly when the client
lives in this process, else through `gateway.notify_worker(device_id, {"type": "worker.poke"})`.

Rules are WhatsApp's: only registered numbers exist, non-admins cannot change participants, announce
groups take messages from admins only, locked groups take info changes from admins only, only your own
message can be edited and only within 15 minutes, a pairing code works for the number it was asked for.

Simulated peers answer what a device sends them: receipts (delivered, then read unless their privacy
hides read receipts), then by their behaviour: `echo` types and echoes, `react` reacts, `media` answers
with a picture, `quiet` does nothing. Delays are WA_SANDBOX_DELAY seconds (0.2 by default).

Helpers for the dashboard's simulated phone and for tests: seed_network, network_summary, peer_phones,
fresh_phone, phone_scan, phone_enter_code, phone_unlink, peer_send, peer_react, peer_edit, peer_revoke,
peer_read, peer_typing, peer_presence, peer_join_request, peer_create_group, add_group_member,
follow_newsletter, sent_to, received_by, advance_clock / set_clock (the network's clock: the edit window).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import re
import secrets
import struct
import time
import zlib
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from messaging import runtime
from messaging.whatsapp import protocol as p
from messaging.whatsapp import wire
from messaging.whatsapp.protocol import (
    Avatar,
    BusinessProfile,
    ChatPresenceState,
    ContactInfo,
    Forbidden,
    GroupInfo,
    GroupParticipant,
    IncomingMessage,
    InvalidRequest,
    JoinRequest,
    MediaInfo,
    MessageKind,
    Newsletter,
    NotConnected,
    NotFound,
    OnWhatsApp,
    OutgoingMessage,
    PairCode,
    ParticipantAction,
    ParticipantResult,
    Presence,
    PrivacySettings,
    SendResult,
    UserInfo,
)

logger = logging.getLogger(__name__)

EDIT_WINDOW = 15 * 60  # WhatsApp lets you edit your message for 15 minutes
REVOKE_WINDOW = 60 * 60 * 60  # and delete it for everyone for about two and a half days
PAIR_CODE_SECONDS = 160.0
INVITE_PREFIX = "https://chat.whatsapp.com/"
GROUP_NAME_MAX = 100
GROUP_TOPIC_MAX = 2048
PUSH_NAME_MAX = 25
PAIR_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"
DEFAULT_PRIVACY = {
    "group_add": "all",
    "last_seen": "all",
    "status": "all",
    "profile": "all",
    "read_receipts": "all",
    "online": "all",
    "call_add": "all",
}
SUPERADMIN, ADMIN, MEMBER = "superadmin", "admin", "member"

# What the seeded peers are like: (behaviour, privacy overrides, business profile?). Order is stable.
_PERSONAS = [
    ("echo", {}, False),
    ("echo", {}, True),
    ("react", {}, False),
    ("media", {}, False),
    ("quiet", {"group_add": "contacts"}, False),
    ("echo", {"read_receipts": "none", "profile": "none", "status": "none"}, False),
]
_NAMES = [
    "Ayşe",
    "Mehmet",
    "Zeynep",
    "Can",
    "Elif",
    "Burak",
    "Maria",
    "John",
    "Priya",
    "Kenji",
    "Lena",
    "Omar",
]
_SURNAMES = ["Yılmaz", "Kaya", "Demir", "Smith", "García", "Tanaka", "Schmidt", "Haddad", "Rao", "Costa"]
_ABOUTS = [
    "Hey there! I am using WhatsApp.",
    "Available",
    "At work",
    "Busy",
    "Battery about to die",
    "Sleeping",
]
_REACTIONS = ["👍", "❤️", "😂", "😮", "🙏", "🎉"]

# ---------------------------------------------------------------------------------------------- settings


def _delay() -> float:
    return float(getattr(settings, "WA_SANDBOX_DELAY", 0.2))


def _qr_seconds() -> float:
    return float(getattr(settings, "WA_SANDBOX_QR_SECONDS", 20))


# ---------------------------------------------------------------------------------------------- the clock

_clock: Callable[[], float] | None = None


def set_clock(clock: Callable[[], float] | None) -> None:
    """Replace the network's clock in this process (None: back to real time plus the stored offset)."""
    global _clock
    _clock = clock


def now() -> float:
    """WhatsApp's time on the simulated network, unix seconds. Sync (reads the shared offset)."""
    if _clock is not None:
        return _clock()
    from messaging.models import SandboxNetwork

    # Read on every send and receipt: the one column of the one row, without building a query each time.
    with connection.cursor() as cursor:
        cursor.execute(_CLOCK_SQL.format(table=connection.ops.quote_name(SandboxNetwork._meta.db_table)))
        row = cursor.fetchone()
    return time.time() + ((row[0] if row else 0.0) or 0.0)


_CLOCK_SQL = "SELECT clock_offset FROM {table} ORDER BY id LIMIT 1"


def advance_clock(seconds: float) -> float:
    """Make time pass on the network for every process (edit windows, code expiry); returns the new time."""
    from messaging.models import SandboxNetwork

    _network()
    SandboxNetwork.objects.update(clock_offset=F("clock_offset") + float(seconds))
    return now()


# ---------------------------------------------------------------------------------------------- generated bytes


def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def identicon(key: str, size: int = 96) -> bytes:
    """A symmetric 5x5 pattern in a colour of `key`'s own, as PNG: every account's default picture."""
    h = hashlib.sha256(key.encode()).digest()
    fg = (60 + h[0] % 160, 60 + h[1] % 160, 60 + h[2] % 160)
    bg = (242, 242, 242)
    cells = [[h[3 + y * 3 + min(x, 4 - x)] & 1 for x in range(5)] for y in range(5)]
    step = max(size // 5, 1)
    return _png(size, size, lambda x, y: fg if cells[min(y // step, 4)][min(x // step, 4)] else bg)


def sample_media(kind: str, key: str = "sandbox") -> tuple[bytes, str, str]:
    """Bytes, MIME type and file name of a small file of `kind`, as a simulated peer would send it."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    if kind in ("image", "text"):
        return identicon(key, 64), "image/png", f"IMG-{digest}.png"
    if kind == "audio":
        return (
            b"OggS\x00\x02" + hashlib.sha256(key.encode()).digest() * 8,
            "audio/ogg; codecs=opus",
            f"PTT-{digest}.ogg",
        )
    if kind == "video":
        return (
            b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(key.encode()).digest() * 16,
            "video/mp4",
            f"VID-{digest}.mp4",
        )
    if kind == "sticker":
        body = b"WEBPVP8 " + hashlib.sha256(key.encode()).digest() * 4
        return b"RIFF" + struct.pack("<I", len(body)) + body, "image/webp", f"STK-{digest}.webp"
    text = f"%PDF-1.4\n% sandbox document {key}\n%%EOF\n".encode()
    return text, "application/pdf", f"DOC-{digest}.pdf"


def _is_image(data: bytes) -> bool:
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        or data.startswith(b"\xff\xd8\xff")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------------------- JIDs


def _jid(value: str, *, field: str = "jid") -> str:
    try:
        return p.normalize_jid(value)
    except ValueError as exc:
        raise InvalidRequest(f"{field}: {exc}") from None


def _phone(value: str, *, field: str = "phone") -> str:
    try:
        return p.normalize_phone(value)
    except ValueError as exc:
        raise InvalidRequest(f"{field}: {exc}") from None


def _user_jid(phone: str) -> str:
    return f"{phone}@{p.USER_SERVER}"


def _invite_code(value: str) -> str:
    value = (value or "").strip()
    if value.startswith(INVITE_PREFIX):
        value = value[len(INVITE_PREFIX) :]
    value = value.strip("/")
    if not value or not re.fullmatch(r"[A-Za-z0-9]{6,40}", value):
        raise InvalidRequest("code: not a WhatsApp invite code (the part after https://chat.whatsapp.com/)")
    return value


# ---------------------------------------------------------------------------------------------- seeding


def _network():
    """The network row; seeds the network (WA_SANDBOX_SEED) the first time anything touches it."""
    from messaging.models import SandboxNetwork

    net = SandboxNetwork.objects.filter(seed__isnull=False).first()
    if net is None:
        seed_network()
        net = SandboxNetwork.objects.first()
    return net


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _token(rng: random.Random, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n))


def seed_network(seed: int | None = None) -> dict:
    """Create the simulated peers, groups and newsletters of `seed` (WA_SANDBOX_SEED); idempotent.

    The same seed gives the same numbers, names, groups and invite links. Returns `network_summary()`.
    """
    from messaging.models import SandboxAccount, SandboxGroup, SandboxNetwork, SandboxNewsletter

    seed = int(getattr(settings, "WA_SANDBOX_SEED", 1) if seed is None else seed)
    rng = random.Random(seed)
    try:
        with transaction.atomic():
            net = SandboxNetwork.objects.select_for_update().first() or SandboxNetwork.objects.create()
            if net.seed == seed:
                return _summary()
            names = rng.sample(_NAMES, len(_PERSONAS))
            peers = []
            for index, (behavior, privacy, business) in enumerate(_PERSONAS):
                phone = "1555" + _digits(rng, 7)
                name = f"{names[index]} {rng.choice(_SURNAMES)}"
                account, _ = SandboxAccount.objects.get_or_create(
                    phone=phone,
                    defaults=dict(
                        push_name=f"{name} Ltd" if business else name,
                        about=rng.choice(_ABOUTS),
                        picture_id=str(rng.randint(10**9, 10**10 - 1)),
                        kind="peer",
                        behavior=behavior,
                        privacy={**DEFAULT_PRIVACY, **privacy},
                        verified_name=f"{name} Ltd" if business else "",
                        business=(
                            {
                                "email": f"hello@{names[index].lower()}-ltd.example",
                                "address": f"{rng.randint(1, 99)} Sandbox Street, Istanbul",
                                "description": "We answer every message, instantly.",
                                "website": [f"https://{names[index].lower()}-ltd.example"],
                                "categories": ["Shopping & retail"],
                            }
                            if business
                            else None
                        ),
                    ),
                )
                peers.append(account.jid)
            created = rng.randint(1_600_000_000, 1_700_000_000)
            groups = [
                ("Weekend Hikers", dict(owner=0, admins=[1], members=[0, 1, 2, 3])),
                ("Book Club", dict(owner=1, admins=[], members=[1, 2, 3, 5], join_approval=True)),
                (
                    "Sandbox Announcements",
                    dict(owner=2, admins=[], members=[2, 0, 4], announce=True, locked=True),
                ),
            ]
            for name, spec in groups:
                participants = {peers[i]: MEMBER for i in spec["members"]}
                for i in spec["admins"]:
                    participants[peers[i]] = ADMIN
                participants[peers[spec["owner"]]] = SUPERADMIN
                SandboxGroup.objects.get_or_create(
                    jid=f"120363{_digits(rng, 12)}@{p.GROUP_SERVER}",
                    defaults=dict(
                        name=name,
                        topic=f"{name}: a group of the simulated network",
                        owner=peers[spec["owner"]],
                        created_at=created,
                        announce=spec.get("announce", False),
                        locked=spec.get("locked", False),
                        join_approval=spec.get("join_approval", False),
                        invite_code=_token(rng, 22),
                        picture_id=str(rng.randint(10**9, 10**10 - 1)),
                        participants=participants,
                    ),
                )
            for name, description, subscribers in [
                ("Sandbox News", "What happens on the simulated network", rng.randint(1000, 90000)),
                ("Daily Tips", "One WhatsApp tip a day", rng.randint(1000, 90000)),
            ]:
                SandboxNewsletter.objects.get_or_create(
                    jid=f"120363{_digits(rng, 12)}@{p.NEWSLETTER_SERVER}",
                    defaults=dict(name=name, description=description, subscribers=subscribers, followers=[]),
                )
            net.seed = seed
            net.seeded_at = timezone.now()
            net.save()
    except IntegrityError:  # another process seeded it at the same moment
        pass
    return _summary()


def network_summary() -> dict:
    """The simulated network as plain data: peers (in persona order), groups, newsletters, an unregistered number."""
    _network()
    return _summary()


def _summary() -> dict:
    from messaging.models import SandboxAccount, SandboxGroup, SandboxNetwork, SandboxNewsletter

    net = SandboxNetwork.objects.first()
    peers = [
        {
            "phone": a.phone,
            "jid": a.jid,
            "name": a.push_name,
            "behavior": a.behavior,
            "business": bool(a.business),
            "about": a.about,
            "privacy": a.privacy,
        }
        for a in SandboxAccount.objects.filter(kind="peer").order_by("id")
    ]
    groups = [
        {
            "jid": g.jid,
            "name": g.name,
            "invite_link": INVITE_PREFIX + g.invite_code,
            "owner": g.owner,
            "participants": dict(g.participants),
            "announce": g.announce,
            "locked": g.locked,
            "join_approval": g.join_approval,
        }
        for g in SandboxGroup.objects.order_by("id")
    ]
    newsletters = [{"jid": n.jid, "name": n.name} for n in SandboxNewsletter.objects.order_by("id")]
    return {
        "seed": net.seed if net else None,
        "peers": peers,
        "groups": groups,
        "newsletters": newsletters,
        "unregistered": unregistered_phone(),
    }


def peer_phones(behavior: str | None = None) -> list[str]:
    """Phone numbers (digits) of the simulated peers, in a stable order; only those of `behavior` if given."""
    from messaging.models import SandboxAccount

    _network()
    rows = SandboxAccount.objects.filter(kind="peer", registered=True)
    if behavior:
        rows = rows.filter(behavior=behavior)
    return list(rows.order_by("id").values_list("phone", flat=True))


def unregistered_phone() -> str:
    """A well-formed number that is not on the simulated WhatsApp."""
    from messaging.models import SandboxAccount

    n = 1
    while SandboxAccount.objects.filter(phone=f"1555999{n:04d}", registered=True).exists():
        n += 1
    return f"1555999{n:04d}"


def fresh_phone() -> str:
    """A number no account has yet: for linking a new device from a new simulated phone."""
    from messaging.models import SandboxAccount

    n = SandboxAccount.objects.filter(kind="phone").count() + 1
    while SandboxAccount.objects.filter(phone=f"1999{n:07d}").exists():
        n += 1
    return f"1999{n:07d}"


def _phone_account(phone: str, push_name: str = ""):
    """The account of a phone that links devices; created (registered, with the peers as contacts) if new."""
    from messaging.models import SandboxAccount, SandboxNewsletter

    account = SandboxAccount.objects.filter(phone=phone).first()
    if account is not None:
        if not account.registered:
            account.registered = True
            account.save(update_fields=["registered"])
        return account
    contacts = list(
        _user_jid(ph)
        for ph in SandboxAccount.objects.filter(kind="peer", registered=True)
        .order_by("id")
        .values_list("phone", flat=True)
    )
    account = SandboxAccount.objects.create(
        phone=phone,
        push_name=push_name or f"Sandbox {phone[-4:]}",
        about="Hey there! I am using WhatsApp.",
        picture_id=str(int(hashlib.sha256(phone.encode()).hexdigest()[:9], 16)),
        kind="phone",
        privacy=dict(DEFAULT_PRIVACY),
        contacts=contacts,
    )
    first = SandboxNewsletter.objects.order_by("id").first()
    if first is not None:  # a new phone follows the network's news, as new WhatsApp users are nudged to
        _Actor(phone).follow_newsletter(jid=first.jid)
    return account


# ---------------------------------------------------------------------------------------------- waking clients

# Clients living in this process, by device: a write for one of them pokes it directly.
_local_clients: dict[int, SandboxClient] = {}


def _wake_sync(device_ids) -> None:
    """From sync code (any thread but a client's loop thread): make the devices' clients pick up their deliveries."""
    from messaging import gateway

    for device_id in dict.fromkeys(device_ids):
        client = _local_clients.get(device_id)
        if client is not None and client._loop is not None and client._loop.is_running():
            asyncio.run_coroutine_threadsafe(client.poke(), client._loop)
            continue
        try:
            gateway.run_sync(
                lambda device_id=device_id: gateway.notify_worker(device_id, {"type": "worker.poke"}),
                timeout=5,
            )
        except Exception:  # the worker also picks deliveries up when it (re)starts the client
            logger.warning("could not poke the worker of device %s", device_id, exc_info=True)


async def _wake(device_ids) -> None:
    from messaging import gateway

    loop = asyncio.get_running_loop()
    for device_id in dict.fromkeys(device_ids):
        client = _local_clients.get(device_id)
        if client is not None and client._loop is loop:
            await client.poke()
        elif client is not None and client._loop is not None and client._loop.is_running():
            asyncio.run_coroutine_threadsafe(client.poke(), client._loop)
        else:
            try:
                await gateway.notify_worker(device_id, {"type": "worker.poke"})
            except Exception:
                logger.warning("could not poke the worker of device %s", device_id, exc_info=True)


# ---------------------------------------------------------------------------------------------- the actor


class _Actor:
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

    # -- plumbing

    def account(self):
        from messaging.models import SandboxAccount

        account = SandboxAccount.objects.filter(phone=self.phone).first()
        if account is None:
            raise NotFound(f"{self.phone} is not on the simulated WhatsApp network.")
        return account

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
                .only(*_PLAN_FIELDS, "push_name")
                .order_by()
            }
            self._accounts.update({phone: found.get(phone) for phone in missing})
        return {phone: self._accounts[phone] for phone in phones if self._accounts[phone] is not None}

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
            data = wire.encode(p.MessageEvent(message=make(chat, from_me)))
            rows += [SandboxDelivery(device_id=i, event={**data, "device_id": i}) for i in ids]
            self.wake.extend(ids)
        SandboxDelivery.objects.bulk_create(rows)

    def _group(self, jid: str, *, member: bool = True):
        from messaging.models import SandboxGroup

        jid = _jid(jid)
        if not p.is_group(jid):
            raise InvalidRequest(f"jid: {jid} is not a group (group IDs end in @g.us)")
        group = SandboxGroup.objects.filter(jid=jid).first()
        if group is None:
            raise NotFound(f"There is no group {jid}.")
        if member and self.jid not in group.participants:
            raise Forbidden(f"You are not a participant of {group.name}.")
        return group

    def _is_admin(self, group) -> bool:
        return group.participants.get(self.jid) in (ADMIN, SUPERADMIN)

    def _require_admin(self, group, what: str) -> None:
        if not self._is_admin(group):
            raise Forbidden(f"Only group admins can {what}.")

    def _group_event(self, group, change: p.GroupChange, *, also: list[str] = (), **fields) -> None:
        event = p.GroupChangedEvent(group=group.jid, change=change, actor=self.jid, timestamp=now(), **fields)
        phones = [p.jid_user(j) for j in [*group.participants, *also]]
        self._deliver(phones, event, include_self=True)

    def _message(self, chat: str, message_id: str):
        """The message `message_id` in `chat` as this account sees the chat, or NotFound."""
        from messaging.models import SandboxMessage

        chat = _jid(chat, field="chat")
        if not message_id:
            raise InvalidRequest("message_id: is required")
        rows = SandboxMessage.objects.filter(msg_id=message_id)
        if p.is_group(chat) or chat.endswith("@" + p.NEWSLETTER_SERVER):
            rows = rows.filter(to=chat)
        else:
            rows = rows.filter(sender=self.jid, to=chat) | rows.filter(sender=chat, to=self.jid)
        row = rows.first()
        if row is None:
            raise NotFound(f"There is no message {message_id} in {chat}.")
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
        """Store and deliver; returns the result and which simulated peers should answer (for the client)."""
        from messaging.models import SandboxAccount, SandboxMedia, SandboxMessage, SandboxNewsletter

        if not message.id:
            raise InvalidRequest("id: a message ID is required")
        to = _jid(message.to, field="to")
        try:
            kind = MessageKind(message.kind)
        except ValueError:
            raise InvalidRequest(f"kind: {message.kind!r} is not a message kind") from None
        # The same ID again (a retry after a crash) is found by the unique (sender, msg_id) when it is stored:
        # WhatsApp drops the duplicate and answers as it did the first time.
        _validate_outgoing(message, kind)

        plan: list[dict] = []
        name = None  # the sender's push name, when read with the recipient
        if p.is_group(to):
            group = self._group(to)
            if group.announce and not self._is_admin(group):
                raise Forbidden(f"Only admins can send messages to {group.name}.")
            members = SandboxAccount.objects.filter(
                phone__in=[p.jid_user(j) for j in group.participants if j != self.jid], registered=True
            ).only(*_PLAN_FIELDS)
            plan = [_answer_plan(a, behavior="") for a in members.order_by("id")]
        elif to.endswith("@" + p.NEWSLETTER_SERVER):
            news = SandboxNewsletter.objects.filter(jid=to).first()
            if news is None:
                raise NotFound(f"There is no newsletter {to}.")
            raise Forbidden(f"Only the admins of {news.name} can post to it.")
        else:
            # The recipient and the sender (for the name its message carries) in one query.
            accounts = self._accounts_of({p.jid_user(to), self.phone})
            account = accounts.get(p.jid_user(to))
            if account is None or not account.registered:
                raise NotFound(f"{p.jid_user(to)} is not on WhatsApp.")
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
        stamp = now()
        try:
            with transaction.atomic():
                row = SandboxMessage.objects.create(
                    msg_id=message.id,
                    sender=self.jid,
                    to=to,
                    kind=str(kind),
                    text=message.text,
                    caption=message.caption,
                    data=data,
                    timestamp=stamp,
                )
        except IntegrityError:  # sent before (or concurrently) with the same ID: the first one counts
            row = SandboxMessage.objects.get(sender=self.jid, msg_id=message.id)
            return SendResult(id=row.msg_id, timestamp=row.timestamp), []
        if name is None:
            name = self._sender_name()
        self._fan(to, lambda chat, from_me: _incoming(row, chat=chat, from_me=from_me, sender_name=name))
        return SendResult(id=row.msg_id, timestamp=row.timestamp), plan

    def react(self, *, chat: str, message_id: str, emoji: str) -> SendResult:
        row = self._message(chat, message_id)
        if row.revoked:
            raise InvalidRequest("This message was deleted; it cannot be reacted to.")
        if len(emoji) > 16 or (emoji and not any(ord(c) > 0x2000 for c in emoji)):
            raise InvalidRequest("emoji: a reaction is one emoji (or empty to remove it)")
        self._check_can_post(row)
        reactions = dict(row.reactions)
        if emoji:
            reactions[self.jid] = emoji
        else:
            reactions.pop(self.jid, None)
        row.reactions = reactions
        row.save(update_fields=["reactions"])
        rid, stamp = p.generate_message_id(), now()
        name = self._sender_name()
        self._fan(
            self._chat_of(row),
            lambda c, me: IncomingMessage(
                id=rid,
                chat=c,
                sender=self.jid,
                sender_name=name,
                from_me=me,
                timestamp=stamp,
                kind=MessageKind.REACTION,
                target_id=row.msg_id,
                reaction=emoji,
            ),
        )
        return SendResult(id=rid, timestamp=stamp)

    def _check_can_post(self, row) -> None:
        from messaging.models import SandboxGroup

        if p.is_group(row.to):
            group = SandboxGroup.objects.filter(jid=row.to).first()
            if group is None or self.jid not in group.participants:
                raise Forbidden("You are no longer a participant of this group.")

    def edit(self, *, chat: str, message_id: str, text: str) -> SendResult:
        row = self._message(chat, message_id)
        if row.sender != self.jid:
            raise Forbidden("Only your own messages can be edited.")
        if row.revoked:
            raise InvalidRequest("This message was deleted; it cannot be edited.")
        if row.kind not in ("text", "link", "image", "video", "document"):
            raise InvalidRequest(f"A {row.kind} message cannot be edited.")
        text = (text or "").strip()
        if not text:
            raise InvalidRequest("text: the new text is required")
        stamp = now()
        if stamp - row.timestamp > EDIT_WINDOW:
            raise Forbidden("A message can only be edited within 15 minutes of sending it.")
        if row.kind in ("text", "link"):
            row.text = text
        else:
            row.caption = text
        row.edited_at = stamp
        row.save(update_fields=["text", "caption", "edited_at"])
        eid = p.generate_message_id()
        name = self._sender_name()
        self._fan(
            self._chat_of(row),
            lambda c, me: IncomingMessage(
                id=eid,
                chat=c,
                sender=self.jid,
                sender_name=name,
                from_me=me,
                timestamp=stamp,
                kind=MessageKind.EDIT,
                text=text,
                target_id=row.msg_id,
            ),
        )
        return SendResult(id=eid, timestamp=stamp)

    def revoke(self, *, chat: str, message_id: str) -> SendResult:
        from messaging.models import SandboxGroup

        row = self._message(chat, message_id)
        if row.sender != self.jid:
            group = SandboxGroup.objects.filter(jid=row.to).first() if p.is_group(row.to) else None
            if group is None or not self._is_admin(group):
                raise Forbidden(
                    "Only your own messages can be deleted for everyone (or any message, by a group admin)."
                )
        stamp = now()
        if stamp - row.timestamp > REVOKE_WINDOW:
            raise Forbidden("This message is too old to be deleted for everyone.")
        if not row.revoked:
            row.revoked = True
            row.save(update_fields=["revoked"])
        rid = p.generate_message_id()
        name = self._sender_name()
        self._fan(
            self._chat_of(row),
            lambda c, me: IncomingMessage(
                id=rid,
                chat=c,
                sender=self.jid,
                sender_name=name,
                from_me=me,
                timestamp=stamp,
                kind=MessageKind.REVOKE,
                target_id=row.msg_id,
            ),
        )
        return SendResult(id=rid, timestamp=stamp)

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
            raise InvalidRequest("message_ids: at least one message ID is required")
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
            raise InvalidRequest("image: a JPEG or PNG picture is required")
        account = self.account()
        account.picture = bytes(image)
        account.picture_id = str(int(now() * 1000))
        account.save(update_fields=["picture", "picture_id"])
        return account.picture_id

    def set_push_name(self, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise InvalidRequest("name: a push name is required")
        if len(name) > PUSH_NAME_MAX:
            raise InvalidRequest(f"name: at most {PUSH_NAME_MAX} characters")
        from messaging.models import SandboxSession

        account = self.account()
        account.push_name = name
        account.save(update_fields=["push_name"])
        SandboxSession.objects.filter(phone=self.phone).update(push_name=name)

    # -- groups

    def create_group(self, *, name: str, participants: list[str]) -> GroupInfo:
        from messaging.models import SandboxAccount, SandboxGroup

        name = (name or "").strip()
        if not name:
            raise InvalidRequest("name: a group name is required")
        if len(name) > GROUP_NAME_MAX:
            raise InvalidRequest(f"name: at most {GROUP_NAME_MAX} characters")
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
        self._require_admin(group, f"{action} participants")
        if not participants:
            raise InvalidRequest("participants: at least one participant is required")
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
        self._require_admin(group, "see or reset the invite link")
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
            raise NotFound("This invite link is not valid (it was reset, or never existed).")
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
        self._require_admin(group, "see join requests")
        return [
            JoinRequest(jid=j, requested_at=t)
            for j, t in sorted(group.join_requests.items(), key=lambda kv: kv[1])
        ]

    def answer_join_requests(
        self, *, jid: str, participants: list[str], approve: bool
    ) -> list[ParticipantResult]:
        group = self._group(jid)
        self._require_admin(group, "answer join requests")
        if not participants:
            raise InvalidRequest("participants: at least one participant is required")
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
            raise NotFound(f"There is no group {jid}.")
        if self.jid not in group.participants:
            raise NotFound(f"You are not a participant of {group.name}.")
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
            raise Forbidden(f"Only admins can {what} of {group.name} (the group is locked).")
        return group

    def set_group_name(self, *, jid: str, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise InvalidRequest("name: a group name is required")
        if len(name) > GROUP_NAME_MAX:
            raise InvalidRequest(f"name: at most {GROUP_NAME_MAX} characters")
        group = self._edit_info(jid, "change the name")
        group.name = name
        group.save(update_fields=["name"])
        self._group_event(group, p.GroupChange.SUBJECT, name=name)

    def set_group_topic(self, *, jid: str, topic: str) -> None:
        topic = topic or ""
        if len(topic) > GROUP_TOPIC_MAX:
            raise InvalidRequest(f"topic: at most {GROUP_TOPIC_MAX} characters")
        group = self._edit_info(jid, "change the description")
        group.topic = topic
        group.save(update_fields=["topic"])
        self._group_event(group, p.GroupChange.SUBJECT, topic=topic)

    def set_group_photo(self, *, jid: str, image: bytes) -> str:
        if not image or not _is_image(bytes(image)):
            raise InvalidRequest("image: a JPEG or PNG picture is required")
        group = self._edit_info(jid, "change the photo")
        group.picture = bytes(image)
        group.picture_id = str(int(now() * 1000))
        group.save(update_fields=["picture", "picture_id"])
        self._group_event(group, p.GroupChange.SETTINGS)
        return group.picture_id

    def set_group_locked(self, *, jid: str, locked: bool) -> None:
        group = self._group(jid)
        self._require_admin(group, "lock or unlock the group info")
        group.locked = bool(locked)
        group.save(update_fields=["locked"])
        self._group_event(group, p.GroupChange.SETTINGS, locked=group.locked)

    def set_group_announce(self, *, jid: str, announce: bool) -> None:
        group = self._group(jid)
        self._require_admin(group, "choose who may send messages")
        group.announce = bool(announce)
        group.save(update_fields=["announce"])
        self._group_event(group, p.GroupChange.SETTINGS, announce=group.announce)

    # -- newsletters

    def unfollow_newsletter(self, *, jid: str) -> None:
        from messaging.models import SandboxNewsletter

        jid = _jid(jid)
        news = SandboxNewsletter.objects.filter(jid=jid).first()
        if news is None:
            raise NotFound(f"There is no newsletter {jid}.")
        if self.jid not in news.followers:
            raise NotFound(f"You do not follow {news.name}.")
        news.followers = [f for f in news.followers if f != self.jid]
        news.subscribers = max(news.subscribers - 1, 0)
        news.save(update_fields=["followers", "subscribers"])

    def follow_newsletter(self, *, jid: str) -> None:
        from messaging.models import SandboxNewsletter

        jid = _jid(jid)
        news = SandboxNewsletter.objects.filter(jid=jid).first()
        if news is None:
            raise NotFound(f"There is no newsletter {jid}.")
        if self.jid not in news.followers:
            news.followers = [*news.followers, self.jid]
            news.subscribers += 1
            news.save(update_fields=["followers", "subscribers"])


# What `_answer_plan` reads of an account (not its picture, contacts or business profile).
_PLAN_FIELDS = ("phone", "kind", "behavior", "registered", "privacy")


def _answer_plan(account, *, behavior: str) -> dict:
    """What a recipient's phone does with a message: it always confirms delivery; a simulated peer also
    reads it (unless its privacy hides read receipts) and answers by its behaviour. A phone that links our
    devices is a person's: it reads when that device marks the message read."""
    peer = account.kind == "peer"
    return {
        "phone": account.phone,
        "behavior": behavior if peer else "",
        "reads": peer and account.privacy.get("read_receipts") != "none",
    }


def _default_mime(kind) -> str:
    return {
        MessageKind.IMAGE: "image/jpeg",
        MessageKind.AUDIO: "audio/ogg; codecs=opus",
        MessageKind.VIDEO: "video/mp4",
        MessageKind.DOCUMENT: "application/octet-stream",
        MessageKind.STICKER: "image/webp",
    }.get(kind, "application/octet-stream")


def _validate_outgoing(m: OutgoingMessage, kind: MessageKind) -> None:
    if kind == MessageKind.TEXT:
        if not (m.text or "").strip():
            raise InvalidRequest("text: a message needs text")
        if len(m.text) > 65536:
            raise InvalidRequest("text: at most 65536 characters")
    elif kind == MessageKind.LINK:
        if not re.match(r"^https?://\S+$", (m.text or "").strip()):
            raise InvalidRequest("link: an http(s) link is required")
    elif kind in p.MEDIA_KINDS:
        if not m.media:
            raise InvalidRequest(f"{kind}: the file is empty or missing")
        if m.view_once and kind not in (MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO):
            raise InvalidRequest("view_once: only images, videos and voice messages can be viewed once")
    elif kind == MessageKind.CONTACT:
        if not m.contact_name.strip() or not re.sub(r"\D", "", m.contact_phone or ""):
            raise InvalidRequest("contact: a name and a phone number are required")
    elif kind == MessageKind.LOCATION:
        if (
            m.latitude is None
            or m.longitude is None
            or not (-90 <= m.latitude <= 90)
            or not (-180 <= m.longitude <= 180)
        ):
            raise InvalidRequest("location: latitude (-90..90) and longitude (-180..180) are required")
    elif kind == MessageKind.POLL:
        options = [o.strip() for o in m.poll_options]
        if not m.poll_question.strip():
            raise InvalidRequest("question: a poll needs a question")
        if not 2 <= len(options) <= 12 or any(not o for o in options) or len(set(options)) != len(options):
            raise InvalidRequest("options: a poll needs 2 to 12 different options")
        if not 1 <= m.poll_max_answer <= len(options):
            raise InvalidRequest("max_answer: between 1 and the number of options")
    else:
        raise InvalidRequest(f"kind: {kind} messages cannot be sent")


def _incoming(row, *, chat: str, from_me: bool, sender_name: str = "") -> IncomingMessage:
    data = row.data or {}
    media = None
    if "media" in data:
        m = data["media"]
        media = MediaInfo(
            mime_type=m["mime_type"],
            size=m["size"],
            filename=m.get("filename", ""),
            sha256=m.get("sha256", ""),
            ref=dict(m["ref"]),
        )
    return IncomingMessage(
        id=row.msg_id,
        chat=chat,
        sender=row.sender,
        sender_name=sender_name,
        from_me=from_me,
        timestamp=row.timestamp,
        kind=MessageKind(row.kind),
        text=row.text,
        caption=row.caption,
        media=media,
        view_once=bool(data.get("view_once")),
        is_forwarded=bool(data.get("is_forwarded")),
        reply_to_id=data.get("reply_to_id", ""),
        quoted_body=data.get("quoted_body", ""),
        latitude=data.get("latitude"),
        longitude=data.get("longitude"),
        contact_name=data.get("contact_name", ""),
        contact_vcard=data.get("contact_vcard", ""),
        poll_question=data.get("poll_question", ""),
        poll_options=list(data.get("poll_options", [])),
    )


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


# ---------------------------------------------------------------------------------------------- reads (sync)


def _user_info(jids: list[str]) -> list[UserInfo]:
    from messaging.models import SandboxAccount, SandboxSession

    out = []
    for value in jids or []:
        jid = _jid(value, field="jids")
        account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
        if account is None:
            continue
        sessions = SandboxSession.objects.filter(phone=account.phone).count()
        out.append(
            UserInfo(
                jid=account.jid,
                status="" if account.privacy.get("status") == "none" else account.about,
                picture_id="" if account.privacy.get("profile") == "none" else account.picture_id,
                devices=[
                    f"{account.phone}:{i}@{p.USER_SERVER}" if i else account.jid for i in range(sessions + 1)
                ],
                verified_name=account.verified_name,
            )
        )
    return out


def avatar_bytes(jid: str, *, preview: bool = False) -> bytes | None:
    """The picture of an account or group (PNG unless one was set), or None if hidden or unknown."""
    from messaging.models import SandboxAccount, SandboxGroup

    jid = _jid(jid)
    if p.is_group(jid):
        group = SandboxGroup.objects.filter(jid=jid).first()
        if group is None:
            return None
        return (
            bytes(group.picture)
            if group.picture
            else identicon(f"{group.jid}:{group.picture_id}", 32 if preview else 96)
        )
    account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
    if account is None or account.privacy.get("profile") == "none":
        return None
    return (
        bytes(account.picture)
        if account.picture
        else identicon(f"{account.jid}:{account.picture_id}", 32 if preview else 96)
    )


def _avatar(jid: str, preview: bool) -> Avatar | None:
    from messaging.models import SandboxAccount, SandboxGroup

    jid = _jid(jid)
    if p.is_group(jid):
        if not SandboxGroup.objects.filter(jid=jid).exists():
            raise NotFound(f"There is no group {jid}.")
        picture_id = SandboxGroup.objects.filter(jid=jid).values_list("picture_id", flat=True).first()
    else:
        account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
        if account is None:
            raise NotFound(f"{p.jid_user(jid)} is not on WhatsApp.")
        picture_id = account.picture_id
    data = avatar_bytes(jid, preview=preview)
    if data is None:
        return None
    mime = "image/jpeg" if data.startswith(b"\xff\xd8") else "image/png"
    return Avatar(
        url=_data_url(data, mime),
        id=picture_id,
        type="preview" if preview else "image",
        direct_path=f"/sandbox/avatar/{jid}/{picture_id}",
    )


def _contacts(phone: str) -> list[ContactInfo]:
    from messaging.models import SandboxAccount

    account = SandboxAccount.objects.filter(phone=phone).first()
    if account is None:
        return []
    found = {
        a.jid: a for a in SandboxAccount.objects.filter(phone__in=[p.jid_user(j) for j in account.contacts])
    }
    out = []
    for jid in account.contacts:
        c = found.get(jid)
        if c is None:
            continue
        out.append(
            ContactInfo(
                jid=jid,
                first_name=c.push_name.split(" ")[0],
                full_name=c.push_name,
                push_name=c.push_name,
                business_name=c.verified_name,
            )
        )
    return out


def _check_numbers(phones: list[str]) -> list[OnWhatsApp]:
    from messaging.models import SandboxAccount

    if not phones:
        raise InvalidRequest("phones: at least one number is required")
    out = []
    for query in phones:
        try:
            phone = p.normalize_phone(query)
        except ValueError:
            out.append(OnWhatsApp(query=query, jid="", is_in=False))
            continue
        account = SandboxAccount.objects.filter(phone=phone, registered=True).first()
        out.append(
            OnWhatsApp(
                query=query,
                jid=_user_jid(phone),
                is_in=account is not None,
                verified_name=account.verified_name if account else "",
            )
        )
    return out


def _business_profile(jid: str) -> BusinessProfile:
    from messaging.models import SandboxAccount

    jid = _jid(jid)
    account = SandboxAccount.objects.filter(phone=p.jid_user(jid), registered=True).first()
    if account is None:
        raise NotFound(f"{p.jid_user(jid)} is not on WhatsApp.")
    if not account.business:
        raise NotFound(f"{p.jid_user(jid)} is not a business account.")
    b = account.business
    return BusinessProfile(
        jid=account.jid,
        email=b.get("email", ""),
        address=b.get("address", ""),
        description=b.get("description", ""),
        website=list(b.get("website", [])),
        categories=list(b.get("categories", [])),
    )


def _newsletters(jid: str) -> list[Newsletter]:
    from messaging.models import SandboxNewsletter

    return [
        Newsletter(
            jid=n.jid, name=n.name, description=n.description, subscribers=n.subscribers, role="subscriber"
        )
        for n in SandboxNewsletter.objects.order_by("id")
        if jid in n.followers
    ]


def _download(ref: dict) -> bytes:
    from messaging.models import SandboxMedia

    token = (ref or {}).get("sandbox") if isinstance(ref, dict) else None
    if not token:
        raise InvalidRequest("ref: not a sandbox media reference")
    row = SandboxMedia.objects.filter(token=token).first()
    if row is None:
        raise NotFound("This media is no longer available.")
    return bytes(row.data)


# ---------------------------------------------------------------------------------------------- linking (sync)


def _link(device_id: int, phone: str) -> dict:
    from messaging.models import SandboxSession

    if SandboxSession.objects.filter(device_id=device_id).exists():
        raise InvalidRequest("This device is already linked.")
    account = _phone_account(phone)
    SandboxSession.objects.create(device_id=device_id, phone=account.phone, push_name=account.push_name)
    return {
        "device_id": device_id,
        "jid": account.jid,
        "phone": account.phone,
        "push_name": account.push_name,
    }


def phone_scan(*, qr_code: str, phone: str | None = None) -> dict:
    """A simulated phone scans a device's QR code: links the device to `phone` (a new number if None).

    Sync, any process. Raises InvalidRequest for an unknown, used or expired code. Returns
    {"device_id", "jid", "phone", "push_name"}; the device's client then emits PairedEvent and ConnectedEvent.
    """
    from messaging.models import SandboxLinkCode

    _network()
    phone = _phone(phone) if phone else fresh_phone()
    with transaction.atomic():
        code = (
            SandboxLinkCode.objects.select_for_update()
            .filter(kind="qr", code=(qr_code or "").strip())
            .first()
        )
        if code is None or code.used_at is not None:
            raise InvalidRequest("This QR code is not valid; scan the code the device shows now.")
        if code.expires_at <= now():
            raise InvalidRequest("This QR code has expired; scan the new one.")
        result = _link(code.device_id, phone)
        SandboxLinkCode.objects.filter(device_id=code.device_id).update(used_at=now())
    _wake_sync([code.device_id])
    return result


def phone_enter_code(*, phone: str, code: str) -> dict:
    """The simulated phone `phone` enters a pairing code: works only on the number the code was asked for."""
    from messaging.models import SandboxLinkCode

    _network()
    phone = _phone(phone)
    typed = re.sub(r"[^A-Z0-9]", "", (code or "").upper())
    if len(typed) != 8:
        raise InvalidRequest("code: a pairing code has 8 letters and digits (like ABCD-EFGH)")
    formatted = f"{typed[:4]}-{typed[4:]}"
    with transaction.atomic():
        row = (
            SandboxLinkCode.objects.select_for_update()
            .filter(kind="pair", code=formatted, used_at__isnull=True)
            .first()
        )
        if row is None:
            raise NotFound("This pairing code is not valid; request a new one.")
        if row.expires_at <= now():
            raise InvalidRequest("This pairing code has expired; request a new one.")
        if row.phone != phone:
            raise Forbidden("This code was requested for another phone number.")
        result = _link(row.device_id, phone)
        SandboxLinkCode.objects.filter(device_id=row.device_id).update(used_at=now())
    _wake_sync([row.device_id])
    return result


def phone_unlink(*, device_id: int) -> None:
    """The phone removes the linked device (Settings > Linked devices > Log out): the device is logged out."""
    from messaging.models import SandboxSession

    if not SandboxSession.objects.filter(device_id=device_id).delete()[0]:
        raise NotFound("This device is not linked.")
    _wake_sync([device_id])


def store_session(*, device_id: int, phone: str, push_name: str = "") -> dict:
    """Record a device as linked to `phone` without a scan (the demo): its client connects at start."""
    from messaging.models import SandboxSession

    _network()
    phone = _phone(phone)
    account = _phone_account(phone, push_name)
    session, _ = SandboxSession.objects.update_or_create(
        device_id=device_id, defaults=dict(phone=account.phone, push_name=account.push_name, announced=True)
    )
    return {
        "device_id": device_id,
        "jid": account.jid,
        "phone": account.phone,
        "push_name": account.push_name,
    }


# ---------------------------------------------------------------------------------------------- peers (sync helpers)


def _peer(phone: str) -> _Actor:
    _network()
    actor = _Actor(_phone(phone, field="from_phone"))
    actor.account()  # must exist
    return actor


def peer_send(*, from_phone: str, to_jid: str, text: str = "", kind: str = "text", **extra) -> str:
    """A simulated account sends a message (text, image, audio, video, document, sticker, location, contact,
    poll, link) to `to_jid` (a device's number or a group); the devices concerned receive it. Returns its ID.

    extra: caption, media (bytes; generated if absent), mime_type, filename, reply_to_id, quoted_body,
    latitude, longitude, contact_name, contact_phone, poll_question, poll_options, view_once, is_forwarded, id.
    """
    actor = _peer(from_phone)
    try:
        kind = MessageKind(kind)
    except ValueError:
        raise InvalidRequest(f"kind: {kind!r} is not a message kind") from None
    message = _outgoing_from(actor, to_jid, text, kind, extra)
    result, _ = actor.send(message)
    _wake_sync(actor.wake)
    return result.id


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


def peer_react(*, from_phone: str, chat: str, message_id: str, emoji: str = "👍") -> str:
    """A simulated account reacts to a message in its chat `chat` (the device's number, or a group)."""
    actor = _peer(from_phone)
    result = actor.react(chat=chat, message_id=message_id, emoji=emoji)
    _wake_sync(actor.wake)
    return result.id


def peer_edit(*, from_phone: str, chat: str, message_id: str, text: str) -> str:
    actor = _peer(from_phone)
    result = actor.edit(chat=chat, message_id=message_id, text=text)
    _wake_sync(actor.wake)
    return result.id


def peer_revoke(*, from_phone: str, chat: str, message_id: str) -> str:
    actor = _peer(from_phone)
    result = actor.revoke(chat=chat, message_id=message_id)
    _wake_sync(actor.wake)
    return result.id


def peer_read(*, from_phone: str, chat: str, message_ids: list[str] | None = None) -> list[str]:
    """A simulated account reads messages sent to it in `chat` (all unread ones if no IDs are given)."""
    from messaging.models import SandboxMessage

    actor = _peer(from_phone)
    chat = _jid(chat, field="chat")
    if message_ids is None:
        rows = SandboxMessage.objects.filter(to=chat if p.is_group(chat) else actor.jid)
        if not p.is_group(chat):
            rows = rows.filter(sender=chat)
        message_ids = [
            r.msg_id for r in rows.exclude(sender=actor.jid).order_by("id") if actor.jid not in r.read_by
        ]
        if not message_ids:
            return []
    actor.mark_read(chat=chat, message_ids=message_ids)
    _wake_sync(actor.wake)
    return list(message_ids)


def peer_typing(*, from_phone: str, chat: str, composing: bool = True, media: str = "") -> None:
    actor = _peer(from_phone)
    state = ChatPresenceState.COMPOSING if composing else ChatPresenceState.PAUSED
    actor.chat_presence(chat=chat, state=state, media=media)
    _wake_sync(actor.wake)


def peer_presence(*, from_phone: str, available: bool = True) -> None:
    """A simulated account comes online or goes offline; devices that have it as a contact are told."""
    from messaging.models import SandboxAccount

    actor = _peer(from_phone)
    actor.set_presence(Presence.AVAILABLE if available else Presence.UNAVAILABLE)
    watchers = [a.phone for a in SandboxAccount.objects.exclude(phone=actor.phone) if actor.jid in a.contacts]
    stamp = now()
    actor._deliver(
        list(watchers),
        p.PresenceEvent(jid=actor.jid, available=available, last_seen=None if available else stamp),
    )
    _wake_sync(actor.wake)


def peer_join_request(*, from_phone: str, group: str) -> str:
    """A simulated account follows a group's invite link (`group`: the group JID or its link/code).

    Where admins approve joins it asks (JoinRequestEvent to the admins), else it joins. Returns the group JID.
    """
    from messaging.models import SandboxGroup

    actor = _peer(from_phone)
    if "@" in group:
        row = SandboxGroup.objects.filter(jid=_jid(group)).first()
        if row is None:
            raise NotFound(f"There is no group {group}.")
        group = row.invite_code
    jid = actor.join_with_link(group)
    _wake_sync(actor.wake)
    return jid


def peer_create_group(*, owner_phone: str, name: str, participants: list[str]) -> str:
    """A simulated account creates a group (the device's number may be among `participants`); returns its JID."""
    actor = _peer(owner_phone)
    info = actor.create_group(name=name, participants=participants)
    _wake_sync(actor.wake)
    return info.jid


def peer_group_action(
    *, from_phone: str, group: str, participants: list[str], action: str
) -> list[ParticipantResult]:
    """A simulated admin adds/removes/promotes/demotes participants (the same rules as for a device)."""
    actor = _peer(from_phone)
    results = actor.update_participants(
        jid=group, participants=participants, action=ParticipantAction(action)
    )
    _wake_sync(actor.wake)
    return results


def add_group_member(*, group: str, phone: str, admin: bool = False) -> None:
    """Put `phone` into `group` directly (setting up demos and tests, not a WhatsApp action)."""
    from messaging.models import SandboxGroup

    _network()
    jid = _user_jid(_phone(phone))
    row = SandboxGroup.objects.filter(jid=_jid(group)).first()
    if row is None:
        raise NotFound(f"There is no group {group}.")
    _phone_account(p.jid_user(jid))
    row.participants = {**row.participants, jid: ADMIN if admin else MEMBER}
    row.save(update_fields=["participants"])


def set_join_approval(*, group: str, approval: bool = True) -> None:
    """Turn "admins approve new participants" on or off for a group (not a protocol operation of ours)."""
    from messaging.models import SandboxGroup

    _network()
    if not SandboxGroup.objects.filter(jid=_jid(group)).update(join_approval=bool(approval)):
        raise NotFound(f"There is no group {group}.")


def follow_newsletter(*, phone: str, jid: str) -> None:
    _network()
    actor = _Actor(_phone(phone))
    _phone_account(actor.phone)
    actor.follow_newsletter(jid=jid)


def set_privacy(*, phone: str, **settings_) -> dict:
    """Change an account's privacy settings (keys of PrivacySettings; values all / contacts / none)."""
    actor = _peer(phone)
    account = actor.account()
    unknown = set(settings_) - set(DEFAULT_PRIVACY)
    if unknown:
        raise InvalidRequest(f"unknown privacy settings: {', '.join(sorted(unknown))}")
    account.privacy = {**DEFAULT_PRIVACY, **account.privacy, **settings_}
    account.save(update_fields=["privacy"])
    return account.privacy


def sent_to(phone: str) -> list[dict]:
    """Messages the account `phone` received (direct, and in its groups), oldest first, each once."""
    from messaging.models import SandboxGroup, SandboxMessage

    jid = _user_jid(_phone(phone))
    groups = [g.jid for g in SandboxGroup.objects.all() if jid in g.participants]
    rows = (
        SandboxMessage.objects.filter(to__in=[jid, *groups]).exclude(sender=jid).order_by("timestamp", "id")
    )
    return [_row_dict(r) for r in rows]


def received_by(phone: str) -> list[dict]:
    """Alias of `sent_to`: what the account received."""
    return sent_to(phone)


def sent_by(phone: str) -> list[dict]:
    from messaging.models import SandboxMessage

    jid = _user_jid(_phone(phone))
    return [_row_dict(r) for r in SandboxMessage.objects.filter(sender=jid).order_by("timestamp", "id")]


def message_state(message_id: str) -> dict | None:
    """A message as the network holds it (reactions, starred_by, read_by, deleted_for, revoked, edited_at)."""
    from messaging.models import SandboxMessage

    row = SandboxMessage.objects.filter(msg_id=message_id).order_by("id").first()
    return _row_dict(row) if row else None


def group_state(jid: str) -> dict | None:
    from messaging.models import SandboxGroup

    row = SandboxGroup.objects.filter(jid=jid).first()
    if row is None:
        return None
    return {
        "jid": row.jid,
        "name": row.name,
        "topic": row.topic,
        "owner": row.owner,
        "locked": row.locked,
        "announce": row.announce,
        "join_approval": row.join_approval,
        "participants": dict(row.participants),
        "join_requests": dict(row.join_requests),
        "invite_link": INVITE_PREFIX + row.invite_code,
    }


def _row_dict(row) -> dict:
    return {
        "id": row.msg_id,
        "from": row.sender,
        "to": row.to,
        "kind": row.kind,
        "text": row.text,
        "caption": row.caption,
        "timestamp": row.timestamp,
        "media": (row.data or {}).get("media"),
        "data": row.data,
        "edited": row.edited_at is not None,
        "revoked": row.revoked,
        "reactions": dict(row.reactions),
        "starred_by": list(row.starred_by),
        "read_by": list(row.read_by),
        "deleted_for": list(row.deleted_for),
    }


# ---------------------------------------------------------------------------------------------- the client


class SandboxClient(p.WhatsAppClient):
    """A device's connection to the simulated network. Driven by the session worker holding its lease."""

    def __init__(self, *, device_id: int, jid: str | None, emit: p.EmitEvent):
        self.device_id = device_id
        self._emit_fn = emit
        self._phone: str | None = p.jid_user(jid) if jid else None
        self._connected = False
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._qr_task: asyncio.Task | None = None
        self._poke_lock = asyncio.Lock()
        # Receipts a peer is about to send, by (chat, peer, type): its message IDs and when they went out.
        self._receipt_batches: dict[tuple, tuple[list[str], asyncio.Future]] = {}

    # -- plumbing

    async def _emit(self, event: p.Event) -> None:
        event.device_id = self.device_id
        try:
            await self._emit_fn(event)
        except Exception:
            logger.exception("emitting %s for device %s failed", type(event).__name__, self.device_id)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("sandbox task of device %s failed", self.device_id, exc_info=task.exception())

    def _require_connected(self) -> str:
        if not self._connected or not self._phone:
            raise NotConnected("The device is not connected to WhatsApp.")
        return self._phone

    async def _act(self, method: str, *args, **kwargs):
        phone = self._require_connected()

        def run():
            actor = _Actor(phone, self.device_id)
            with transaction.atomic():
                result = getattr(actor, method)(*args, **kwargs)
            return result, actor.wake

        result, wake = await runtime.db(run)
        await _wake(wake)
        return result

    # -- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started = True
        _local_clients[self.device_id] = self
        await self._come_up()

    async def _come_up(self) -> None:
        """Log in with the stored session, or start linking (QR codes). Under the poke lock: a scan poking
        at the same moment cannot connect the device twice."""
        async with self._poke_lock:
            session = await runtime.db(_session_state, self.device_id)
            if session is not None:
                await self._connect(session)
            else:
                self._phone = None
                await self._start_qr()

    async def _start_qr(self) -> None:
        await self._emit_qr()
        self._qr_task = self._spawn(self._rotate_qr())

    async def _emit_qr(self) -> None:
        seconds = _qr_seconds()
        code = await runtime.db(_new_qr, self.device_id, seconds)
        await self._emit(p.QRCodeEvent(code=code, expires_in=seconds))

    async def _rotate_qr(self) -> None:
        while True:
            await asyncio.sleep(_qr_seconds())
            await self._emit_qr()

    def _stop_qr(self) -> None:
        if self._qr_task is not None:
            self._qr_task.cancel()
            self._qr_task = None

    async def _connect(self, session: dict) -> None:
        self._stop_qr()
        self._phone = session["phone"]
        if session["announce"]:
            await self._emit(
                p.PairedEvent(jid=session["jid"], push_name=session["push_name"], platform="sandbox")
            )
        self._connected = True
        await self._emit(p.ConnectedEvent(jid=session["jid"], push_name=session["push_name"]))
        await self._drain()

    async def stop(self) -> None:
        self._started = False
        self._connected = False
        self._stop_qr()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if _local_clients.get(self.device_id) is self:
            del _local_clients[self.device_id]

    async def poke(self) -> None:
        """Pick up what the network has for this device: a completed link, a logout from the phone, deliveries."""
        async with self._poke_lock:
            if not self._started:
                return
            session = await runtime.db(_session_state, self.device_id)
            if not self._connected:
                if session is not None:
                    await self._connect(session)
                return
            if session is None:  # unlinked from the phone
                self._connected = False
                self._phone = None
                await self._emit(p.LoggedOutEvent(reason="The device was logged out from the phone."))
                await self._cancel_tasks()
                return
            await self._drain()

    async def _drain(self) -> None:
        for data in await runtime.db(_take_deliveries, self.device_id):
            await self._emit(wire.decode(data))

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def pair_phone(self, *, phone: str) -> PairCode:
        phone = _phone(phone)
        if self._connected:
            raise InvalidRequest("This device is already linked; log out first to link another number.")
        if not self._started:
            raise NotConnected("The device's client is not running.")
        registered = await runtime.db(_is_registered_or_new, phone)
        if not registered:
            raise NotFound(f"{phone} is not on WhatsApp.")
        code = await runtime.db(_new_pair_code, self.device_id, phone)
        self._stop_qr()
        await self._emit(p.PairCodeEvent(code=code, expires_in=PAIR_CODE_SECONDS))
        return PairCode(code=code, expires_in=PAIR_CODE_SECONDS)

    async def logout(self) -> None:
        self._stop_qr()
        await self._cancel_tasks()
        self._connected = False
        self._phone = None
        await runtime.db(_forget_session, self.device_id)
        await self._emit(p.LoggedOutEvent(reason="Logged out."))

    async def reconnect(self) -> None:
        was_connected = self._connected
        self._stop_qr()
        await self._cancel_tasks()
        self._connected = False
        if was_connected:
            await self._emit(p.DisconnectedEvent(reason="Reconnecting.", will_reconnect=True))
        self._loop = asyncio.get_running_loop()
        self._started = True
        _local_clients[self.device_id] = self
        await self._come_up()

    def is_connected(self) -> bool:
        return self._connected

    # -- sending

    async def send(self, *, message: OutgoingMessage) -> SendResult:
        result, plan = await self._act("send", message)
        for peer in plan:
            self._spawn(self._peer_answers(peer, result.id, message))
        return result

    async def send_many(self, *, messages: list[OutgoingMessage]) -> list[SendResult | Exception]:
        """Several messages in one trip to the network: one transaction, the accounts and linked devices of
        their recipients read once. A refused message (its own savepoint) does not stop the others."""
        phone = self._require_connected()

        def run():
            actor = _Actor(phone, self.device_id)
            results: list = []
            with transaction.atomic():
                for message in messages:
                    try:
                        with transaction.atomic():
                            results.append(actor.send(message))
                    except p.WhatsAppError as exc:
                        results.append(exc)
            return results, actor.wake

        results, wake = await runtime.db(run)
        await _wake(wake)
        answered: list[SendResult | Exception] = []
        for message, outcome in zip(messages, results, strict=True):
            if isinstance(outcome, Exception):
                answered.append(outcome)
                continue
            result, plan = outcome
            for peer in plan:
                self._spawn(self._peer_answers(peer, result.id, message))
            answered.append(result)
        return answered

    async def _receipt(self, chat: str, peer_jid: str, kind: p.ReceiptType, message_id: str) -> None:
        """The peer's receipt of `kind` for a message; returns once it has been sent.

        As a phone does, the peer acknowledges what arrived together: the first message opens a batch that goes
        out WA_SANDBOX_DELAY later as one receipt naming every message that joined it meanwhile.
        """
        key = (chat, peer_jid, kind)
        batch = self._receipt_batches.get(key)
        if batch is None:
            batch = self._receipt_batches[key] = ([], asyncio.get_running_loop().create_future())
            self._spawn(self._send_receipts(key, batch))
        batch[0].append(message_id)
        await asyncio.shield(batch[1])

    async def _send_receipts(self, key: tuple, batch: tuple[list[str], asyncio.Future]) -> None:
        chat, peer_jid, kind = key
        message_ids, sent = batch
        try:
            await asyncio.sleep(_delay())
            if self._receipt_batches.get(key) is batch:
                del self._receipt_batches[key]  # later messages open the next batch
            stamp = await runtime.db(
                _receipt_time, list(message_ids), peer_jid, read=kind == p.ReceiptType.READ
            )
            await self._emit(
                p.ReceiptEvent(
                    chat=chat, sender=peer_jid, message_ids=list(message_ids), type=kind, timestamp=stamp
                )
            )
        finally:
            if self._receipt_batches.get(key) is batch:
                del self._receipt_batches[key]
            if not sent.done():
                sent.set_result(None)

    async def _peer_answers(self, peer: dict, message_id: str, message: OutgoingMessage) -> None:
        """What a simulated peer does with our message: receipts, then its behaviour. Cancelled on stop."""
        delay = _delay()
        peer_jid = _user_jid(peer["phone"])
        to = p.normalize_jid(message.to)
        chat = to if p.is_group(to) else peer_jid
        await self._receipt(chat, peer_jid, p.ReceiptType.DELIVERED, message_id)
        if peer["reads"]:
            await self._receipt(chat, peer_jid, p.ReceiptType.READ, message_id)
            if message.kind in (MessageKind.AUDIO, MessageKind.VIDEO):
                await self._emit(
                    p.ReceiptEvent(
                        chat=chat,
                        sender=peer_jid,
                        message_ids=[message_id],
                        type=p.ReceiptType.PLAYED,
                        timestamp=await runtime.db(now),
                    )
                )
        behavior = peer["behavior"]
        if behavior not in ("echo", "react", "media"):
            return
        await asyncio.sleep(delay)
        my_jid = _user_jid(self._phone or "0")
        if behavior == "echo":
            await self._emit(
                p.ChatPresenceEvent(chat=peer_jid, sender=peer_jid, state=ChatPresenceState.COMPOSING)
            )
            await asyncio.sleep(delay)
            body = (
                message.text
                if message.kind in (MessageKind.TEXT, MessageKind.LINK)
                else f"Got your {message.kind}"
            )
            extra = {"reply_to_id": message_id, "quoted_body": message.text or message.caption}
            await self._peer_act(
                peer["phone"],
                "send",
                _outgoing_from(_Actor(peer["phone"]), my_jid, f"Echo: {body}", MessageKind.TEXT, extra),
            )
        elif behavior == "react":
            emoji = _REACTIONS[int(hashlib.sha256(peer["phone"].encode()).hexdigest(), 16) % len(_REACTIONS)]
            await self._peer_act(peer["phone"], "react", chat=my_jid, message_id=message_id, emoji=emoji)
        elif behavior == "media":
            out = _outgoing_from(
                _Actor(peer["phone"]), my_jid, "", MessageKind.IMAGE, {"caption": "Here is a picture for you"}
            )
            await self._peer_act(peer["phone"], "send", out)

    async def _peer_act(self, phone: str, method: str, *args, **kwargs) -> None:
        def run():
            actor = _Actor(phone)
            with transaction.atomic():
                getattr(actor, method)(*args, **kwargs)
            return actor.wake

        try:
            wake = await runtime.db(run)
        except p.WhatsAppError as exc:  # e.g. we logged out meanwhile
            logger.info("simulated peer %s could not %s: %s", phone, method, exc)
            return
        await _wake(wake)

    async def send_presence(self, *, presence: Presence) -> None:
        await self._act("set_presence", Presence(presence))

    async def send_chat_presence(self, *, chat: str, state: ChatPresenceState, media: str = "") -> None:
        await self._act("chat_presence", chat=chat, state=ChatPresenceState(state), media=media)

    # -- acting on messages

    async def revoke(self, *, chat: str, message_id: str, sender: str) -> SendResult:
        return await self._act("revoke", chat=chat, message_id=message_id)

    async def delete_for_me(self, *, chat: str, message_id: str, sender: str, from_me: bool) -> None:
        await self._act("delete_for_me", chat=chat, message_id=message_id)

    async def react(self, *, chat: str, message_id: str, sender: str, emoji: str) -> SendResult:
        return await self._act("react", chat=chat, message_id=message_id, emoji=emoji)

    async def edit(self, *, chat: str, message_id: str, text: str) -> SendResult:
        return await self._act("edit", chat=chat, message_id=message_id, text=text)

    async def mark_read(self, *, chat: str, message_ids: list[str], sender: str) -> None:
        await self._act("mark_read", chat=chat, message_ids=list(message_ids))

    async def star(self, *, chat: str, message_id: str, sender: str, from_me: bool, starred: bool) -> None:
        await self._act("star", chat=chat, message_id=message_id, starred=starred)

    async def download_media(self, *, ref: dict) -> bytes:
        self._require_connected()
        return await runtime.db(_download, ref)

    # -- users and profile

    async def user_info(self, *, jids: list[str]) -> list[UserInfo]:
        self._require_connected()
        return await runtime.db(_user_info, jids)

    async def avatar(self, *, jid: str, preview: bool = False, community: bool = False) -> Avatar | None:
        self._require_connected()
        return await runtime.db(_avatar, jid, preview)

    async def set_avatar(self, *, image: bytes) -> str:
        return await self._act("set_avatar", image)

    async def set_push_name(self, *, name: str) -> None:
        await self._act("set_push_name", name)

    async def privacy(self) -> PrivacySettings:
        phone = self._require_connected()
        data = await runtime.db(_privacy_of, phone)
        return PrivacySettings(**{k: data.get(k, "") for k in DEFAULT_PRIVACY})

    async def contacts(self) -> list[ContactInfo]:
        phone = self._require_connected()
        return await runtime.db(_contacts, phone)

    async def check_numbers(self, *, phones: list[str]) -> list[OnWhatsApp]:
        self._require_connected()
        return await runtime.db(_check_numbers, list(phones))

    async def business_profile(self, *, jid: str) -> BusinessProfile:
        self._require_connected()
        return await runtime.db(_business_profile, jid)

    # -- groups

    async def joined_groups(self) -> list[GroupInfo]:
        phone = self._require_connected()
        return await runtime.db(_joined_groups, _user_jid(phone))

    async def group_info(self, *, jid: str) -> GroupInfo:
        phone = self._require_connected()

        def run():
            return _group_info(_Actor(phone, self.device_id)._group(jid))

        return await runtime.db(run)

    async def create_group(self, *, name: str, participants: list[str]) -> GroupInfo:
        return await self._act("create_group", name=name, participants=list(participants))

    async def update_participants(
        self, *, jid: str, participants: list[str], action: ParticipantAction
    ) -> list[ParticipantResult]:
        return await self._act(
            "update_participants", jid=jid, participants=list(participants), action=ParticipantAction(action)
        )

    async def join_with_link(self, *, code: str) -> str:
        return await self._act("join_with_link", code)

    async def invite_link(self, *, jid: str, reset: bool = False) -> str:
        return await self._act("invite_link", jid=jid, reset=reset)

    async def join_requests(self, *, jid: str) -> list[JoinRequest]:
        return await self._act("join_requests", jid=jid)

    async def answer_join_requests(
        self, *, jid: str, participants: list[str], approve: bool
    ) -> list[ParticipantResult]:
        return await self._act(
            "answer_join_requests", jid=jid, participants=list(participants), approve=approve
        )

    async def leave_group(self, *, jid: str) -> None:
        await self._act("leave_group", jid=jid)

    async def set_group_name(self, *, jid: str, name: str) -> None:
        await self._act("set_group_name", jid=jid, name=name)

    async def set_group_topic(self, *, jid: str, topic: str) -> None:
        await self._act("set_group_topic", jid=jid, topic=topic)

    async def set_group_photo(self, *, jid: str, image: bytes) -> str:
        return await self._act("set_group_photo", jid=jid, image=image)

    async def set_group_locked(self, *, jid: str, locked: bool) -> None:
        await self._act("set_group_locked", jid=jid, locked=locked)

    async def set_group_announce(self, *, jid: str, announce: bool) -> None:
        await self._act("set_group_announce", jid=jid, announce=announce)

    # -- newsletters

    async def newsletters(self) -> list[Newsletter]:
        phone = self._require_connected()
        return await runtime.db(_newsletters, _user_jid(phone))

    async def unfollow_newsletter(self, *, jid: str) -> None:
        await self._act("unfollow_newsletter", jid=jid)


# ---------------------------------------------------------------------------------------------- client state (sync)


def _session_state(device_id: int) -> dict | None:
    """The device's session, marking it announced; "announce" says whether PairedEvent is still due."""
    from messaging.models import SandboxSession

    _network()
    with transaction.atomic():
        session = SandboxSession.objects.select_for_update().filter(device_id=device_id).first()
        if session is None:
            return None
        announce = not session.announced
        if announce:
            session.announced = True
            session.save(update_fields=["announced"])
        return {
            "jid": session.jid,
            "phone": session.phone,
            "push_name": session.push_name,
            "announce": announce,
        }


def _take_deliveries(device_id: int) -> list[dict]:
    from messaging.models import SandboxDelivery

    with transaction.atomic():
        rows = list(
            SandboxDelivery.objects.select_for_update()
            .filter(device_id=device_id, delivered=False)
            .order_by("id")
        )
        if rows:  # handed over: gone, so a second poke (or a second process) cannot emit them again
            SandboxDelivery.objects.filter(pk__in=[r.pk for r in rows]).delete()
    return [r.event for r in rows]


def _new_qr(device_id: int, seconds: float) -> str:
    from messaging.models import SandboxLinkCode

    code = "2@sandbox:" + secrets.token_urlsafe(24)
    stamp = now()
    # Codes long expired are of no use to anyone: keep the table small while a device waits to be linked.
    SandboxLinkCode.objects.filter(device_id=device_id, kind="qr", expires_at__lt=stamp - 300).delete()
    SandboxLinkCode.objects.create(device_id=device_id, kind="qr", code=code, expires_at=stamp + seconds)
    return code


def _new_pair_code(device_id: int, phone: str) -> str:
    from messaging.models import SandboxLinkCode

    raw = "".join(secrets.choice(PAIR_ALPHABET) for _ in range(8))
    code = f"{raw[:4]}-{raw[4:]}"
    SandboxLinkCode.objects.create(
        device_id=device_id, kind="pair", code=code, phone=phone, expires_at=now() + PAIR_CODE_SECONDS
    )
    return code


def _is_registered_or_new(phone: str) -> bool:
    """Pairing works for any number that is on WhatsApp or a new simulated phone (not a known unregistered one)."""
    from messaging.models import SandboxAccount

    account = SandboxAccount.objects.filter(phone=phone).first()
    return account is None or account.registered


def _forget_session(device_id: int) -> None:
    from messaging.models import SandboxDelivery, SandboxLinkCode, SandboxSession

    SandboxSession.objects.filter(device_id=device_id).delete()
    SandboxLinkCode.objects.filter(device_id=device_id).delete()
    SandboxDelivery.objects.filter(device_id=device_id).delete()


def _mark_read_by_many(message_ids: list[str], jid: str) -> None:
    from messaging.models import SandboxMessage

    # One UPDATE per distinct new list (nearly always one for the whole receipt: nobody else had read them).
    changes: dict[tuple, list[int]] = {}
    for pk, read_by in SandboxMessage.objects.filter(msg_id__in=message_ids).values_list("pk", "read_by"):
        if jid not in read_by:
            changes.setdefault((*read_by, jid), []).append(pk)
    for read_by, pks in changes.items():
        SandboxMessage.objects.filter(pk__in=pks).update(read_by=list(read_by))


def _receipt_time(message_ids: list[str], jid: str, *, read: bool) -> float:
    """The network's time for a peer's receipt; a read receipt also records who read the messages."""
    if read:
        _mark_read_by_many(message_ids, jid)
    return now()


def _privacy_of(phone: str) -> dict:
    from messaging.models import SandboxAccount

    account = SandboxAccount.objects.filter(phone=phone).first()
    return {**DEFAULT_PRIVACY, **(account.privacy if account else {})}


def _joined_groups(jid: str) -> list[GroupInfo]:
    from messaging.models import SandboxGroup

    return [_group_info(g) for g in SandboxGroup.objects.order_by("id") if jid in g.participants]


# ---------------------------------------------------------------------------------------------- the backend


class SandboxBackend(p.Backend):
    name = "sandbox"

    def create_client(self, *, device_id: int, jid: str | None, emit: p.EmitEvent) -> SandboxClient:
        return SandboxClient(device_id=device_id, jid=jid, emit=emit)

    async def close(self) -> None:
        """Nothing to release: the network is the database, and each worker stops its own clients (the
        backend is shared by every worker of the process, so closing must not touch another worker's)."""


__all__ = [
    "SandboxBackend",
    "SandboxClient",
    "add_group_member",
    "advance_clock",
    "avatar_bytes",
    "follow_newsletter",
    "fresh_phone",
    "group_state",
    "identicon",
    "message_state",
    "network_summary",
    "now",
    "peer_create_group",
    "peer_edit",
    "peer_group_action",
    "peer_join_request",
    "peer_phones",
    "peer_presence",
    "peer_react",
    "peer_read",
    "peer_revoke",
    "peer_send",
    "peer_typing",
    "phone_enter_code",
    "phone_scan",
    "phone_unlink",
    "received_by",
    "sample_media",
    "seed_network",
    "sent_by",
    "sent_to",
    "set_clock",
    "set_join_approval",
    "set_privacy",
    "store_session",
    "unregistered_phone",
]
