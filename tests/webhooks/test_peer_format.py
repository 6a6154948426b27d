"""The reference server's webhook format: a receiver written for go-whatsapp-web-multidevice v9 works unchanged.

The expected shapes are the peer's documented ones (its docs/webhook-payload.md and event code, summed up in
../shared/spec/PEER-V9.md), written down here, not taken from our output. Every body goes through the real
delivery path to the local receiver, signed.
"""

import json
import re

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

from messaging import events, webhooks
from messaging.models import WebhookDelivery, WebhookEndpoint
from messaging.webhooks import queueing
from messaging.whatsapp import protocol
from tests.conftest import client_for, make_api_key
from tests.webhooks.conftest import make_device, receive_message

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")

# The peer's envelope: event, device_id (the JID), session_id (the id given at POST /devices), payload; a
# top-level timestamp on receipts, group, newsletter, call, label and presence events.
ENVELOPE = {"event", "device_id", "session_id", "payload", "timestamp"}

# Fields of the peer's message events (message, message.reaction, .revoked, .edited), by name and type.
MESSAGE_FIELDS = {
    "id": str,
    "chat_id": str,
    "chat_lid": str,
    "from": str,
    "from_lid": str,
    "from_name": str,
    "timestamp": str,
    "is_from_me": bool,
    "body": str,
    "replied_to_id": str,
    "quoted_body": str,
    "image": (str, dict),
    "video": (str, dict),
    "audio": (str, dict),
    "document": (str, dict),
    "sticker": (str, dict),
    "video_note": (str, dict),
    "contact": dict,
    "location": dict,
    "view_once": bool,
    "forwarded": bool,
    "reaction": str,
    "reacted_message_id": str,
    "revoked_message_id": str,
    "revoked_from_me": bool,
    "revoked_chat": str,
    "original_message_id": str,
}
MESSAGE_REQUIRED = {"id", "chat_id", "from", "timestamp", "is_from_me"}
ACK_FIELDS = {
    "ids": list,
    "chat_id": str,
    "chat_lid": str,
    "from": str,
    "from_lid": str,
    "receipt_type": str,
    "receipt_type_description": str,
}
GROUP_FIELDS = {"chat_id": str, "type": str, "jids": list}
JOINED_FIELDS = {**GROUP_FIELDS, "reason": str, "group_name": str}
PRESENCE_FIELDS = {"from": str, "from_lid": str, "chat_id": str, "state": str, "media": str, "is_group": bool}
CALL_FIELDS = {
    "call_id": str,
    "from": str,
    "auto_rejected": bool,
    "remote_platform": str,
    "remote_version": str,
    "group_jid": str,
}

pytestmark = pytest.mark.django_db(transaction=True)


def conforms(payload: dict, fields: dict, required=()) -> dict:
    """`payload` has only the peer's fields, each of its type, the required ones present."""
    unexpected = set(payload) - set(fields)
    assert not unexpected, f"fields the peer does not send: {unexpected} in {payload}"
    missing = set(required) - set(payload)
    assert not missing, f"missing {missing} in {payload}"
    for key, value in payload.items():
        assert isinstance(value, fields[key]), f"{key}={value!r} is not {fields[key]}"
    if "timestamp" in payload:
        assert RFC3339.match(payload["timestamp"]), payload["timestamp"]
    return payload


def peer_body(request, endpoint, device, event: str) -> dict:
    """The body of one received request: signed with the endpoint's secret, in the peer's envelope."""
    assert webhooks.verify_signature(endpoint.secret, request.body, request.headers["x-hub-signature-256"])
    assert request.headers["idempotency-key"]
    body = json.loads(request.body)
    assert set(body) <= ENVELOPE and {"event", "device_id", "session_id", "payload"} <= set(body), body
    assert body["event"] == event, body
    assert body["device_id"] == device.jid and body["session_id"] == str(device.pk), body
    if "timestamp" in body:
        assert RFC3339.match(body["timestamp"]), body
    return body


def peer_endpoint(org, url, events, **kwargs):
    return webhooks.create_endpoint(organization=org, url=url, events=events, payload_format="peer", **kwargs)


# ------------------------------------------------------------------------------------------ on the sandbox


