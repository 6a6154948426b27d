"""The /group endpoints: behaviour on the sandbox (the conventions every endpoint keeps: test_conventions.py)."""

import pytest

from tests.api.conftest import PEER, ApiClient, error
from tests.api.endpoints import GROUP, PNG, upload

# ------------------------------------------------------------------------------------------ on the sandbox


def jid_of(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


@pytest.mark.django_db(transaction=True)
def test_group_lifecycle_on_the_sandbox(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    a, b, c = wa.sandbox.peer_phones("echo")[:2] + wa.sandbox.peer_phones("react")[:1]

    created = api.post("/group", {"title": "Yeni Grup", "participants": [a, "+" + b]}).json()
    assert created["code"] == "SUCCESS", created
    group = created["results"]["group_id"]
    assert group.endswith("@g.us")
    state = wa.sandbox.group_state(group)
    assert state["name"] == "Yeni Grup" and set(state["participants"]) == {device.jid, jid_of(a), jid_of(b)}

    added = api.post("/group/participants", {"group_id": group, "participants": [c, "15550000000"]}).json()
    rows = {r["participant"]: r for r in added["results"]}
    assert rows[jid_of(c)]["status"] == "success"
    assert (
        rows["15550000000@s.whatsapp.net"]["status"] == "error"
        and rows["15550000000@s.whatsapp.net"]["message"]
    )
    promoted = api.post("/group/participants/promote", {"group_id": group, "participants": [a]}).json()
    assert promoted["results"] == [{"participant": jid_of(a), "status": "success", "message": ""}]
    assert wa.sandbox.group_state(group)["participants"][jid_of(a)] == "admin"
    assert (
        api.post("/group/participants/demote", {"group_id": group, "participants": [a]}).json()["code"]
        == "SUCCESS"
    )
    assert (
        api.post("/group/participants/remove", {"group_id": group, "participants": [b]}).json()["code"]
        == "SUCCESS"
    )
    assert jid_of(b) not in wa.sandbox.group_state(group)["participants"]

    info = api.get("/group/info", {"group_id": group}).json()["results"]
    assert info["jid"] == group and {p["jid"] for p in info["participants"]} == {
        device.jid,
        jid_of(a),
        jid_of(c),
    }

    assert api.post("/group/name", {"group_id": group, "name": "Yeni Ad"}).json()["code"] == "SUCCESS"
    assert api.post("/group/topic", {"group_id": group, "topic": "Konu"}).json()["code"] == "SUCCESS"
    assert api.post("/group/locked", {"group_id": group, "locked": "true"}).json()["code"] == "SUCCESS"
    assert api.post("/group/announce", {"group_id": group, "announce": 1}).json()["code"] == "SUCCESS"
    photo = api.post_form("/group/photo", {"group_id": group, "photo": upload("g.png", PNG)}).json()
    assert photo["code"] == "SUCCESS" and photo["results"]["picture_id"]
    state = wa.sandbox.group_state(group)
    assert (state["name"], state["topic"], state["locked"], state["announce"]) == (
        "Yeni Ad",
        "Konu",
        True,
        True,
    )

    link = api.get("/group/invite-link", {"group_id": group}).json()["results"]["invite_link"]
    assert link == state["invite_link"]
    new_link = api.get("/group/invite-link", {"group_id": group, "reset": "true"}).json()["results"][
        "invite_link"
    ]
    assert new_link.startswith("https://chat.whatsapp.com/") and new_link != link

    # join requests: admins approve
    wa.sandbox.set_join_approval(group=group)
    wa.sandbox.peer_join_request(from_phone=b, group=group)
    wa.sandbox.peer_join_request(from_phone=wa.sandbox.peer_phones("media")[0], group=group)
    pending = api.get("/group/participant-requests", {"group_id": group}).json()["results"]
    assert {r["jid"] for r in pending} == {jid_of(b), jid_of(wa.sandbox.peer_phones("media")[0])}
    approved = api.post(
        "/group/participant-requests/approve", {"group_id": group, "participants": [b]}
    ).json()
    assert approved["results"][0]["status"] == "success"
    rejected = api.post(
        "/group/participant-requests/reject",
        {"group_id": group, "participants": [wa.sandbox.peer_phones("media")[0]]},
    ).json()
    assert rejected["results"][0]["status"] == "success"
    assert jid_of(b) in wa.sandbox.group_state(group)["participants"]
    assert api.get("/group/participant-requests", {"group_id": group}).json()["results"] == []

    assert api.post("/group/leave", {"group_id": group}).json()["code"] == "SUCCESS"
    assert device.jid not in wa.sandbox.group_state(group)["participants"]
    error(api.post("/group/name", {"group_id": group, "name": "x"}), 403, "FORBIDDEN")


@pytest.mark.django_db(transaction=True)
def test_join_with_link_on_the_sandbox(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    group = next(g for g in wa.sandbox.network_summary()["groups"] if not g["join_approval"])
    joined = api.post("/group/join-with-link", {"link": group["invite_link"]}).json()
    assert joined["results"]["group_id"] == group["jid"]
    assert device.jid in wa.sandbox.group_state(group["jid"])["participants"]
    error(
        api.post("/group/join-with-link", {"link": "https://chat.whatsapp.com/NOSUCHCODE123"}),
        404,
        "NOT_FOUND",
    )


@pytest.mark.django_db(transaction=True)
def test_refusals_name_no_group_the_number_is_not_in(wa, org, api_key):
    """Another organization's group (or any group we are not in) is not described to us by its refusals."""
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    secret = next(g for g in wa.sandbox.network_summary()["groups"] if device.jid not in g["participants"])
    refusals = [
        api.get("/group/info", {"group_id": secret["jid"]}),
        api.get("/group/invite-link", {"group_id": secret["jid"]}),
        api.get("/group/participant-requests", {"group_id": secret["jid"]}),
        api.post("/group/name", {"group_id": secret["jid"], "name": "ours now"}),
        api.post("/group/participants", {"group_id": secret["jid"], "participants": [device.phone]}),
        api.post("/group/leave", {"group_id": secret["jid"]}),
    ]
    for response in refusals:
        body = error(response, response.status_code)
        assert response.status_code in (403, 404), body
        assert secret["name"] not in body["message"] and "not a participant of this group" in body["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/group", {"title": "", "participants": ["905551112233"]}, "title"),
        ("/group", {"title": "G", "participants": []}, "participants"),
        ("/group", {"title": "G", "participants": ["not a number"]}, "participants"),
        ("/group", {"title": "G", "participants": "905551112233"}, "participants"),
        ("/group/participants", {"group_id": PEER, "participants": ["905551112233"]}, "group_id"),
        ("/group/participants/remove", {"group_id": "x y", "participants": ["905551112233"]}, "group_id"),
        ("/group/join-with-link", {"link": "https://evil.example/abc"}, "link"),
        ("/group/leave", {"group_id": ["120363000000000001@g.us"]}, "group_id"),
        ("/group/locked", {"group_id": GROUP, "locked": "maybe"}, "locked"),
        ("/group/announce", {"group_id": GROUP, "announce": None}, "announce"),
        ("/group/name", {"group_id": GROUP, "name": "x" * 101}, "name"),
    ],
)
def test_malformed_field_is_400_naming_it(api, path, body, field):
    answer = error(api.post(path, body), 400, "VALIDATION_ERROR")
    assert answer["message"].startswith(f"{field}:"), answer


@pytest.mark.django_db
def test_malformed_query_and_photo(api):
    error(api.get("/group/info", {"group_id": "someone@s.whatsapp.net"}), 400, "VALIDATION_ERROR", "group_id")
    error(
        api.get("/group/invite-link", {"group_id": GROUP, "reset": "perhaps"}),
        400,
        "VALIDATION_ERROR",
        "reset",
    )
    error(
        api.post_form("/group/photo", {"group_id": GROUP, "photo": upload("g.png", b"text")}),
        415,
        field="photo",
    )
