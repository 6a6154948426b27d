"""Incoming calls end to end on the simulated network: a contact calls, the number's auto-reject setting answers,
the caller sees it (and gets the reply text), and the customer's receiver gets call.offer either way."""

import json

import pytest

from messaging import webhooks
from messaging.models import Message
from messaging.services.device_settings import update_device_settings

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "Bu numara arama kabul etmiyor; lütfen buradan yazın."


def _call_offers(receiver) -> list[dict]:
    bodies = [json.loads(r.body) for r in receiver.requests]
    return [b for b in bodies if b["event"] == "call.offer"]


def test_a_declined_call_gets_the_reply_and_call_offer_says_rejected(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    device = wa.linked_device(org, "Ours")
    webhooks.create_endpoint(organization=org, url=f"{receiver.url}/wa", events=["call.offer"])
    update_device_settings(organization=org, device=device, reject_calls=True, reject_call_message=REPLY)
    peer = wa.peers[0]

    call_id = wa.sandbox.peer_call(from_phone=peer, to_jid=device.jid, is_video=True)
    offer = wa.wait_event("call.offer", device=device, predicate=lambda d: d["call_id"] == call_id)
    assert offer["from"] == f"{peer}@s.whatsapp.net" and offer["is_video"] is True
    assert (offer["rejected"], offer["reply_sent"], offer["is_group"]) == (True, True, False)

    # The reply went out through the outbox, and the caller's phone shows the call declined and the reply.
    sent = wa.wait_event("message.sent", device=device, predicate=lambda d: d["text"] == REPLY)
    assert sent["chat_id"] == f"{peer}@s.whatsapp.net"
    [call] = [c for c in wa.sandbox.calls_to(device.phone) if c["call_id"] == call_id]
    assert (call["state"], call["reply"]) == ("rejected", REPLY)
    assert any(m["text"] == REPLY for m in wa.sandbox.received_by(peer))

    attempt_log.wait_final(1)
    [body] = _call_offers(receiver)
    assert body["payload"]["call_id"] == call_id
    assert (body["payload"]["rejected"], body["payload"]["reply_sent"]) == (True, True)


def test_with_the_setting_off_the_call_rings_and_nothing_is_sent(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    device = wa.linked_device(org, "Ours")
    webhooks.create_endpoint(organization=org, url=f"{receiver.url}/wa", events=["call.offer"])
    # A reply text alone does nothing: the call is not declined, so nobody is answered.
    update_device_settings(organization=org, device=device, reject_calls=False, reject_call_message=REPLY)
    peer = wa.peers[1]

    call_id = wa.sandbox.peer_call(from_phone=peer, to_jid=device.jid)
    offer = wa.wait_event("call.offer", device=device, predicate=lambda d: d["call_id"] == call_id)
    assert (offer["rejected"], offer["reply_sent"], offer["is_video"]) == (False, False, False)
    attempt_log.wait_final(1)
    [body] = _call_offers(receiver)
    assert body["payload"]["rejected"] is False
    [call] = [c for c in wa.sandbox.calls_to(device.phone) if c["call_id"] == call_id]
    assert call["state"] == "ringing"
    assert not Message.objects.filter(device=device, text=REPLY).exists()


def test_rejecting_by_api_still_works_on_a_ringing_call(wa, org, api_key):
    from tests.api.conftest import ApiClient

    device = wa.linked_device(org, "Ours")
    peer = wa.peers[0]
    call_id = wa.sandbox.peer_call(from_phone=peer, to_jid=device.jid)
    wa.wait_event("call.offer", device=device, predicate=lambda d: d["call_id"] == call_id)
    api = ApiClient(api_key, device=device)
    answer = api.post("/call/reject", {"caller_jid": peer, "call_id": call_id})
    assert answer.status_code == 200, answer.content
    assert wa.sandbox.calls_to(device.phone)[0]["state"] == "rejected"
    again = api.post("/call/reject", {"caller_jid": peer, "call_id": call_id})
    assert again.status_code == 422, again.content  # not ringing any more: WhatsApp would refuse it too
