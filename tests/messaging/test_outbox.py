"""The outbox: an accepted message is stored first and sent exactly once, whenever the device can send it."""

import pytest

from messaging.models import Message, MessageStatus
from messaging.services import outbox

pytestmark = pytest.mark.django_db(transaction=True)


def _received(wa, peer, wa_id):
    return [m for m in wa.sandbox.sent_to(peer) if m["id"] == wa_id]


def _queue(org, device, to, text="hello"):
    return outbox.queue_message(organization=org, device=device, outgoing={"to": to, "text": text})


def test_a_send_on_a_connected_device_goes_out_at_once(wa, org):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    message = _queue(org, device, peer)
    assert message.status == MessageStatus.SENT and message.wa_id.startswith("3EB0")
    assert [m["text"] for m in _received(wa, peer, message.wa_id)] == ["hello"]
    wa.wait_event("message.receipt", device=device, predicate=lambda d: d["id"] == message.wa_id)


def test_a_message_queued_while_offline_is_sent_exactly_once_when_the_device_connects(wa, org):
    device = wa.linked_device(org)
    peer = wa.peers[1]
    wa.stop_worker()  # the device is offline: nobody holds it
    message = _queue(org, device, peer, "while you were away")
    assert message.status == MessageStatus.QUEUED
    assert _received(wa, peer, message.wa_id) == []

    wa.start_worker()
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id)
    wa.run(wa.worker.heartbeat())  # later heartbeats find nothing left to send
    assert len(_received(wa, peer, message.wa_id)) == 1
    message.refresh_from_db()
    assert message.status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)
    assert message.attempts == 1


def test_a_send_cut_off_by_a_dying_worker_is_not_delivered_twice(wa, org):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    message = _queue(org, device, peer)
    assert message.status == MessageStatus.SENT
    wa.stop_worker()
    # As if the worker died after WhatsApp took the message but before it was marked sent.
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING)
    wa.mark()
    wa.start_worker()
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id)
    assert len(_received(wa, peer, message.wa_id)) == 1
    assert Message.objects.get(pk=message.pk).status != MessageStatus.SENDING


def test_messages_go_out_in_the_order_they_were_accepted(wa, org):
    device = wa.linked_device(org)
    peer = wa.peers[2]
    wa.stop_worker()
    ids = [_queue(org, device, peer, f"n{i}").wa_id for i in range(3)]
    wa.start_worker()
    for wa_id in ids:
        wa.wait_event("message.sent", device=device, predicate=lambda d, wa_id=wa_id: d["id"] == wa_id)
    texts = [m["text"] for m in wa.sandbox.sent_to(peer) if m["id"] in ids]
    assert texts == ["n0", "n1", "n2"]


def test_a_message_whatsapp_refuses_fails_with_the_reason(wa, org):
    device = wa.linked_device(org)
    message = _queue(org, device, "120363999999999999@newsletter", "to nowhere")
    data = wa.wait_event("message.failed", device=device, predicate=lambda d: d["id"] == message.wa_id)
    assert data["error"]
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.error


def test_what_queued_up_goes_out_together_and_a_refused_one_fails_alone(wa, org):
    device = wa.linked_device(org)
    peer = wa.peers[2]
    nobody = wa.sandbox.unregistered_phone()
    wa.stop_worker()  # they queue up: the worker claims them as one batch when it is back
    first = _queue(org, device, peer, "first")
    refused = _queue(org, device, nobody, "to nobody")
    last = _queue(org, device, peer, "last")
    wa.start_worker()
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == last.wa_id)
    failed = wa.wait_event("message.failed", device=device, predicate=lambda d: d["id"] == refused.wa_id)
    assert "not on WhatsApp" in failed["error"]
    statuses = dict(Message.objects.filter(device=device).values_list("wa_id", "status"))
    assert statuses[refused.wa_id] == MessageStatus.FAILED
    assert statuses[first.wa_id] != MessageStatus.QUEUED and statuses[last.wa_id] != MessageStatus.QUEUED
    texts = [m["text"] for m in wa.sandbox.sent_to(peer) if m["id"] in (first.wa_id, last.wa_id)]
    assert texts == ["first", "last"]
    assert Message.objects.get(pk=first.pk).attempts == 1  # each sent once


