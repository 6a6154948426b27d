"""The neonize backend's client lifecycle over a day: linking, reconnecting, stopping, on both session stores.

neonize's real NewAClient runs here; only its Go library is replaced (`fake_go`, see FakeGo), or, for the
PostgreSQL store, it is the real one.
"""

import asyncio
import gc

import pytest
from neonize.proto import Neonize_pb2 as np

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.backend import NeonizeBackend
from tests.messaging.neonize_harness import ME, MemoryMessageIds, insert_device, jid, until

PG_URL = "postgres://wa:secret@127.0.0.1/waportal"


async def _connects(go, count: int) -> None:
    await asyncio.wait_for(until(lambda: len(go.connects) >= count), 5)


# ---------------------------------------------------------------------------------------------- 1. reconnect


async def test_reconnect_after_linking_on_postgres_resumes_the_paired_session(fake_go, emitted):
    """neonize passes the client's new_device flag to Go on every connect(): reusing the client a device was
    linked with would make Go create a blank device again (a QR code instead of the session just paired)."""
    stored: list[str] = []
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds,
        database_url=PG_URL,
        stored_devices=lambda url: list(stored),
        backoff=lambda a: 0,
    )
    c = backend.create_client(device_id=1, jid=None, emit=emitted)
    await c.start()
    await _connects(fake_go, 1)
    assert (fake_go.connects[0]["new_device"], fake_go.connects[0]["jid"]) == (1, b"")
    # The phone scans the code: whatsmeow stores the new device and reports the pairing.
    stored.append("905550000001:12@s.whatsapp.net")
    await c.on_event(c.neo, np.PairStatus(ID=jid(ME, device=12), Status=np.PairStatus.SUCCESS))
    await c.reconnect()
    await _connects(fake_go, 2)
    again = fake_go.connects[1]
    assert again["new_device"] == 0
    assert np.JID.FromString(again["jid"]) == jid(ME, device=12)
    await c.stop()


async def test_a_connection_that_ends_reconnects_to_the_same_session(fake_go, emitted):
    stored = ["905550000001:12@s.whatsapp.net"]
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds,
        database_url=PG_URL,
        stored_devices=lambda url: stored,
        backoff=lambda a: 0,
    )
    c = backend.create_client(device_id=1, jid=ME, emit=emitted)
    await c.start()
    await _connects(fake_go, 1)
    fake_go.run_out(fake_go.connects[0]["uuid"])  # the Go call ended by itself
    await _connects(fake_go, 2)
    assert [np.JID.FromString(call["jid"]).Device for call in fake_go.connects] == [12, 12]
    assert [call["new_device"] for call in fake_go.connects] == [0, 0]
    await c.stop()


# ---------------------------------------------------------------------------------------------- 2. finalizer


async def test_two_clients_of_one_device_never_share_a_go_session_id(emitted, tmp_path):
    """Go keys a client's connection by this ID, and neonize's finalizer of a collected client stops its ID."""
    backend = NeonizeBackend(message_ids=MemoryMessageIds, session_dir=tmp_path, database_url="")
    c = backend.create_client(device_id=7, jid=None, emit=emitted)
    first, second = await backend.open_neonize(c), await backend.open_neonize(c)
    assert first.uuid != second.uuid
    resumed = NeonizeBackend(
        message_ids=MemoryMessageIds,
        database_url=PG_URL,
        stored_devices=lambda url: ["905550000001:12@s.whatsapp.net"],
    )
    r = resumed.create_client(device_id=8, jid=ME, emit=emitted)
    a, b = await resumed.open_neonize(r), await resumed.open_neonize(r)
    assert a.uuid != b.uuid  # neonize would make both the phone number
    assert a.jid == jid(ME, device=12)


async def test_collecting_the_client_of_an_old_session_does_not_stop_the_new_one(
    fake_go, emitted, tmp_path, monkeypatch
):
    import messaging.whatsapp.neonize.connection as nb

    monkeypatch.setattr(nb, "LINK_STOP_WAIT_SECONDS", 0.0)
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds, session_dir=tmp_path, database_url="", backoff=lambda a: 0
    )
    c = backend.create_client(device_id=7, jid=ME, emit=emitted)
    await c.start()
    await _connects(fake_go, 1)
    await c.logout()  # unlinked: the next start links anew (a new QR session)
    await c.start()
    await _connects(fake_go, 2)
    old, live = fake_go.connects[0]["uuid"], fake_go.connects[1]["uuid"]
    assert old != live
    gc.collect()  # the old NewAClient is gone; neonize's finalizer stops its Go session ID
    assert live in fake_go.live()
    fake_go.linking = False
    await c.stop()


# ---------------------------------------------------------------------------------------------- 3. stored names


