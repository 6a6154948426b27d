"""The session worker on a fake backend: leases, commands, the outbox and restarts, through the channel layer."""

import os

import pytest

from messaging import gateway
from messaging.models import Device, DeviceLease, Message, MessageStatus
from messaging.models.device import SessionWorker
from messaging.services import outbox
from messaging.whatsapp import protocol
from tests.messaging.fake_backend import FakeBackend

pytestmark = pytest.mark.django_db(transaction=True)

JID = "905550000001@s.whatsapp.net"


def _linked(org, **kw):
    return Device.objects.create(
        organization=org, name="Phone", wanted=True, jid=JID, phone="905550000001", **kw
    )


def test_worker_takes_a_wanted_device_connects_it_and_runs_commands(runtime_harness, org):
    device = _linked(org)
    runtime_harness.backend = FakeBackend()
    worker = runtime_harness.start_worker()
    runtime_harness.wait_event("device.connected", device=device, since_start=True)
    lease = DeviceLease.objects.get(device=device)
    assert (lease.worker_id, lease.channel_name) == (worker.worker_id, worker.channel_name)
    assert SessionWorker.objects.filter(worker_id=worker.worker_id).exists()

    infos = gateway.call(device, "user_info", jids=["905551112233@s.whatsapp.net"])
    assert infos == [protocol.UserInfo(jid="905551112233@s.whatsapp.net", status="hi")]
    with pytest.raises(protocol.NotFound):
        gateway.call(device, "user_info", jids=["0@s.whatsapp.net"])
    with pytest.raises(protocol.InvalidRequest):
        gateway.call(device, "no_such_op")


def test_commands_on_an_unconnected_client_say_so(runtime_harness, org):
    device = _linked(org)
    runtime_harness.backend = FakeBackend(online=False)
    runtime_harness.start_worker()
    assert DeviceLease.objects.filter(device=device).exists()
    with pytest.raises(protocol.NotConnected):
        gateway.call(device, "user_info", jids=[JID])
    # Linking operations work before the device is connected.
    assert gateway.call(device, "pair_phone", phone="905550000001").code == "ABCD-EFGH"


def test_a_message_queued_while_offline_is_sent_exactly_once_when_the_device_connects(runtime_harness, org):
    device = _linked(org)
    backend = runtime_harness.backend = FakeBackend(online=False)
    worker = runtime_harness.start_worker()
    message = outbox.queue_message(
        organization=org, device=device, outgoing={"to": "905551112233", "text": "hello"}
    )
    assert message.status == MessageStatus.QUEUED
    runtime_harness.run(worker.heartbeat())  # a heartbeat while offline sends nothing
    assert backend.sent == []

    runtime_harness.run(backend.clients[device.pk].come_online())
    sent = runtime_harness.wait_event(
        "message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id
    )
    assert sent["status"] == MessageStatus.SENT
    runtime_harness.run(worker.heartbeat())
    runtime_harness.run(worker.drain(device.pk))
    assert backend.sent == [message.wa_id]
    assert Message.objects.get(pk=message.pk).status == MessageStatus.SENT


def test_a_restarted_worker_reconnects_the_wanted_devices(runtime_harness, org):
    device = _linked(org)
    not_wanted = Device.objects.create(organization=org, name="Old", jid="905550000002@s.whatsapp.net")
    runtime_harness.backend = FakeBackend()
    first = runtime_harness.start_worker()
    runtime_harness.wait_event("device.connected", device=device, since_start=True)
    runtime_harness.mark()

    second = runtime_harness.restart_worker()
    assert not SessionWorker.objects.filter(worker_id=first.worker_id).exists()
    runtime_harness.wait_event("device.connected", device=device)
    assert DeviceLease.objects.get(device=device).worker_id == second.worker_id
    assert not DeviceLease.objects.filter(device=not_wanted).exists()


def test_linking_shows_the_qr_and_the_scan_connects(runtime_harness, org, owner):
    from messaging.services import devices

    backend = runtime_harness.backend = FakeBackend()
    runtime_harness.start_worker()
    device = devices.create_device(organization=org, name="New", actor=owner)
    device = devices.start_linking(organization=org, device=device, actor=owner)
    assert device.status == "qr_waiting" and device.qr_code.startswith(f"QR-{device.pk}-")
    runtime_harness.run(backend.clients[device.pk].scan(JID))
    data = runtime_harness.wait_event("device.connected", device=device)
    assert data["jid"] == JID
    device.refresh_from_db()
    assert device.is_connected and device.phone == "905550000001"

    device = devices.logout_device(organization=org, device=device, actor=owner)
    assert device.status == "logged_out" and not device.wanted
    runtime_harness.wait_event("device.logged_out", device=device)