def _stored(org, prefix: str, status: str, n: int = 3):
    """A device (no worker holds it) with `n` outgoing messages of one chat in `status`, as the drain finds them."""
    from django.utils import timezone

    from messaging.models import Chat, Device

    device = Device.objects.create(organization=org, name="Phone")
    chat = Chat.objects.create(organization=org, device=device, jid="905551112233@s.whatsapp.net")
    rows = [
        Message.objects.create(
            organization=org,
            device=device,
            chat=chat,
            wa_id=f"3EB0{prefix}{i}",
            from_me=True,
            text=f"n{i}",
            status=status,
            timestamp=timezone.now(),
        )
        for i in range(n)
    ]
    return device, rows


def test_a_claim_leaves_out_a_message_that_changed_after_it_was_read(org):
    device, rows = _stored(org, "CLAIM", MessageStatus.QUEUED)
    candidates = outbox._unsent(device.pk)
    outbox.mark_failed(rows[1].pk, "refused meanwhile")  # between the read and the claim
    claimed = outbox._claim(candidates)
    assert [m.wa_id for m in claimed] == ["3EB0CLAIM0", "3EB0CLAIM2"]
    statuses = dict(Message.objects.values_list("wa_id", "status"))
    assert statuses == {"3EB0CLAIM0": "sending", "3EB0CLAIM1": "failed", "3EB0CLAIM2": "sending"}
    # Left "sending" (as by a worker that died before sending them): claimed again, with a try more each.
    assert [c[2].wa_id for c in outbox.claim_batch(device.pk)] == ["3EB0CLAIM0", "3EB0CLAIM2"]
    assert set(Message.objects.exclude(status="failed").values_list("attempts", flat=True)) == {2}


def test_a_claimed_batch_holds_all_its_sent_event_needs(org, django_assert_num_queries):
    """The message.sent payload of a claimed message (its hidden user IDs too) is built from the row as claimed:
    a column left out of the claim's read would be read again, one query per message sent."""
    from messaging import events
    from messaging.models import Chat

    device, rows = _stored(org, "LID", MessageStatus.QUEUED)
    Chat.objects.filter(pk=rows[0].chat_id).update(lid="111222333@lid")
    Message.objects.filter(pk=rows[0].pk).update(sender_lid="444555666@lid")
    claimed = outbox.claim_batch(device.pk)
    with django_assert_num_queries(0):
        payloads = [events.message_payload(message) for _, _, message in claimed]
    assert payloads[0]["chat_lid"] == "111222333@lid" and payloads[0]["from_lid"] == "444555666@lid"
    assert [p["id"] for p in payloads] == ["3EB0LID0", "3EB0LID1", "3EB0LID2"]


def test_marking_a_batch_sent_keeps_the_status_a_receipt_moved_on(org):
    from datetime import UTC, datetime

    from messaging.whatsapp import protocol

    device, rows = _stored(org, "MARK", MessageStatus.SENDING)
    # The delivery receipt of the second came before its send returned.
    Message.objects.filter(pk=rows[1].pk).update(status=MessageStatus.DELIVERED)
    stamp = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    sent = [(m, protocol.SendResult(id=m.wa_id, timestamp=stamp.timestamp())) for m in rows]
    outcomes, following = outbox.sent_and_claim_next(sent, device.pk)
    assert [o.payload["status"] for o in outcomes] == ["sent", "delivered", "sent"]
    assert following == []
    for row in Message.objects.filter(pk__in=[m.pk for m in rows]):
        assert row.timestamp == stamp and row.sent_at is not None
    statuses = dict(Message.objects.values_list("wa_id", "status"))
    assert statuses == {"3EB0MARK0": "sent", "3EB0MARK1": "delivered", "3EB0MARK2": "sent"}


