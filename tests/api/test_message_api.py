"""The /message endpoints: behaviour on the sandbox (the conventions every endpoint keeps: test_conventions.py)."""

import pytest

from messaging.models import Message
from tests.api.conftest import PEER, ApiClient, error
from tests.api.endpoints import MESSAGE_ID

# ------------------------------------------------------------------------------------------ on the sandbox


@pytest.mark.django_db(transaction=True)
def test_acting_on_messages_on_the_sandbox(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    peer = wa.sandbox.peer_phones("quiet")[0]
    chat = f"{peer}@s.whatsapp.net"

    sent = api.post("/send/message", {"phone": chat, "message": "ilk hali"}).json()["results"]["message_id"]
    answer = api.post(f"/message/{sent}/update", {"phone": chat, "message": "düzenlendi"}).json()
    assert answer["code"] == "SUCCESS"
    assert wa.sandbox.message_state(sent)["text"] == "düzenlendi"
    assert Message.objects.get(wa_id=sent).text == "düzenlendi"

    assert api.post(f"/message/{sent}/reaction", {"phone": chat, "emoji": "👍"}).json()["code"] == "SUCCESS"
    assert "👍" in wa.sandbox.message_state(sent)["reactions"].values()
    assert api.post(f"/message/{sent}/star", {"phone": chat}).json()["code"] == "SUCCESS"
    assert Message.objects.get(wa_id=sent).starred
    assert api.post(f"/message/{sent}/unstar", {"phone": chat}).json()["code"] == "SUCCESS"
    assert not Message.objects.get(wa_id=sent).starred
    assert api.post(f"/message/{sent}/revoke", {"phone": chat}).json()["code"] == "SUCCESS"
    assert wa.sandbox.message_state(sent)["revoked"]
    assert Message.objects.get(wa_id=sent).revoked_at is not None

    # a message the peer sends us: read it, delete it for me, download its media
    incoming = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, kind="image", caption="foto")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == incoming)
    assert api.post(f"/message/{incoming}/read", {"phone": peer}).json()["code"] == "SUCCESS"
    assert device.jid in wa.sandbox.message_state(incoming)["read_by"]
    stored = Message.objects.get(wa_id=incoming)
    assert stored.read_by_me_at is not None and stored.chat.unread_count == 0

    download = api.client.get(f"/message/{incoming}/download", headers=api.headers())
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert content.startswith(b"\x89PNG") and download["Content-Type"] == "image/png"
    # a real picture may be shown; nothing sniffs it into something else, and it runs nothing
    assert download["Content-Disposition"].startswith("inline")
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Security-Policy"].startswith("sandbox")
    # not kept here (or cleaned up): fetched from WhatsApp again by its media reference
    Message.objects.filter(wa_id=incoming).update(media="")
    again = api.client.get(f"/message/{incoming}/download", headers=api.headers())
    assert again.status_code == 200 and b"".join(again.streaming_content) == content
    assert Message.objects.get(wa_id=incoming).media

    assert api.post(f"/message/{incoming}/delete", {"phone": peer}).json()["code"] == "SUCCESS"
    assert device.jid in wa.sandbox.message_state(incoming)["deleted_for"]
    assert Message.objects.get(wa_id=incoming).deleted_for_me_at is not None

    # WhatsApp's rules come back as the contract's errors
    error(
        api.post(f"/message/{incoming}/update", {"phone": peer, "message": "x"}),
        400,
        "VALIDATION_ERROR",
        "message_id",
    )
    error(api.post("/message/3EB0NOSUCHMESSAGE/reaction", {"phone": chat, "emoji": "👍"}), 404, "NOT_FOUND")
    error(api.client.get(f"/message/{sent}/download", headers=api.headers()), 404, "NOT_FOUND")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("revoke", {"phone": "nobody"}, "phone"),
        ("reaction", {"phone": PEER, "emoji": "👍" * 20}, "emoji"),
        ("update", {"phone": PEER, "message": ""}, "message"),
        ("read", {"phone": 12}, "phone"),
        ("star", {"phone": None}, "phone"),
    ],
)
def test_malformed_field_is_400_naming_it(api, action, body, field):
    answer = error(api.post(f"/message/{MESSAGE_ID}/{action}", body), 400, "VALIDATION_ERROR")
    assert answer["message"].startswith(f"{field}:"), answer
