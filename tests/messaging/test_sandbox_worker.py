"""The sandbox through the real session worker (the `wa` fixture): link, send with receipts, receive."""

import pytest

from messaging import gateway
from messaging.models import Message, MessageStatus
from messaging.services import outbox


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.WA_SANDBOX_DELAY = 0.01


@pytest.mark.django_db(transaction=True)
def test_send_is_read_and_a_peer_answers(wa, org):
    device = wa.linked_device(org)
    echo = wa.sandbox.peer_phones("echo")[0]
    message = outbox.queue_message(organization=org, device=device, outgoing={"to": echo, "text": "ping"})
    read = wa.wait_event("message.receipt", device=device, predicate=lambda d: d["receipt"] == "read")
    assert read["id"] == message.wa_id
    answer = wa.wait_event("message", device=device, predicate=lambda d: not d["from_me"])
    assert answer["text"] == "Echo: ping" and answer["replied_to_id"] == message.wa_id
    assert Message.objects.get(pk=message.pk).status == MessageStatus.READ
    assert [m["id"] for m in wa.sandbox.sent_to(echo)] == [message.wa_id]  # exactly once


@pytest.mark.django_db(transaction=True)
def test_peer_message_and_gateway_operations(wa, org):
    device = wa.linked_device(org)
    peer = wa.sandbox.peer_phones("quiet")[0]
    wa_id = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="hello from the simulated phone")
    received = wa.wait_event("message", device=device, predicate=lambda d: d["id"] == wa_id)
    assert received["text"] == "hello from the simulated phone"
    assert Message.objects.get(device=device, wa_id=wa_id).status == MessageStatus.RECEIVED
    rows = gateway.call(device, "check_numbers", phones=[peer, wa.sandbox.unregistered_phone()])
    assert [r.is_in for r in rows] == [True, False]
