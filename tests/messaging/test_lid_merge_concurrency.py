"""Writers of one chat at once (PostgreSQL: they really overlap there; SQLite runs one write at a time).

A merge of a LID chat into the number's, with a send and a received message arriving while it runs; a send and
a received message in one chat. Nothing is lost, and no writer is aborted as a deadlock's victim."""

import functools
import threading
import time

import pytest
from django.db import connection, connections

from messaging import events
from messaging.models import Chat, Device, DeviceStatus, Message
from messaging.services import lids, outbox
from messaging.whatsapp import protocol as p

ME = "905550000001@s.whatsapp.net"
PEER = "905551112233@s.whatsapp.net"
LID = "123456789012345@lid"


def _received(msg_id: str, text: str, device: Device, **addressed) -> list:
    message = p.IncomingMessage(
        id=msg_id, chat=LID, sender=LID, sender_name="Ayşe", text=text, timestamp=time.time(), **addressed
    )
    return events.persist(p.MessageEvent(device_id=device.pk, message=message))


def _run(results: dict, name: str, work) -> None:
    """A writer's thread: `work()`'s result, or what it raised, in results[name]; its connection closed."""
    try:
        results[name] = work()
    except BaseException as exc:  # reported by the test's assertion
        results[name] = exc
    finally:
        connections.close_all()


