"""Exactly once on a backend that cannot send with our IDs: the shared map of sent IDs and the `unknown` state."""

import pytest

from messaging.models import Device, Message, MessageStatus, SentMessageId, WebhookDelivery, WebhookEndpoint
from messaging.services import outbox
from messaging.whatsapp import protocol
from messaging.whatsapp.sent_ids import SharedMessageIds
from tests.messaging.fake_backend import FakeBackend, FakeClient

pytestmark = pytest.mark.django_db(transaction=True)


def _linked(org, n=1):
    return Device.objects.create(
        organization=org, name="Phone", wanted=True, jid=f"90555000000{n}@s.whatsapp.net"
    )


def test_the_map_answers_any_worker_and_a_completed_send_is_not_made_twice(runtime_harness, org):
    device = _linked(org)
    one, other = SharedMessageIds(device.pk), SharedMessageIds(device.pk)  # two workers, one database
    run = runtime_harness.run
    assert run(one.begin("OURS1")) is None
    run(one.finish("OURS1", "WA-1", 1_700_000_000.0))
    again = run(other.begin("OURS1"))
    assert (again.id, again.timestamp) == ("OURS1", 1_700_000_000.0)
    # Receipts, replies and edits that name WhatsApp's ID are matched on the other worker.
    assert run(other.ours("WA-1", "SOMEONE-ELSES", "")) == ["OURS1", "SOMEONE-ELSES", ""]
    assert run(other.theirs("OURS1")) == "WA-1"
    assert run(other.theirs("NOT-OURS")) == "NOT-OURS"


def test_a_cut_off_send_is_unknown_and_an_abandoned_one_may_go_again(runtime_harness, org):
    device = _linked(org)
    ids = SharedMessageIds(device.pk)
    run = runtime_harness.run
    assert run(ids.begin("CUT")) is None  # the worker dies here, mid-send
    with pytest.raises(protocol.SendOutcomeUnknown):
        run(SharedMessageIds(device.pk).begin("CUT"))
    assert run(ids.begin("REFUSED")) is None
    run(ids.abandon("REFUSED"))  # refused before it left: nothing went out
    assert run(ids.begin("REFUSED")) is None


class IdPickingClient(FakeClient):
    """Sends as neonize does: WhatsApp picks the ID, the shared map keeps ours (see neonize_backend.send)."""

    async def send(self, *, message):
        if not self.connected:
            raise protocol.NotConnected("offline")
        ids = SharedMessageIds(self.device_id)
        earlier = await ids.begin(message.id)
        if earlier is not None:
            return earlier
        self.backend.sent.append(message.id)
        await ids.finish(message.id, f"WA-{message.id}", 1_700_000_000.0)
        return protocol.SendResult(id=message.id, timestamp=1_700_000_000.0)


class IdPickingBackend(FakeBackend):
    def create_client(self, *, device_id, jid, emit):
        client = IdPickingClient(self, device_id, jid, emit)
        self.clients[device_id] = client
        return client


def test_a_send_cut_off_by_a_dead_worker_becomes_unknown_and_the_rest_go_out_once(runtime_harness, org):
    device = _linked(org)
    cut = outbox.queue_message(
        organization=org, device=device, outgoing={"to": "905551112233", "text": "one"}
    )
    after = outbox.queue_message(
        organization=org, device=device, outgoing={"to": "905551112233", "text": "two"}
    )
    # The worker that held the number had claimed `cut` and started sending it when it died.
    Message.objects.filter(pk=cut.pk).update(status=MessageStatus.SENDING, attempts=1)
    SentMessageId.objects.create(device=device, message_id=cut.wa_id)

    WebhookEndpoint.objects.create(
        organization=org, url="https://hooks.example.com/wa", events=["message.unknown"], secret="whsec_x"
    )
    backend = runtime_harness.backend = IdPickingBackend()
    worker = runtime_harness.start_worker()
    unknown = runtime_harness.wait_event("message.unknown", device=device, since_start=True)
    # Stored with the status change: a webhook receiver hears of it too.
    assert WebhookDelivery.objects.filter(event="message.unknown", organization=org).count() == 1
    assert unknown["id"] == cut.wa_id and unknown["status"] == "unknown" and "cut off" in unknown["error"]
    runtime_harness.wait_event(
        "message.sent", device=device, predicate=lambda d: d["id"] == after.wa_id, since_start=True
    )
    runtime_harness.run(worker.heartbeat())
    runtime_harness.run(worker.settle())
    assert backend.sent == [after.wa_id]  # never sent twice, and the one after it not held up
    assert Message.objects.get(pk=cut.pk).status == MessageStatus.UNKNOWN
    assert Message.objects.get(pk=after.pk).status == MessageStatus.SENT

    # A person checked the phone: it is not there. Sent again on request, once.
    from messaging.services.messages import resend_message

    runtime_harness.mark()
    resend_message(organization=org, device=device, chat=cut.chat.jid, message_id=cut.wa_id)
    runtime_harness.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == cut.wa_id)
    assert backend.sent == [after.wa_id, cut.wa_id]