def test_a_sandbox_message_reaches_a_peer_receiver_in_its_format(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    device = wa.linked_device(org, "Sales")
    webhooks.create_endpoint(organization=org, url=f"{receiver.url}/ours", events=["message"])
    theirs = peer_endpoint(
        org,
        f"{receiver.url}/peer",
        ["message", "message.reaction", "message.edited", "message.revoked", "chat.presence"],
    )
    peer = wa.peers[0]

    msg_id = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="Merhaba, sipariş nerede?")
    attempt_log.wait_final(2)
    by_path = {r.path: r for r in receiver.requests}
    body = peer_body(by_path["/peer"], theirs, device, "message")
    assert "timestamp" not in body  # the peer puts none on message events
    payload = conforms(body["payload"], MESSAGE_FIELDS, MESSAGE_REQUIRED)
    assert payload["id"] == msg_id and payload["body"] == "Merhaba, sipariş nerede?"
    assert payload["from"] == f"{peer}@s.whatsapp.net" and payload["chat_id"] == payload["from"]
    assert payload["is_from_me"] is False
    # The same event in our format, to our endpoint, unchanged.
    assert json.loads(by_path["/ours"].body)["payload"]["text"] == "Merhaba, sipariş nerede?"

    wa.sandbox.peer_react(from_phone=peer, chat=device.jid, message_id=msg_id, emoji="👍")
    wa.sandbox.peer_edit(from_phone=peer, chat=device.jid, message_id=msg_id, text="Sipariş nerede?")
    wa.sandbox.peer_revoke(from_phone=peer, chat=device.jid, message_id=msg_id)
    wa.sandbox.peer_typing(from_phone=peer, chat=device.jid)
    attempt_log.wait_final(6)
    bodies = {}
    for request in receiver.requests:
        if request.path == "/peer":
            event = json.loads(request.body)["event"]
            bodies[event] = peer_body(request, theirs, device, event)
    reaction = conforms(bodies["message.reaction"]["payload"], MESSAGE_FIELDS, MESSAGE_REQUIRED)
    assert reaction["reaction"] == "👍" and reaction["reacted_message_id"] == msg_id
    edited = conforms(bodies["message.edited"]["payload"], MESSAGE_FIELDS, MESSAGE_REQUIRED)
    assert edited["original_message_id"] == msg_id and edited["body"] == "Sipariş nerede?"
    revoked = conforms(bodies["message.revoked"]["payload"], MESSAGE_FIELDS, MESSAGE_REQUIRED)
    assert revoked["revoked_message_id"] == msg_id and revoked["revoked_from_me"] is False
    typing = bodies["chat_presence"]
    assert RFC3339.match(typing["timestamp"])
    presence = conforms(typing["payload"], PRESENCE_FIELDS)
    assert presence["state"] == "composing" and presence["is_group"] is False
    assert presence["from"] == f"{peer}@s.whatsapp.net"


def test_a_sandbox_image_goes_once_stored_with_the_peers_media_field(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    device = wa.linked_device(org)
    endpoint = peer_endpoint(org, f"{receiver.url}/peer", ["message"])
    msg_id = wa.sandbox.peer_send(from_phone=wa.peers[0], to_jid=device.jid, kind="image", caption="foto")
    attempt_log.wait_final(1)
    body = peer_body(receiver.requests[0], endpoint, device, "message")
    payload = conforms(body["payload"], MESSAGE_FIELDS, MESSAGE_REQUIRED)
    assert payload["id"] == msg_id and payload["body"] == "foto"  # the caption, as the peer's body
    # As the peer sends media it has not downloaded: {"url", "caption"}; here the URL of our stored copy.
    assert payload["image"]["caption"] == "foto" and payload["image"]["url"]


def test_a_hidden_number_comes_as_the_peer_names_a_lid(
    wa, allow_private, task_worker, receiver, attempt_log, org
):
    device = wa.linked_device(org)
    endpoint = peer_endpoint(org, f"{receiver.url}/peer", ["message"])
    peer = wa.sandbox.peer_phones("quiet")[0]
    lid = wa.sandbox.peer_hide_phone(phone=peer)
    hidden = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="kimim ben")
    attempt_log.wait_final(1)
    wa.sandbox.peer_hide_phone(phone=peer, hidden=False)
    wa.wait_event("chat.merged", device=device)
    known = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="numaram bu")
    attempt_log.wait_final(2)
    bodies = [peer_body(r, endpoint, device, "message")["payload"] for r in receiver.requests]
    first, second = (conforms(b, MESSAGE_FIELDS, MESSAGE_REQUIRED) for b in bodies)
    # Unresolved, the peer names the LID in both fields; resolved, the number, with the LID beside it.
    assert first["id"] == hidden and (first["from"], first["from_lid"]) == (lid, lid)
    assert (first["chat_id"], first["chat_lid"]) == (lid, lid)
    number = f"{peer}@s.whatsapp.net"
    assert second["id"] == known and (second["from"], second["from_lid"]) == (number, lid)
    assert (second["chat_id"], second["chat_lid"]) == (number, lid)