def _until_waiting_on_locks(count: int, timeout: float = 30) -> None:
    """Until `count` other sessions of the test database wait for a lock (the merge holds them)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= count:
                return
            assert time.monotonic() < deadline, "the writers never reached the merge's locks"
            time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_send_and_a_message_arriving_during_a_merge_are_not_lost(org, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("writers overlap on PostgreSQL only (SQLite runs one write transaction at a time)")
    device = Device.objects.create(
        organization=org, name="Shop", jid=ME, phone=ME.split("@")[0], status=DeviceStatus.DISCONNECTED
    )
    _received("LID1", "kimim ben", device)
    ours = p.IncomingMessage(id="OURS1", chat=PEER, sender=ME, from_me=True, text="siparişiniz", timestamp=1)
    events.persist(p.MessageEvent(device_id=device.pk, message=ours))

    locked, go = threading.Event(), threading.Event()
    fold = lids._fold

    def paused_fold(*args, **kwargs):  # the two chats are locked by now
        locked.set()
        assert go.wait(30)
        return fold(*args, **kwargs)

    monkeypatch.setattr(lids, "_fold", paused_fold)
    results: dict[str, object] = {}
    run = functools.partial(_run, results)

    merge = threading.Thread(
        target=run,
        args=("merge", lambda: events.persist(p.LidMappingEvent(device_id=device.pk, lid=LID, phone=PEER))),
    )
    merge.start()
    assert locked.wait(30)
    send = threading.Thread(
        target=run,
        args=(
            "send",
            lambda: outbox.queue_message(
                organization=org, device=device, outgoing={"to": LID, "text": "hâlâ"}
            ),
        ),
    )
    receive = threading.Thread(target=run, args=("receive", lambda: _received("LID2", "orada mısın", device)))
    send.start()
    receive.start()
    _until_waiting_on_locks(2)
    go.set()
    for thread in (merge, send, receive):
        thread.join(30)
    assert not [r for r in results.values() if isinstance(r, BaseException)], results

    (chat,) = Chat.objects.filter(device=device)
    assert (chat.jid, chat.lid, chat.unread_count) == (PEER, LID, 2)
    texts = set(Message.objects.filter(device=device).values_list("text", flat=True))
    assert texts == {"kimim ben", "siparişiniz", "hâlâ", "orada mısın"}
    assert Message.objects.filter(chat=chat).count() == 4
    assert results["send"].chat_id == chat.pk
    late = Message.objects.get(wa_id="LID2")
    assert (late.sender_jid, late.sender_lid) == (PEER, LID)
    assert chat.last_message_preview in {"hâlâ", "orada mısın"}


@pytest.mark.django_db(transaction=True)
def test_a_send_and_a_received_message_in_one_chat_at_once_are_both_stored(org, monkeypatch):
    """The received message is paused after its INSERT (which holds the chat's hourly tally row) while a send to
    the same chat is stored. Both write the chat and the tally: taken in two orders, PostgreSQL would abort one."""
    if connection.vendor != "postgresql":
        pytest.skip("writers overlap on PostgreSQL only (SQLite runs one write transaction at a time)")
    device = Device.objects.create(
        organization=org, name="Shop", jid=ME, phone=ME.split("@")[0], status=DeviceStatus.DISCONNECTED
    )
    first = p.IncomingMessage(
        id="IN1", chat=PEER, sender=PEER, sender_name="Ayşe", text="merhaba", timestamp=time.time()
    )
    events.persist(p.MessageEvent(device_id=device.pk, message=first))

    inserted, go = threading.Event(), threading.Event()
    preview_of = events.preview_of

    def paused_preview(*args, **kwargs):  # the received message's row is written; its chat is not yet
        if threading.current_thread().name == "receive":
            inserted.set()
            assert go.wait(30)
        return preview_of(*args, **kwargs)

    monkeypatch.setattr(events, "preview_of", paused_preview)
    results: dict[str, object] = {}
    run = functools.partial(_run, results)

    second = p.IncomingMessage(
        id="IN2", chat=PEER, sender=PEER, sender_name="Ayşe", text="orada mısın", timestamp=time.time()
    )
    receive = threading.Thread(
        target=run,
        name="receive",
        args=("receive", lambda: events.persist(p.MessageEvent(device_id=device.pk, message=second))),
    )
    receive.start()
    assert inserted.wait(30)
    send = threading.Thread(
        target=run,
        name="send",
        args=(
            "send",
            lambda: outbox.queue_message(
                organization=org, device=device, outgoing={"to": PEER, "text": "buradayım"}
            ),
        ),
    )
    send.start()
    _until_waiting_on_locks(1)  # the send waits for what the received message holds
    go.set()
    for thread in (receive, send):
        thread.join(30)
    assert not [r for r in results.values() if isinstance(r, BaseException)], results

    (chat,) = Chat.objects.filter(device=device)
    assert chat.unread_count == 2
    assert set(Message.objects.filter(chat=chat).values_list("text", flat=True)) == {
        "merhaba",
        "orada mısın",
        "buradayım",
    }
    assert chat.last_message_preview in {"orada mısın", "buradayım"}


@pytest.mark.django_db(transaction=True)
def test_a_send_during_a_history_import_into_its_chat_is_stored(org, monkeypatch):
    """A batch of the phone's history (this hour's messages) is stored while a send goes to one of its chats."""
    from messaging.services import history_import

    if connection.vendor != "postgresql":
        pytest.skip("writers overlap on PostgreSQL only (SQLite runs one write transaction at a time)")
    device = Device.objects.create(
        organization=org, name="Shop", jid=ME, phone=ME.split("@")[0], status=DeviceStatus.DISCONNECTED
    )
    now = time.time()
    old = [
        p.IncomingMessage(id=f"H{i}", chat=PEER, sender=PEER, text=f"eski {i}", timestamp=now - i)
        for i in range(3)
    ]
    batch = [(p.HistoryConversation(jid=PEER, name="Ayşe", messages=old), old, set())]
    Chat.objects.create(organization=org, device=device, jid=PEER)

    inserted, go = threading.Event(), threading.Event()
    move_forward = history_import._move_chat_forward

    def paused_move(*args, **kwargs):  # the batch's messages are written; its chats are not moved yet
        inserted.set()
        assert go.wait(30)
        return move_forward(*args, **kwargs)

    monkeypatch.setattr(history_import, "_move_chat_forward", paused_move)
    monkeypatch.setattr(history_import, "BATCH_PAUSE", 0)
    results: dict[str, object] = {}
    run = functools.partial(_run, results)

    importing = threading.Thread(
        target=run, args=("import", lambda: history_import._import_batch(device, batch, {}))
    )
    importing.start()
    assert inserted.wait(30)
    send = threading.Thread(
        target=run,
        args=(
            "send",
            lambda: outbox.queue_message(
                organization=org, device=device, outgoing={"to": PEER, "text": "yeni"}
            ),
        ),
    )
    send.start()
    _until_waiting_on_locks(1)  # the send waits for what the import holds
    go.set()
    for thread in (importing, send):
        thread.join(30)
    assert not [r for r in results.values() if isinstance(r, BaseException)], results

    (chat,) = Chat.objects.filter(device=device)
    assert set(Message.objects.filter(chat=chat).values_list("text", flat=True)) == {
        "eski 0",
        "eski 1",
        "eski 2",
        "yeni",
    }
    assert chat.last_message_preview == "yeni"  # the send is newer than anything the phone had