def test_a_send_becomes_its_chats_last_message_and_a_new_number_gets_a_chat(wa, org):
    from messaging.models import Chat

    device = wa.linked_device(org)
    peer = wa.peers[0]
    first = _queue(org, device, peer, "first")
    chat = Chat.objects.get(device=device, jid=f"{peer}@s.whatsapp.net")
    assert first.chat_id == chat.pk and chat.last_message_preview == "first"
    second = _queue(org, device, peer, "second")
    chat.refresh_from_db()
    assert second.chat_id == chat.pk and chat.last_message_preview == "second"
    assert chat.last_message_at == second.timestamp
    assert Chat.objects.filter(device=device, jid=chat.jid).count() == 1


def test_a_send_waits_for_the_outcome_over_the_channel_layer_when_the_worker_is_elsewhere(
    wa, org, monkeypatch
):
    from messaging import runtime

    device = wa.linked_device(org)
    peer = wa.peers[0]
    # As in production, where the web process holds no worker: the nudge and the outcome go over the layer.
    monkeypatch.setattr(runtime, "local_worker", lambda channel: None)
    message = _queue(org, device, peer, "from another process")
    assert message.status == MessageStatus.SENT
    assert [m["text"] for m in _received(wa, peer, message.wa_id)] == ["from another process"]


def test_a_send_the_worker_does_not_finish_in_time_answers_queued_and_still_goes_out_once(wa, org, settings):
    from messaging import events

    device = wa.linked_device(org)
    # The drain the connection started (it sends what was queued before) must be over, or it would send this.
    wa.run(wa.worker.settle())
    peer = wa.peers[1]
    settings.WA_SEND_WAIT_SECONDS = 0.2

    async def busy(device_id):  # the worker gets to nothing of this device's outbox for now
        return None

    wa.worker.drain = busy
    try:
        message = _queue(org, device, peer, "slow")
    finally:
        del wa.worker.drain
    assert message.status == MessageStatus.QUEUED
    assert events._send_waiters == {}  # nobody waits for it any more
    wa.run(wa.worker.heartbeat())  # which looks for what is pending
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id)
    assert len(_received(wa, peer, message.wa_id)) == 1


def test_a_send_to_a_worker_that_is_stopping_is_queued_for_whoever_holds_the_device_next(
    wa, org, monkeypatch
):
    device = wa.linked_device(org)
    peer = wa.peers[2]
    monkeypatch.setattr(wa.worker, "nudge_threadsafe", lambda device_id: False)  # as while it stops
    message = _queue(org, device, peer, "handed on")
    # (the request does not wait on this path: the answer says as far as the worker had got)
    assert message.status in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)
    # The nudge went to the device's holder through the layer instead (here the same worker, not stopped).
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id)
    assert len(_received(wa, peer, message.wa_id)) == 1


def test_a_drain_stopped_while_it_claims_gives_the_claim_back(wa, org, monkeypatch, settings):
    import asyncio
    import threading

    from messaging.sessions import SessionWorker

    device = wa.linked_device(org)
    peer = wa.peers[1]

    async def busy(device_id):  # no other drain (heartbeat, nudge) of this device meanwhile
        return None

    wa.worker.drain = busy
    wa.run(wa.worker.settle())  # (a drain that began before is over)
    settings.WA_SEND_WAIT_SECONDS = 0.2
    message = _queue(org, device, peer, "held back")
    claiming, go_on = threading.Event(), threading.Event()
    real_claim_batch = outbox.claim_batch

    def slow_claim_batch(device_id):
        claimed = real_claim_batch(device_id)
        claiming.set()
        go_on.wait(10)
        return claimed

    monkeypatch.setattr(outbox, "claim_batch", slow_claim_batch)

    async def start():
        return asyncio.ensure_future(SessionWorker.drain(wa.worker, device.pk))

    drain = wa.run(start())
    assert claiming.wait(10)
    assert Message.objects.get(pk=message.pk).status == MessageStatus.SENDING  # claimed, in its thread
    wa.loop.call_soon_threadsafe(drain.cancel)  # as a worker that stops does

    async def finish():
        go_on.set()
        await asyncio.gather(drain, return_exceptions=True)

    wa.run(finish())
    assert drain.cancelled()
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 0)  # as if never claimed
    assert _received(wa, peer, message.wa_id) == []
    del wa.worker.drain
    monkeypatch.setattr(outbox, "claim_batch", real_claim_batch)
    wa.run(wa.worker.heartbeat())
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id)
    assert Message.objects.get(pk=message.pk).attempts == 1