# ------------------------------------------------------------------------------------------ events by kind


def test_receipts_become_message_ack(allow_private, task_worker, receiver, attempt_log, org):
    device = make_device(org)
    endpoint = peer_endpoint(org, f"{receiver.url}/peer", ["message.receipt"])
    async_to_sync(events.handle)(
        protocol.ReceiptEvent(
            device_id=device.pk,
            chat="905559990001@s.whatsapp.net",
            sender="905559990001@s.whatsapp.net",
            message_ids=["3EB00106E8BE0F407E88EC"],
            type=protocol.ReceiptType.READ,
            timestamp=1752878684.25,
        )
    )
    attempt_log.wait_final(1)
    body = peer_body(receiver.requests[0], endpoint, device, "message.ack")
    assert body["timestamp"] == "2025-07-18T22:44:44Z"  # to the second, as the peer writes it
    payload = conforms(body["payload"], ACK_FIELDS)
    assert payload["ids"] == ["3EB00106E8BE0F407E88EC"]
    assert payload["chat_id"] == "905559990001@s.whatsapp.net"
    assert payload["receipt_type"] == "read"
    assert payload["receipt_type_description"] == "the user opened the chat and saw the message."
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "message.ack"  # the log names it as the body does


def test_group_participants_and_this_number_joining(allow_private, task_worker, receiver, attempt_log, org):
    device = make_device(org)
    endpoint = peer_endpoint(org, f"{receiver.url}/peer", ["group.participants", "group.settings"])
    group = "120363402106000001@g.us"
    for action, who in (
        ("add", ["905551110001@s.whatsapp.net"]),
        ("remove", [device.jid]),
        ("add", [device.jid]),
    ):
        async_to_sync(events.handle)(
            protocol.GroupChangedEvent(
                device_id=device.pk,
                group=group,
                change=protocol.GroupChange.PARTICIPANTS,
                action=action,
                participants=who,
                timestamp=1753698600,
            )
        )
    async_to_sync(events.handle)(
        protocol.GroupChangedEvent(
            device_id=device.pk, group=group, change=protocol.GroupChange.SETTINGS, locked=True
        )
    )
    attempt_log.wait_final(4)
    names = [json.loads(r.body)["event"] for r in receiver.requests]
    assert names == ["group.participants", "group.participants", "group.joined", "group.settings"]
    join, leave, joined, settings_ = (
        peer_body(r, endpoint, device, n) for r, n in zip(receiver.requests, names, strict=True)
    )
    assert join["timestamp"] == "2025-07-28T10:30:00Z"
    assert conforms(join["payload"], GROUP_FIELDS) == {
        "chat_id": group,
        "type": "join",
        "jids": ["905551110001@s.whatsapp.net"],
    }
    assert conforms(leave["payload"], GROUP_FIELDS)["type"] == "leave"
    joined = conforms(joined["payload"], JOINED_FIELDS)
    assert joined["chat_id"] == group and joined["jids"] == [device.jid] and joined["type"] == "join"
    # No such event at the peer: ours, by our name and payload, in its envelope.
    assert settings_["payload"]["locked"] is True and settings_["payload"]["group_id"] == group


def test_our_lifecycle_and_test_events_come_in_the_peer_envelope(
    allow_private, task_worker, receiver, attempt_log, org
):
    device = make_device(org)
    endpoint = peer_endpoint(org, f"{receiver.url}/peer", ["device.connected", "message.sent"])
    from django.db import transaction

    with transaction.atomic():
        webhooks.dispatch_event(
            device=device, event="device.connected", payload=events.device_payload(device)
        )
    attempt_log.wait_final(1)
    connected = peer_body(receiver.requests[0], endpoint, device, "device.connected")
    assert connected["payload"]["phone"] == device.phone and RFC3339.match(connected["timestamp"])

    webhooks.send_test_event(organization=org, endpoint=endpoint)
    attempt_log.wait_final(2)
    test = json.loads(receiver.requests[1].body)
    assert test["event"] == "webhook.test" and set(test) == ENVELOPE
    assert test["device_id"] == "" and test["session_id"] == ""


def test_redelivery_sends_the_peer_body_as_it_was_sent(
    allow_private, task_worker, receiver, attempt_log, org
):
    device = make_device(org)
    endpoint = peer_endpoint(org, f"{receiver.url}/peer", ["message"])
    receive_message(device, "bir")
    attempt_log.wait_final(1)
    first = WebhookDelivery.objects.get()
    webhooks.redeliver(organization=org, delivery=first)
    attempt_log.wait_final(2)
    one, two = receiver.requests
    assert one.body == two.body == first.body.encode()
    assert one.headers["idempotency-key"] == two.headers["idempotency-key"]
    assert json.loads(two.body)["session_id"] == str(device.pk)
    assert peer_body(two, endpoint, device, "message")["payload"]["body"] == "bir"


