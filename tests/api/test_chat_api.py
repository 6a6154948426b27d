"""The /chats and /chat endpoints (read only, no required input): behaviour on the sandbox (the conventions: test_conventions.py)."""

import pytest

from tests.api.conftest import PEER, ApiClient, error

# ------------------------------------------------------------------------------------------ on the sandbox


@pytest.mark.django_db(transaction=True)
def test_chats_and_their_messages_from_stored_history(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    quiet = wa.sandbox.peer_phones("quiet")[0]
    other = wa.peers[0]
    incoming = wa.sandbox.peer_send(from_phone=quiet, to_jid=device.jid, text="merhaba dünya")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == incoming)
    for text in ("bir", "iki", "üç"):
        assert (
            api.post("/send/message", {"phone": quiet, "message": text}).json()["results"]["status"] == "sent"
        )
    api.post("/send/message", {"phone": other, "message": "başka"})

    chats = api.get("/chats").json()["results"]
    assert chats["pagination"]["total"] == 2
    assert {c["jid"] for c in chats["data"]} == {f"{quiet}@s.whatsapp.net", f"{other}@s.whatsapp.net"}
    found = api.get("/chats", {"search": quiet[-6:]}).json()["results"]["data"]
    assert [c["jid"] for c in found] == [f"{quiet}@s.whatsapp.net"]

    page = api.get(f"/chat/{quiet}@s.whatsapp.net/messages", {"limit": 2}).json()["results"]
    assert page["pagination"] == {"limit": 2, "offset": 0, "total": 4}
    assert [m["text"] for m in page["data"]] == ["üç", "iki"]  # newest first
    rest = api.get(f"/chat/{quiet}@s.whatsapp.net/messages", {"limit": 2, "offset": 2}).json()["results"][
        "data"
    ]
    assert [m["text"] for m in rest] == ["bir", "merhaba dünya"]
    assert rest[-1]["id"] == incoming and rest[-1]["from_me"] is False
    searched = api.get(f"/chat/{quiet}/messages", {"search": "dünya"}).json()["results"]["data"]
    assert [m["id"] for m in searched] == [incoming]

    error(api.get("/chat/905000000000@s.whatsapp.net/messages"), 404, "NOT_FOUND", "chat_jid")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/chats", {"limit": 0}, "limit"),
        ("/chats", {"limit": "ten"}, "limit"),
        ("/chats", {"offset": -1}, "offset"),
        (f"/chat/{PEER}/messages", {"limit": 1000}, "limit"),
        ("/chat/not-a-chat/messages", {}, "chat_jid"),
    ],
)
def test_malformed_query_is_400_naming_the_field(api, path, params, field):
    answer = error(api.get(path, params), 400, "VALIDATION_ERROR")
    assert answer["message"].startswith(f"{field}:"), answer