def _channel_layer_down(monkeypatch):
    """Every call of the channel layer fails as channels_redis does with Redis gone."""
    from channels.layers import get_channel_layer
    from redis.exceptions import ConnectionError as RedisConnectionError

    from messaging import gateway

    layer = get_channel_layer()
    monkeypatch.setattr(gateway, "_layer_failed_at", None)  # (and back to None after: the layer is back)

    async def refused(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    for name in ("send", "receive", "group_add", "group_discard", "group_send"):
        monkeypatch.setattr(layer, name, refused)


def test_with_the_channel_layer_down_a_send_is_stored_queued_and_the_heartbeat_sends_it_once(
    wa, org, monkeypatch
):
    from messaging import runtime

    device = wa.linked_device(org)
    peer = wa.peers[0]
    # As in production, where the web process holds no worker: the nudge and the outcome go over the layer.
    monkeypatch.setattr(runtime, "local_worker", lambda channel: None)
    _channel_layer_down(monkeypatch)
    message = _queue(org, device, peer, "while Redis is down")  # (it raised the layer's error)
    # Queued; or, should the worker's own heartbeat have come between the write and the answer, sent.
    assert message.status in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)
    assert Message.objects.filter(wa_id=message.wa_id).count() == 1

    # No nudge can reach the worker: its heartbeat, which looks for unsent messages, sends it.
    wa.run(wa.worker.heartbeat())
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id)
    wa.run(wa.worker.heartbeat())
    assert len(_received(wa, peer, message.wa_id)) == 1
    assert Message.objects.get(pk=message.pk).attempts == 1


def test_when_the_channel_layer_is_back_sends_are_answered_sent_again(wa, org, monkeypatch):
    from messaging import runtime

    device = wa.linked_device(org)
    peer = wa.peers[1]
    monkeypatch.setattr(runtime, "local_worker", lambda channel: None)
    with monkeypatch.context() as down:
        _channel_layer_down(down)
        queued = _queue(org, device, peer, "during")
    assert queued.status in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)
    after = _queue(org, device, peer, "after")  # its nudge also makes the worker send the queued one
    assert after.status == MessageStatus.SENT
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == queued.wa_id)
    assert [len(_received(wa, peer, m.wa_id)) for m in (queued, after)] == [1, 1]


def test_a_backlog_stored_with_no_nudge_goes_out_in_one_drain_not_a_batch_per_heartbeat(wa, org):
    """As after a Redis outage: many messages stored while no nudge could reach the worker."""
    device = wa.linked_device(org)
    peer = wa.peers[2]
    wa.stop_worker()
    backlog = [_queue(org, device, peer, f"backlog {i}") for i in range(3 * outbox.CLAIM_BATCH + 5)]
    wa.lease_seconds = 300  # no heartbeat comes during the test: the drain of the connection sends them all
    wa.start_worker()
    wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == backlog[-1].wa_id, timeout=60)
    assert Message.objects.filter(device=device, status=MessageStatus.QUEUED).count() == 0
    texts = [m["text"] for m in wa.sandbox.sent_to(peer)]
    assert all(texts.count(m.text) == 1 for m in backlog)