# Events other parts of the house add under the peer's own names, and LID keys in our message payloads: passed
# on in the peer's fields (synthetic payloads, as those events are emitted elsewhere).
SYNTHETIC = [
    (
        "message",
        {
            "id": "3EB0C127D7BACC83D6A1",
            "chat_id": "628987654321@s.whatsapp.net",
            "chat_lid": "251556368777000@lid",
            "from": "628123456789@s.whatsapp.net",
            "from_lid": "251556368777322@lid",
            "from_name": "John Doe",
            "from_me": False,
            "timestamp": "2023-10-15T10:30:00.250000Z",
            "kind": "text",
            "text": "Hello, how are you?",
            "caption": "",
            "media": None,
            "status": "received",
        },
        "message",
        lambda p: (
            conforms(p, MESSAGE_FIELDS, MESSAGE_REQUIRED)
            == {
                "id": "3EB0C127D7BACC83D6A1",
                "chat_id": "628987654321@s.whatsapp.net",
                "chat_lid": "251556368777000@lid",
                "from": "628123456789@s.whatsapp.net",
                "from_lid": "251556368777322@lid",
                "from_name": "John Doe",
                "timestamp": "2023-10-15T10:30:00Z",
                "is_from_me": False,
                "body": "Hello, how are you?",
            }
        ),
    ),
    (
        "call.offer",
        {
            "call_id": "ABC123DEF456",
            "from": "628987654321@s.whatsapp.net",
            "auto_rejected": True,
            "remote_platform": "android",
            "remote_version": "2.24.1.5",
            "timestamp": "2026-02-05T12:00:00Z",
        },
        "call.offer",
        lambda p: conforms(p, CALL_FIELDS)["call_id"] == "ABC123DEF456" and p["auto_rejected"] is True,
    ),
    (
        "label.edit",
        {"label_id": "3", "name": "VIP", "color": 2, "deleted": False, "timestamp": "2026-03-01T09:00:00Z"},
        "label.edit",
        lambda p: p == {"label_id": "3", "name": "VIP", "color": 2, "deleted": False},
    ),
    (
        "label.association",
        {"label_id": "3", "labeled": True, "chat_id": "628987654321@s.whatsapp.net"},
        "label.association",
        lambda p: p == {"label_id": "3", "labeled": True, "chat_id": "628987654321@s.whatsapp.net"},
    ),
    (
        "newsletter.joined",
        {"newsletter_id": "120363123456789@newsletter", "name": "Tech News Daily", "description": "x"},
        "newsletter.joined",
        lambda p: p["newsletter_id"] == "120363123456789@newsletter" and p["name"] == "Tech News Daily",
    ),
]


@pytest.mark.parametrize(("ours", "payload", "theirs", "check"), SYNTHETIC, ids=[s[0] for s in SYNTHETIC])
def test_events_added_elsewhere_pass_in_the_peers_fields(
    ours, payload, theirs, check, monkeypatch, allow_private, task_worker, receiver, attempt_log, org
):
    from django.db import transaction

    monkeypatch.setitem(queueing.EVENT_NAMES, ours, ours)  # as the helper adding it does
    device = make_device(org)
    endpoint = peer_endpoint(org, f"{receiver.url}/peer", [ours])
    with transaction.atomic():
        webhooks.dispatch_event(device=device, event=ours, payload=payload)
    attempt_log.wait_final(1)
    body = peer_body(receiver.requests[0], endpoint, device, theirs)
    assert check(body["payload"]), body["payload"]
    if theirs != "message":
        assert RFC3339.match(body["timestamp"])


# ------------------------------------------------------------------------------------------ choosing it


@pytest.fixture
def admin_client(org):
    from accounts.models import Role
    from tests.conftest import add_member

    return client_for(add_member(org, Role.ADMIN))