def test_a_link_attempt_that_expires_unscanned_lets_the_device_go(runtime_harness, org, owner):
    from messaging.services import devices

    backend = runtime_harness.backend = FakeBackend()
    worker = runtime_harness.start_worker()
    device = devices.create_device(organization=org, name="New", actor=owner)
    devices.start_linking(organization=org, device=device, actor=owner)
    client = backend.clients[device.pk]
    runtime_harness.run(
        client.emit(protocol.DisconnectedEvent(reason="QR code expired", will_reconnect=False))
    )
    runtime_harness.wait_event("device.disconnected", device=device)
    runtime_harness.run(worker.settle())
    device.refresh_from_db()
    assert not device.wanted and device.pk not in worker.held
    assert not DeviceLease.objects.filter(device=device).exists()
    # Asking again brings it back.
    device = devices.start_linking(organization=org, device=device, actor=owner)
    assert device.wanted and device.status == "qr_waiting"


def test_workers_with_a_device_limit_share_the_devices(runtime_harness, org):
    from messaging.sessions import SessionWorker

    first_device = _linked(org)
    second_device = Device.objects.create(
        organization=org, name="Two", wanted=True, jid="905550000002@s.whatsapp.net"
    )
    backend = runtime_harness.backend = FakeBackend()
    one = SessionWorker(backend=backend, lease_seconds=3, max_devices=1)
    two = SessionWorker(backend=backend, lease_seconds=3, max_devices=1)
    try:
        runtime_harness.run(one.start())
        runtime_harness.run(two.start())
        assert len(one.held) == len(two.held) == 1
        assert one.held | two.held == {first_device.pk, second_device.pk}
        holders = set(DeviceLease.objects.values_list("worker_id", flat=True))
        assert holders == {one.worker_id, two.worker_id}
    finally:
        runtime_harness.run(one.stop())
        runtime_harness.run(two.stop())


def test_a_client_that_cannot_be_made_does_not_keep_the_lease(runtime_harness, org):
    class BrokenBackend(FakeBackend):
        def create_client(self, *, device_id, jid, emit):
            raise OSError("session store unreadable")

    device = _linked(org)
    runtime_harness.backend = BrokenBackend()
    worker = runtime_harness.start_worker()
    assert worker.held == set()
    assert not DeviceLease.objects.filter(device=device).exists()


def _many_linked(org, count):
    return [
        Device.objects.create(
            organization=org, name=f"Phone {n}", wanted=True, jid=f"90555000010{n}@s.whatsapp.net"
        )
        for n in range(count)
    ]


def _holders():
    return {
        worker: set(DeviceLease.objects.filter(worker_id=worker).values_list("device_id", flat=True))
        for worker in DeviceLease.objects.values_list("worker_id", flat=True).distinct()
    }


def test_a_worker_that_joins_gets_its_fair_share_and_the_moved_numbers_say_so(runtime_harness, org):
    from messaging.sessions import SessionWorker as Worker

    devices = _many_linked(org, 4)
    backend = runtime_harness.backend = FakeBackend()
    one = Worker(backend=backend, lease_seconds=3)
    two = Worker(backend=backend, lease_seconds=3)
    try:
        runtime_harness.run(one.start())
        assert one.held == {d.pk for d in devices}  # alone, it holds them all
        runtime_harness.run(two.start())
        assert two.held == set()  # every lease is live: nothing to take yet
        runtime_harness.mark()
        runtime_harness.run(one.heartbeat())  # sees a second live worker: hands two over
        assert len(one.held) == 2
        for device_id in {d.pk for d in devices} - one.held:  # their pages say they are moving
            moved = runtime_harness.wait_event("device.status", device=device_id)
            assert (moved["status"], moved["reason"]) == ("disconnected", "moving to another session worker")
        runtime_harness.run(two.heartbeat())
        assert len(two.held) == 2 and one.held | two.held == {d.pk for d in devices}
        assert _holders() == {one.worker_id: one.held, two.worker_id: two.held}
        # Balanced: further heartbeats move nothing.
        runtime_harness.run(one.heartbeat())
        runtime_harness.run(two.heartbeat())
        assert _holders() == {one.worker_id: one.held, two.worker_id: two.held}
        assert len(one.held) == len(two.held) == 2
    finally:
        runtime_harness.run(one.stop())
        runtime_harness.run(two.stop())


def test_when_a_worker_dies_the_survivors_share_grows_and_they_take_its_numbers(runtime_harness, org):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.sessions import SessionWorker as Worker

    devices = _many_linked(org, 4)
    backend = runtime_harness.backend = FakeBackend()
    one = Worker(backend=backend, lease_seconds=3)
    two = Worker(backend=backend, lease_seconds=3)
    try:
        runtime_harness.run(one.start())
        runtime_harness.run(two.start())
        runtime_harness.run(one.heartbeat())
        runtime_harness.run(two.heartbeat())
        assert len(one.held) == len(two.held) == 2
        # `two` stops beating (as if killed): its heartbeat and its leases age past a lease.
        for task in two._loops:
            task.cancel()
        past = timezone.now() - timedelta(seconds=10)
        SessionWorker.objects.filter(worker_id=two.worker_id).update(heartbeat_at=past)
        DeviceLease.objects.filter(worker_id=two.worker_id).update(expires_at=past)
        runtime_harness.run(one.heartbeat())
        assert one.held == {d.pk for d in devices}
    finally:
        runtime_harness.run(one.stop())
        runtime_harness.run(two.stop())


