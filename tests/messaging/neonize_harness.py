"""What the neonize backend tests share: neonize's real client class (autospec), its protobuf events, helpers.

Its fixtures (neo, opened, backend, emitted, neonize_client) are in conftest.py and import neonize only when a
test asks for them.
"""

import asyncio
import ctypes
import threading

from neonize.proto import Neonize_pb2 as np
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.backend import NeonizeBackend

ME = "905550000001@s.whatsapp.net"
PEER = "905551112233@s.whatsapp.net"
GROUP = "120363000000000001@g.us"


def jid(value: str, device: int = 0) -> np.JID:
    user, server = value.split("@")
    return np.JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


class Recorder:
    """The `emit` a session worker would pass: records events and lets a test wait for one."""

    def __init__(self):
        self.events: list[p.Event] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: p.Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]

    async def wait_for(self, cls, count: int = 1, timeout: float = 5.0):
        async def waiter():
            while len(self.of(cls)) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(waiter(), timeout)
        return self.of(cls)[count - 1]


def outgoing(kind, **kwargs) -> p.OutgoingMessage:
    return p.OutgoingMessage(id=kwargs.pop("id", "3EB0OURS"), to=kwargs.pop("to", PEER), kind=kind, **kwargs)


def sent_message(neo) -> e2e.Message:
    assert neo.send_message.await_count == 1
    to, message = neo.send_message.await_args.args
    return to, message


def message_event(
    content: e2e.Message, *, sender=PEER, chat=None, from_me=False, msg_id="MSG1", **flags
) -> np.Message:
    chat = chat or sender
    source = np.MessageSource(
        Chat=jid(chat), Sender=jid(sender), IsFromMe=from_me, IsGroup=chat.endswith("@g.us")
    )
    info = np.MessageInfo(MessageSource=source, ID=msg_id, Pushname="Ayşe", Timestamp=1_700_000_100)
    return np.Message(Info=info, Message=content, **flags)


async def incoming(client, event) -> list[p.Event]:
    return await client.translate(event)


async def client_on_real_neonize(tmp_path, monkeypatch, emit):
    """A client subscribed to a real NewAClient (no connection), whose Go callbacks tests call from a thread."""
    import neonize.aioze.events as neonize_events

    monkeypatch.setattr(neonize_events, "event_global_loop", asyncio.get_running_loop())
    backend = NeonizeBackend(session_dir=tmp_path / "sessions", database_url="", message_ids=MemoryMessageIds)
    c = backend.create_client(device_id=13, jid=ME, emit=emit)
    c.neo = await backend.open_neonize(c)
    c._subscribe(c.neo)
    return c


def deliver_from_go(neo, event) -> None:
    """What the Go library does with an event: call neonize's C callback with the serialized protobuf."""
    import ctypes

    from neonize.events import EVENT_TO_INT

    payload = event.SerializePartialToString()
    buffer = ctypes.create_string_buffer(payload, len(payload))
    neo.event.execute(0, ctypes.addressof(buffer), len(payload), EVENT_TO_INT[type(event)])


async def until(predicate) -> None:
    """Yield to the loop until `predicate()` holds (bounded by the caller's wait_for)."""
    while not predicate():
        await asyncio.sleep(0)