async def test_a_comma_in_a_stored_name_does_not_hide_the_session(whatsmeow_postgres):
    """On PostgreSQL, against whatsmeow's real store (created by neonize's Go library)."""
    import psycopg
    from asgiref.sync import sync_to_async
    from neonize.aioze.client import ClientFactory

    url = whatsmeow_postgres
    with psycopg.connect(url) as conn:
        insert_device(
            conn.execute, "905550000001:12@s.whatsapp.net", push_name="Acme, Inc.", business_name="Acme, Inc."
        )
    with pytest.raises(ValueError):  # why the backend does not use neonize's helper
        await sync_to_async(ClientFactory.get_all_devices_from_db)(url)
    backend = NeonizeBackend(message_ids=MemoryMessageIds, database_url=url)
    found = await backend.stored_session_jid(ME)
    assert (found.User, found.Device) == ("905550000001", 12)
    assert await backend.stored_session_jid("905559999999@s.whatsapp.net") is None


async def test_of_two_stored_sessions_of_a_number_the_newest_is_resumed():
    stored = [
        "905550000001:3@s.whatsapp.net",
        "905550000001:12@s.whatsapp.net",
        "905559999999:20@s.whatsapp.net",
    ]
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds, database_url=PG_URL, stored_devices=lambda url: stored
    )
    found = await backend.stored_session_jid(ME)
    assert (found.User, found.Device) == ("905550000001", 12)


# ---------------------------------------------------------------------------------------------- 4. linking


async def test_stopping_while_linking_returns_and_counts_the_go_call_until_it_ends(
    fake_go, emitted, tmp_path
):
    fake_go.linking = True
    backend = NeonizeBackend(message_ids=MemoryMessageIds, session_dir=tmp_path, database_url="")
    c = backend.create_client(device_id=9, jid=None, emit=emitted)
    await c.start()
    await emitted.wait_for(p.QRCodeEvent)
    stale = c.neo
    await asyncio.wait_for(c.stop(), 2)  # Go's QR loop does not end on our disconnect: no waiting for it
    (uuid,) = fake_go.stopped
    assert uuid in {call["uuid"] for call in fake_go.connects}
    assert len(backend.lingering) == 1  # its thread is still taken ...
    executor = asyncio.get_running_loop()._default_executor
    assert executor._max_workers >= 32 + 2 * len(backend.clients) + 1  # ... and the pool has room for it
    await c.on_qr(stale, b"2@rotated,after-stop")  # codes still rotating in Go are not shown
    assert [e.code for e in emitted.of(p.QRCodeEvent)] == ["2@first,code"]
    fake_go.run_out(uuid)  # the codes ran out: whatsmeow closes the QR channel, Go returns
    await asyncio.wait_for(until(lambda: not backend.lingering), 5)


async def test_stopping_before_the_first_qr_code_waits_for_it_briefly(
    fake_go, emitted, tmp_path, monkeypatch
):
    """Our disconnect ends whatsmeow's QR loop only through its emitter's timers, which the first code starts."""
    import messaging.whatsapp.neonize.connection as nb

    monkeypatch.setattr(nb, "LINK_STOP_WAIT_SECONDS", 5.0)
    backend = NeonizeBackend(message_ids=MemoryMessageIds, session_dir=tmp_path, database_url="")
    c = backend.create_client(device_id=9, jid=None, emit=emitted)
    await c.start()
    await _connects(fake_go, 1)
    stopping = asyncio.create_task(c.stop())
    done, _ = await asyncio.wait({stopping}, timeout=0.1)
    assert not done and fake_go.stopped == []  # not disconnected before whatsmeow's QR emitter runs
    fake_go.linking = True
    fake_go.qr(fake_go.connects[0]["uuid"], b"2@late,code")
    await asyncio.wait_for(stopping, 5)
    assert fake_go.stopped == [fake_go.connects[0]["uuid"]]
    fake_go.run_out(fake_go.connects[0]["uuid"])
    await asyncio.wait_for(until(lambda: not backend.lingering), 5)


# ------------------------------------------------------------------------------- 5. no route to WhatsApp

# What whatsmeow answers when this server cannot reach WhatsApp (goneonize returns it from Neonize()).
NO_ROUTE = (
    b"failed to dial whatsapp web websocket: dial tcp: lookup web.whatsapp.com on 127.0.0.53:53: no such host"
)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (NO_ROUTE, p.DisconnectCause.UNREACHABLE),
        (
            b"failed to dial whatsapp web websocket: dial tcp 157.240.0.1:443: connect: network is unreachable",
            p.DisconnectCause.UNREACHABLE,
        ),
        (b"client is nil", ""),
    ],
)
async def test_a_connection_that_cannot_reach_whatsapp_says_so(fake_go, emitted, tmp_path, error, cause):
    """neonize raises its NeonizeError with Go's raw words; the client names the cause the page explains."""
    fake_go.dial_error = error
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds, session_dir=tmp_path, database_url="", backoff=lambda a: 0.05
    )
    c = backend.create_client(device_id=1, jid=None, emit=emitted)
    await c.start()
    ended = await emitted.wait_for(p.DisconnectedEvent)
    await c.stop()
    assert ended.cause == cause
    assert ended.will_reconnect is True
    assert ended.reason == error.decode()  # the raw words stay in the log and the event, not on the page
