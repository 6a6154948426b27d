"""End to end on the simulated network: a peer's message reaches a linked number, then the customer's receiver."""

import json

import pytest

from messaging import webhooks
from messaging.models import WebhookDelivery
from tests.webhooks.receiver import Answer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_sandbox_message_arrives_at_the_receiver_signed(
    wa, allow_private, task_worker, receiver, attempt_log, org, other_org
):
    ours = wa.linked_device(org, "Ours")
    theirs = wa.linked_device(other_org, "Theirs")
    endpoint = webhooks.create_endpoint(
        organization=org, url=f"{receiver.url}/wa", events=["message", "message.reaction"]
    )
    receiver.answer(Answer(status=500), Answer(status=500))
    peer = wa.peers[0]

    wa.sandbox.peer_send(from_phone=peer, to_jid=theirs.jid, text="for the rival")
    msg_id = wa.sandbox.peer_send(from_phone=peer, to_jid=ours.jid, text="Merhaba, sipariş nerede?")
    wa.wait_event("message", device=ours, predicate=lambda d: d["id"] == msg_id)

    attempt_log.wait_final(1)
    requests = receiver.requests
    assert len(requests) == 3  # 500, 500, 200
    for request in requests:
        assert webhooks.verify_signature(
            endpoint.secret, request.body, request.headers["x-hub-signature-256"]
        )
    body = json.loads(requests[-1].body)
    assert body["event"] == "message" and body["device_id"] == ours.pk
    assert body["payload"]["id"] == msg_id
    assert body["payload"]["text"] == "Merhaba, sipariş nerede?"
    assert body["payload"]["from"].startswith(peer)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)
    assert not WebhookDelivery.objects.filter(device=theirs).exists()

    wa.sandbox.peer_react(from_phone=peer, chat=ours.jid, message_id=msg_id, emoji="👍")
    attempt_log.wait_final(2)
    reaction = json.loads(receiver.requests[-1].body)
    assert reaction["event"] == "message.reaction"
    assert reaction["payload"]["reaction"] == "👍" and reaction["payload"]["reacted_message_id"] == msg_id


def test_linking_and_logging_out_a_number_reach_the_receiver(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    from messaging.services import devices

    endpoint = webhooks.create_endpoint(
        organization=org,
        url=f"{receiver.url}/wa",
        events=["device.qr", "device.connected", "device.logged_out"],
    )
    device = wa.linked_device(org, "Sales")
    devices.logout_device(organization=org, device=device)
    wa.wait_event("device.logged_out", device=device)
    # Deliveries are stored with their events, so all of them exist by now; wait until each has arrived.
    attempt_log.wait_final(WebhookDelivery.objects.filter(endpoint=endpoint).count())

    bodies = [json.loads(r.body) for r in receiver.requests]
    events = [b["event"] for b in bodies]
    shown = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]  # a slow scan may see a new QR
    assert shown == ["device.qr", "device.connected", "device.logged_out"], events
    assert all(b["device_id"] == device.pk for b in bodies)
    assert bodies[0]["payload"]["qr_code"]
    assert bodies[1]["payload"]["phone"] == device.phone
    for request in receiver.requests:
        assert webhooks.verify_signature(
            endpoint.secret, request.body, request.headers["x-hub-signature-256"]
        )


def test_a_poll_vote_reaches_an_endpoint_subscribed_to_it(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    device = wa.linked_device(org, "Ours")
    endpoint = webhooks.create_endpoint(
        organization=org, url=f"{receiver.url}/wa", events=["message.poll_vote"]
    )
    peer = wa.peers[0]
    poll_id = wa.sandbox.peer_send(
        from_phone=peer,
        to_jid=device.jid,
        kind="poll",
        poll_question="Lunch?",
        poll_options=["Kebab", "Pide"],
    )
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == poll_id)
    wa.sandbox.peer_vote(from_phone=peer, chat=device.jid, message_id=poll_id, options=["Pide"])
    attempt_log.wait_final(1)
    body = json.loads(receiver.requests[-1].body)
    assert body["event"] == "message.poll_vote" and body["device_id"] == device.pk
    payload = body["payload"]
    assert payload["target_id"] == poll_id and payload["poll_selected"] == ["Pide"]
    assert payload["from"].startswith(peer)
    # Only the subscribed event: the poll itself (a "message") was not sent to it.
    assert [d.event for d in WebhookDelivery.objects.filter(endpoint=endpoint)] == ["message.poll_vote"]
