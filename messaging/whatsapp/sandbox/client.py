"""A device's client on the simulated network, driven by the session worker that holds its lease; the backend."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from django.db import transaction
from django.utils.translation import gettext_noop as _noop

from messaging import runtime
from messaging.whatsapp import protocol as p
from messaging.whatsapp import wire
from messaging.whatsapp.protocol import (
    Avatar,
    BusinessProfile,
    ChatPresenceState,
    ContactInfo,
    GroupInfo,
    InvalidRequest,
    JoinRequest,
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
from messaging.whatsapp.sandbox import tenancy
from messaging.whatsapp.sandbox.actors import _Actor, _outgoing_from
from messaging.whatsapp.sandbox.calls import reject_call as _reject_call
from messaging.whatsapp.sandbox.groups import _group_info, _group_info_from_link, _joined_groups
from messaging.whatsapp.sandbox.history import history_chunks
from messaging.whatsapp.sandbox.linking import (
    _forget_session,
    _is_registered_or_new,
    _new_pair_code,
    _new_qr,
    _session_state,
)
from messaging.whatsapp.sandbox.network import (
    DEFAULT_PRIVACY,
    PAIR_CODE_SECONDS,
    _delay,
    _phone,
    _qr_seconds,
    _user_jid,
    now,
)
from messaging.whatsapp.sandbox.reads import (
    _avatar,
    _business_profile,
    _check_numbers,
    _contacts,
    _download,
    _newsletter_messages,
    _newsletters,
    _privacy_of,
    _user_info,
)
from messaging.whatsapp.sandbox.waking import _local_clients, _wake

logger = logging.getLogger(__name__)


_REACTIONS = ["👍", "❤️", "😂", "😮", "🙏", "🎉"]


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
            raise NotConnected(_noop("The device is not connected to WhatsApp."))
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
        # The network has no real network to route through: it records the proxy (the number's page shows it).
        await runtime.db(_record_proxy, self.device_id, self.proxy_url)
        if session["announce"]:
            await self._emit(
                p.PairedEvent(jid=session["jid"], push_name=session["push_name"], platform="sandbox")
            )
        self._connected = True
        await self._emit(p.ConnectedEvent(jid=session["jid"], push_name=session["push_name"]))
        await self._drain()
        if session["announce"]:  # a new link: the phone sends what it holds, as WhatsApp's phones do
            self._spawn(self._send_history(session["phone"], session["history_upto"]))

    async def _send_history(self, phone: str, upto_id: int) -> None:
        for chunk in await runtime.db(history_chunks, phone, upto_id=upto_id):
            if not self._connected:
                return
            await self._emit(chunk)

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
            raise InvalidRequest(
                _noop("This device is already linked; log out first to link another number.")
            )
        if not self._started:
            raise NotConnected(_noop("The device's client is not running."))
        registered = await runtime.db(_is_registered_or_new, phone)
        if not registered:
            raise NotFound(_noop("%(phone)s is not on WhatsApp.") % {"phone": phone})
        # Refused now rather than when the code is entered: a code for another organization's number is useless.
        await runtime.db(tenancy.require_link, phone, device_id=self.device_id)
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
        """Several messages in one trip to the network: one transaction, the network's clock and the accounts and
        linked devices of their recipients read once. A refused message does not stop the others: `_Actor.send`
        refuses before it writes anything, so a refusal needs no savepoint of its own (two statements more on
        every message)."""
        phone = self._require_connected()

        def run():
            actor = _Actor(phone, self.device_id)
            results: list = []
            with transaction.atomic():
                for message in messages:
                    try:
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
        phone = self._require_connected()
        return await runtime.db(_avatar, jid, preview, _user_jid(phone))

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

    # -- chat state: the simulated network keeps no app state; it checks what WhatsApp would refuse

    async def pin_chat(self, *, chat: str, pinned: bool) -> None:
        self._require_connected()

    async def archive_chat(self, *, chat: str, archived: bool) -> None:
        self._require_connected()

    async def set_disappearing_timer(self, *, chat: str, seconds: int) -> None:
        self._require_connected()
        if seconds not in p.DISAPPEARING_TIMERS:
            raise InvalidRequest(
                _noop("WhatsApp offers only these timers (seconds): %(timers)s.")
                % {"timers": p.DISAPPEARING_TIMERS}
            )

    async def label_chat(self, *, chat: str, label_id: str, label_name: str, labeled: bool) -> None:
        self._require_connected()

    async def edit_label(self, *, label_id: str, name: str, color: int, deleted: bool = False) -> None:
        self._require_connected()
        if not 0 <= color < len(p.LABEL_COLORS):
            raise InvalidRequest(
                _noop("color: WhatsApp's palette has %(count)s colours (0-19).")
                % {"count": len(p.LABEL_COLORS)}
            )

    # -- calls: a simulated contact rings (sandbox.peer_call); the caller sees the rejection (calls_to)

    async def reject_call(self, *, caller: str, call_id: str) -> None:
        # Not under the poke lock: the worker rejects while this client's poke is emitting the offer.
        phone = self._require_connected()
        await runtime.db(_reject_call, phone, caller=caller, call_id=call_id)

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

    async def group_info_from_link(self, *, code: str) -> GroupInfo:
        self._require_connected()
        return await runtime.db(_group_info_from_link, code)

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

    async def newsletter_messages(
        self, *, jid: str, count: int = 50, before: int = 0
    ) -> list[p.NewsletterPost]:
        self._require_connected()
        return await runtime.db(_newsletter_messages, jid, count, before)


def _record_proxy(device_id: int, proxy_url: str) -> None:
    from messaging.models import SandboxSession

    SandboxSession.objects.filter(device_id=device_id).exclude(proxy_url=proxy_url).update(
        proxy_url=proxy_url
    )


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


class SandboxBackend(p.Backend):
    name = "sandbox"

    def create_client(self, *, device_id: int, jid: str | None, emit: p.EmitEvent) -> SandboxClient:
        return SandboxClient(device_id=device_id, jid=jid, emit=emit)

    async def close(self) -> None:
        """Nothing to release: the network is the database, and each worker stops its own clients (the
        backend is shared by every worker of the process, so closing must not touch another worker's)."""