class _RecordingClient:
    """Records each call of send_many; refuses (as WhatsApp would) a message whose text is "refuse"."""

    def __init__(self, *, fail_on: str = ""):
        self.runs: list[list[protocol.OutgoingMessage]] = []
        self.fail_on = fail_on

    async def send_many(self, *, messages):
        self.runs.append(messages)
        results = []
        for m in messages:
            if m.text == self.fail_on:
                results.append(protocol.NotConnected("offline"))
                break
            results.append(protocol.SendResult(id=m.id, timestamp=0))
        return results


def _out(n: int, *, path: str = "") -> protocol.OutgoingMessage:
    kind = protocol.MessageKind.DOCUMENT if path else protocol.MessageKind.TEXT
    return protocol.OutgoingMessage(id=f"M{n}", to=JID, kind=kind, text=f"t{n}", media_path=path)


@pytest.mark.django_db(transaction=False)
async def test_a_batch_hands_each_stored_file_to_the_backend_alone_read_just_before(tmp_path):
    from messaging.sessions import _send_many

    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    first.write_bytes(b"%PDF-first")
    second.write_bytes(b"%PDF-second")
    client = _RecordingClient()
    batch = [_out(1), _out(2), _out(3, path=str(first)), _out(4, path=str(second)), _out(5), _out(6)]
    results = await _send_many(client, batch)
    assert [r.id for r in results] == ["M1", "M2", "M3", "M4", "M5", "M6"]
    assert [[m.id for m in run] for run in client.runs] == [["M1", "M2"], ["M3"], ["M4"], ["M5", "M6"]]
    assert client.runs[1][0].media == b"%PDF-first" and client.runs[2][0].media == b"%PDF-second"
    assert batch[2].media is None  # the claimed batch itself keeps only the paths

    # a file gone from the storage refuses that message alone; the others still go
    first.unlink()
    client = _RecordingClient()
    results = await _send_many(client, [_out(1, path=str(first)), _out(2)])
    assert isinstance(results[0], protocol.InvalidRequest) and results[1].id == "M2"

    # an error that stops a run stops the runs after it too (they go out on the next try)
    client = _RecordingClient(fail_on="t2")
    results = await _send_many(client, [_out(1), _out(2), _out(3, path=str(second)), _out(4)])
    assert [type(r).__name__ for r in results] == ["SendResult", "NotConnected"]
    assert len(client.runs) == 1

    # a backend that reads stored files itself gets the batch as it is
    client = _RecordingClient()
    client.READS_MEDIA_PATH = True
    await _send_many(client, [_out(1), _out(2, path=str(second))])
    assert [[m.media_path for m in run] for run in client.runs] == [["", str(second)]]


@pytest.mark.production
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the production channel layer)")
def test_an_idle_worker_logs_no_traceback(runtime_harness, org, caplog):
    """Idle on Redis for longer than the Redis client's read timeout (5 s): its receives wait quietly (they
    raised redis.exceptions.TimeoutError, logged with a traceback every few seconds: the client's read timeout
    was the same 5 s as channels_redis's blocking pop)."""
    import logging
    import threading

    device = _linked(org)
    runtime_harness.backend = FakeBackend()
    runtime_harness.lease_seconds = 0.9  # a heartbeat every 0.3 s
    worker = runtime_harness.start_worker()
    runtime_harness.wait_event("device.connected", device=device, since_start=True)
    caplog.set_level(logging.WARNING)
    beats, enough = [0], threading.Event()
    heartbeat = worker.heartbeat

    async def counted():
        await heartbeat()
        beats[0] += 1
        if beats[0] >= 25:  # 7.5 s: past the 5 s read timeout and the 5 s blocking pop, more than once
            enough.set()

    worker.heartbeat = counted
    assert enough.wait(60)
    # Nothing to say at all: no traceback, and no warning that the channel layer failed.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_linking_while_the_channel_layer_is_down_still_gets_a_qr(runtime_harness, org, owner, monkeypatch):
    """No nudge reaches a worker: the request answers (no 500), and the worker's heartbeat, which takes the
    wanted devices nobody holds, starts the link."""
    from messaging.services import devices
    from tests.messaging.test_outbox import _channel_layer_down

    backend = runtime_harness.backend = FakeBackend()
    worker = runtime_harness.start_worker()
    device = devices.create_device(organization=org, name="New", actor=owner)
    with monkeypatch.context() as down:
        _channel_layer_down(down)
        devices.start_linking(organization=org, device=device, actor=owner, wait=0.2)
        runtime_harness.run(worker.heartbeat())
        runtime_harness.wait_event("device.qr", device=device)
    assert device.pk in backend.clients and device.pk in worker.held
