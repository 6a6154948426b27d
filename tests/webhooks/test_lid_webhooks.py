"""Webhooks of a contact WhatsApp names by hidden user ID (…@lid): the LID alone while that is all that is known
(never a made-up number), then the number with `from_lid`/`chat_lid` beside it."""

import json

import pytest

from messaging import webhooks

pytestmark = pytest.mark.django_db(transaction=True)


def test_webhooks_carry_the_lid_then_the_number_with_the_lid_beside_it(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    device = wa.linked_device(org)
    webhooks.create_endpoint(organization=org, url=f"{receiver.url}/wa", events=["message"])
    peer = wa.sandbox.peer_phones("quiet")[0]
    number = f"{peer}@s.whatsapp.net"
    lid = wa.sandbox.peer_hide_phone(phone=peer)

    hidden = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="kimim ben")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == hidden)
    attempt_log.wait_final(1)
    wa.sandbox.peer_hide_phone(phone=peer, hidden=False)
    wa.wait_event("chat.merged", device=device)
    known = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="numaram bu")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == known)
    attempt_log.wait_final(2)

    bodies = {b["payload"]["id"]: b["payload"] for b in (json.loads(r.body) for r in receiver.requests)}
    first, second = bodies[hidden], bodies[known]
    assert (first["from"], first["from_lid"], first["chat_id"], first["chat_lid"]) == (lid, lid, lid, lid)
    assert peer not in json.dumps(first)
    assert (second["from"], second["from_lid"], second["chat_id"], second["chat_lid"]) == (
        number,
        lid,
        number,
        lid,
    )