def test_the_dashboard_form_chooses_the_format(admin_client, org, allow_private):
    form = admin_client.get(reverse("webhooks:create"))
    assert 'name="payload_format"' in form.text and "go-whatsapp-web-multidevice" in form.text

    made = admin_client.post(
        reverse("webhooks:create"),
        {"url": "http://127.0.0.1:8080/in", "events": ["message"], "active": "on", "payload_format": "peer"},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert made.status_code == 302 and endpoint.payload_format == "peer"
    listing = admin_client.get(reverse("webhooks:list"))
    assert "reference server" in listing.text

    edit = reverse("webhooks:detail", args=[endpoint.pk])
    assert re.search(r'name="payload_format" value="peer"[^>]*checked', admin_client.get(edit).text)
    admin_client.post(
        edit, {"url": endpoint.url, "events": ["message"], "active": "on", "payload_format": "waportal"}
    )
    endpoint.refresh_from_db()
    assert endpoint.payload_format == "waportal"
    assert org.audit_events.filter(action="webhook.update", details__payload_format="waportal").exists()


def test_a_bad_format_is_refused_naming_the_field(admin_client, org, allow_private):
    response = admin_client.post(
        reverse("webhooks:create"),
        {"url": "http://127.0.0.1:8080/in", "events": ["message"], "payload_format": "evolution"},
    )
    assert response.status_code == 200 and not WebhookEndpoint.objects.exists()
    assert "Payload format: evolution is not one of the choices." in response.text


def test_another_organizations_endpoint_is_404(org, other_org, allow_private):
    from accounts.models import Role
    from tests.conftest import add_member

    theirs = peer_endpoint(other_org, "http://127.0.0.1:9/hook", ["message"])
    client = client_for(add_member(org, Role.ADMIN))
    answer = client.post(
        reverse("webhooks:detail", args=[theirs.pk]),
        {"url": theirs.url, "events": ["message"], "payload_format": "waportal"},
    )
    assert answer.status_code == 404
    theirs.refresh_from_db()
    assert theirs.payload_format == "peer"


# ------------------------------------------------------------------------------------------ the peer's API


def test_the_peers_api_makes_peer_format_webhooks(
    allow_private, task_worker, receiver, attempt_log, org, owner
):
    from tests.api.conftest import ApiClient

    api = ApiClient(make_api_key(org, created_by=owner))
    device = make_device(org)
    set_ = api.patch(
        f"/devices/{device.pk}/webhook",
        {
            "webhook_url": f"{receiver.url}/device",
            "webhook_secret": "their-own-secret",
            "webhook_events": ["message", "message.ack", "chat_presence", "group.joined"],
        },
    )
    assert set_.status_code == 200, set_.json()
    assert set_.json()["results"]["webhook_events"] == [
        "chat_presence",
        "group.participants",
        "message",
        "message.ack",
    ]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.payload_format == "peer" and endpoint.secret == "their-own-secret"

    receive_message(device, "selam")
    attempt_log.wait_final(1)
    body = peer_body(receiver.requests[0], endpoint, device, "message")
    assert body["payload"]["body"] == "selam"

    made = api.post("/devices", {"device_id": "sales", "webhook_url": f"{receiver.url}/new"})
    assert made.status_code == 200, made.json()
    new = WebhookEndpoint.objects.exclude(pk=endpoint.pk).get()
    assert new.payload_format == "peer"
    assert [d.pk for d in new.devices.all()] == [int(made.json()["results"]["id"])]
    # A dashboard choice stands: the API changing the URL keeps the format.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(payload_format="waportal")
    api.patch(f"/devices/{device.pk}/webhook", {"webhook_url": f"{receiver.url}/moved"})
    endpoint.refresh_from_db()
    assert endpoint.payload_format == "waportal" and endpoint.url.endswith("/moved")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"webhook_url": "ftp://hooks.example.com/wa"}, "webhook_url"),
        (
            {"webhook_url": "https://hooks.example.com/wa", "webhook_events": ["message.acked"]},
            "webhook_events",
        ),
        ({"webhook_url": "https://hooks.example.com/wa", "webhook_secret": "short"}, "webhook_secret"),
    ],
)
def test_the_peers_api_refuses_bad_webhooks_naming_the_field(org, owner, body, field):
    from tests.api.conftest import ApiClient

    device = make_device(org)
    answer = ApiClient(make_api_key(org, created_by=owner)).patch(f"/devices/{device.pk}/webhook", body)
    assert answer.status_code == 400 and answer.json()["message"].startswith(f"{field}:"), answer.json()
    assert not WebhookEndpoint.objects.exists()


def test_another_organizations_device_webhook_is_404(org, other_org, owner, allow_private):
    from tests.api.conftest import ApiClient

    theirs = make_device(other_org)
    answer = ApiClient(make_api_key(org, created_by=owner)).patch(
        f"/devices/{theirs.pk}/webhook", {"webhook_url": "http://127.0.0.1:9/hook"}
    )
    assert answer.status_code == 404 and not WebhookEndpoint.objects.exists()