class FakeGo:
    """Stands in for neonize's Go library (`neonize.aioze.client.gocode`): the Go entry points a connection uses.

    It does with these calls what goneonize's main.go does: Neonize() runs for the whole connection and returns
    once Stop(id) cancels it; but while linking it first loops over whatsmeow's QR channel, which our stop does not
    close (a user disconnect emits no event): then it returns only when the codes run out (`run_out`).
    Everything above it (NewAClient, its connect/stop/upload/send code, ctypes callbacks) is neonize's own."""

    def __init__(self):
        self.linking = False
        self.dial_error = b""  # what Neonize() returns at once when set: whatsmeow's error, as Go passes it
        self.connects: list[dict] = []
        self.stopped: list[bytes] = []
        self.sent: list[tuple[bytes, bytes]] = []
        self._ends: dict[bytes, threading.Event] = {}
        self._qr_callbacks: dict[bytes, object] = {}

    # -- goneonize's exports
    def Neonize(self, db, uuid, jid, jid_size, new_device, log_level, qr_cb, *rest):  # noqa: N802
        end = self._ends.setdefault(uuid, threading.Event())
        self._qr_callbacks[uuid] = qr_cb
        self.connects.append({"db": db, "uuid": uuid, "jid": jid, "new_device": new_device})
        if self.dial_error:
            return self.dial_error
        if self.linking:
            self.qr(uuid, b"2@first,code")
        end.wait(30)
        return b""

    def Stop(self, uuid):  # noqa: N802
        self.stopped.append(uuid)
        if not self.linking:
            self.run_out(uuid)

    def Upload(self, uuid, data, size, media_type):  # noqa: N802
        response = np.UploadResponse(
            url="https://mmg.whatsapp.net/fake",
            DirectPath="/v/t62/fake",
            Handle="",
            MediaKey=b"k" * 32,
            FileEncSHA256=b"e" * 32,
            FileSHA256=b"s" * 32,
            FileLength=size,
        )
        return np.UploadReturnFunction(UploadResponse=response).SerializeToString()

    def SendMessage(self, uuid, to, to_size, message, message_size):  # noqa: N802
        self.sent.append((to, message))
        timings = np.MessageDebugTimings(
            Queue=0,
            Marshal=0,
            GetParticipants=0,
            GetDevices=0,
            GroupEncrypt=0,
            PeerEncrypt=0,
            Send=0,
            Resp=0,
            Retry=0,
        )
        response = np.SendResponse(ID="3EB0FROMGO", Timestamp=1_700_000_000, ServerID=0, DebugTimings=timings)
        return np.SendMessageReturnFunction(SendResponse=response).SerializeToString()

    # -- what whatsmeow does by itself
    def qr(self, uuid: bytes, code: bytes) -> None:
        """A QR code rotating in: Go calls neonize's C QR callback."""
        buffer = ctypes.create_string_buffer(code)
        self._qr_callbacks[uuid](None, ctypes.addressof(buffer))

    def run_out(self, uuid: bytes) -> None:
        """The Neonize() call of `uuid` returns (for a linking one: its QR codes ran out)."""
        self._ends.setdefault(uuid, threading.Event()).set()

    def live(self) -> set[bytes]:
        """Session IDs whose Neonize() call has not returned and that were not stopped."""
        return {uuid for uuid, end in self._ends.items() if not end.is_set() and uuid not in self.stopped}

    def release_all(self) -> None:
        for end in self._ends.values():
            end.set()


def postgres_test_url() -> str:
    """The URL of the test database (PostgreSQL runs only), for whatsmeow's store there."""
    from django.db import connection

    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}:{port}/{db['NAME']}?sslmode=disable"


def insert_device(execute, device_jid: str, **names) -> None:
    """A linked device's row in whatsmeow's device table (keys of the lengths its checks ask for)."""
    columns = ["jid", "registration_id", "noise_key", "identity_key", "signed_pre_key", "signed_pre_key_id"]
    columns += ["signed_pre_key_sig", "adv_key", "adv_details", "adv_account_sig", "adv_account_sig_key"]
    columns += ["adv_device_sig", *names]
    keys = [b"\0" * n for n in (32, 32, 32)] + [1] + [b"\0" * n for n in (64, 32, 8, 64, 32, 64)]
    values = [device_jid, 1, *keys, *names.values()]
    execute(
        f"INSERT INTO whatsmeow_device ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(values))})",
        values,
    )


class MemoryMessageIds:
    """`messaging.whatsapp.sent_ids.SharedMessageIds` kept in a dict, for the neonize tests that need no database
    (the shared store itself is tested in test_sent_ids.py and, with the neonize client, test_sent_ids.py)."""

    def __init__(self, device_id: int):
        self.device_id = device_id
        self.rows: dict[str, tuple[str, float | None]] = {}  # ours -> (theirs or "", timestamp or None)

    async def begin(self, ours):
        from messaging.whatsapp import protocol

        if ours in self.rows:
            theirs, timestamp = self.rows[ours]
            if timestamp is None:
                raise protocol.SendOutcomeUnknown("a send of this message was cut off")
            return protocol.SendResult(id=ours, timestamp=timestamp)
        self.rows[ours] = ("", None)
        return None

    async def finish(self, ours, theirs, timestamp):
        self.rows[ours] = (theirs or ours, timestamp)

    async def abandon(self, ours):
        if self.rows.get(ours, ("", 0))[1] is None:
            del self.rows[ours]

    async def ours(self, *theirs):
        back = {t: o for o, (t, ts) in self.rows.items() if t}
        return [back.get(t, t) for t in theirs]

    async def theirs(self, ours):
        return self.rows.get(ours, ("", None))[0] or ours
