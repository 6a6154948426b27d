"""The /chats and /chat endpoints (read only, no required input): behaviour on the sandbox (the conventions: test_conventions.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import history
from messaging.models import Chat, Message
from tests.api.conftest import PEER, ApiClient, error
from tests.conftest import make_api_key

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


# ------------------------------------------------------------------------------------------ big histories


def _history(device, count: int, *, jid: str = PEER) -> Chat:
    """A chat whose message i (0 oldest) is 'message i', from me when i % 3 == 0, an image when i % 4 == 0,
    deleted for me when i % 10 == 9, at START + i minutes."""
    chat, _ = Chat.objects.get_or_create(
        organization=device.organization, device=device, jid=jid, defaults={"last_message_at": START}
    )
    Message.objects.bulk_create(
        Message(
            organization=device.organization,
            device=device,
            chat=chat,
            wa_id=f"HIST{chat.pk}X{i:06d}",
            from_me=i % 3 == 0,
            kind="image" if i % 4 == 0 else "text",
            text=f"message {i}" + (" needle in it" if i % 25 == 7 else ""),
            caption="haystack caption" if i % 4 == 0 else "",
            status="received",
            timestamp=START + timedelta(minutes=i),
            deleted_for_me_at=START if i % 10 == 9 else None,
        )
        for i in range(count)
    )
    return chat


START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _texts(api, path, **params) -> tuple[list[str], dict]:
    results = api.get(path, params).json()["results"]
    return [m["text"] for m in results["data"]], results["pagination"]


def _expected(count: int, keep=lambda i: True) -> list[str]:
    return [
        f"message {i}" + (" needle in it" if i % 25 == 7 else "")
        for i in reversed(range(count))
        if i % 10 != 9 and keep(i)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({}, lambda i: True),
        ({"media_only": "true"}, lambda i: i % 4 == 0),
        ({"is_from_me": "true"}, lambda i: i % 3 == 0),
        ({"is_from_me": "false"}, lambda i: i % 3 != 0),
        ({"start_time": "2025-03-01T12:40:00Z"}, lambda i: i >= 40),
        ({"end_time": "2025-03-01T15:40:00+03:00"}, lambda i: i <= 40),
        (
            {"start_time": "2025-03-01T12:10:00Z", "end_time": "2025-03-01T12:50:00Z", "is_from_me": "false"},
            lambda i: 10 <= i <= 50 and i % 3 != 0,
        ),
        ({"search": "needle"}, lambda i: i % 25 == 7),
        ({"search": "NEEDLE In"}, lambda i: i % 25 == 7),
        ({"search": "haystack", "media_only": "true"}, lambda i: i % 4 == 0),
    ],
)
def test_offset_pages_of_each_filter_cover_the_history_once_newest_first(api, device, params, keep):
    _history(device, 120)
    expected = _expected(120, keep)
    seen, offset = [], 0
    while True:
        texts, pagination = _texts(api, f"/chat/{PEER}/messages", limit=7, offset=offset, **params)
        assert pagination["limit"] == 7 and pagination["offset"] == offset
        assert pagination["total"] == len(expected)  # small history: the total is exact
        if not texts:
            break
        seen += texts
        offset += 7
    assert seen == expected


@pytest.mark.django_db
def test_search_finds_whole_words_in_any_case_on_every_database(api, device):
    _history(device, 60)
    texts, _ = _texts(api, f"/chat/{PEER}/messages", search="Needle")
    assert texts == _expected(60, lambda i: i % 25 == 7)
    texts, _ = _texts(api, f"/chat/{PEER}/messages", search="nothing-like-this")
    assert texts == []


@pytest.mark.django_db
def test_a_total_past_the_lookahead_is_a_lower_bound_that_moves_with_the_page(api, device, monkeypatch):
    monkeypatch.setattr(history, "TOTAL_LOOKAHEAD", 10)
    _history(device, 100)  # 90 visible
    assert _texts(api, f"/chat/{PEER}/messages", limit=5)[1]["total"] == 15
    assert _texts(api, f"/chat/{PEER}/messages", limit=5, offset=50)[1]["total"] == 65
    assert _texts(api, f"/chat/{PEER}/messages", limit=5, offset=80)[1]["total"] == 90  # near the end: exact
    texts, pagination = _texts(api, f"/chat/{PEER}/messages", limit=5, offset=500)
    assert texts == [] and pagination["total"] == 90  # past the end: exact, counted up to the offset


@pytest.mark.django_db
def test_chats_offset_pages_most_recent_first(api, device):
    for i in range(30):
        Chat.objects.create(
            organization=device.organization,
            device=device,
            jid=f"9055500{i:05d}@s.whatsapp.net",
            name=f"Chat {i}",
            last_message_at=START + timedelta(minutes=i),
        )
    names, offset = [], 0
    while True:
        results = api.get("/chats", {"limit": 8, "offset": offset}).json()["results"]
        assert results["pagination"]["total"] == 30
        if not results["data"]:
            break
        names += [c["name"] for c in results["data"]]
        offset += 8
    assert names == [f"Chat {i}" for i in reversed(range(30))]
    found = api.get("/chats", {"search": "chat 2"}).json()["results"]
    assert [c["name"] for c in found["data"]] == [
        f"Chat {i}" for i in (29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 2)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_time": "yesterday"}, "start_time"),
        ({"end_time": "2025-13-01T00:00:00Z"}, "end_time"),
        ({"end_time": "0001-01-01T00:30:00+23:30"}, "end_time"),  # before the year 1 in UTC
        ({"media_only": "maybe"}, "media_only"),
        ({"is_from_me": "perhaps"}, "is_from_me"),
    ],
)
def test_bad_filters_are_400_naming_the_field(api, device, params, field):
    _history(device, 3)
    answer = error(api.get(f"/chat/{PEER}/messages", params), 400, "VALIDATION_ERROR")
    assert answer["message"].startswith(f"{field}:"), answer


@pytest.mark.django_db
def test_an_offset_past_what_postgresql_allows_is_a_time_like_any_other(api, device):
    _history(device, 3)  # (PostgreSQL refuses an offset over 15:59 in a time it is sent: a 500 once)
    found = api.get(
        f"/chat/{PEER}/messages", {"start_time": "0057-09-04T07:20:18+23:28", "media_only": "true"}
    )
    assert found.status_code == 200
    assert [m["text"] for m in found.json()["results"]["data"]] == ["message 0"]
    found = api.get(f"/chat/{PEER}/messages", {"end_time": "2025-03-02T23:00:00+23:59"})
    assert len(found.json()["results"]["data"]) == 3


@pytest.mark.django_db
def test_a_range_that_ends_before_it_starts_holds_no_messages(api, device):
    _history(device, 3)
    params = {"start_time": "2025-03-02T00:00:00Z", "end_time": "2025-03-01T00:00:00Z"}
    answer = api.get(f"/chat/{PEER}/messages", params)
    assert answer.status_code == 200 and answer.json()["results"]["data"] == []


@pytest.mark.django_db
def test_another_organizations_key_does_not_see_the_history(device, other_org, other_device):
    _history(device, 5)
    theirs = ApiClient(make_api_key(other_org))
    error(theirs.get(f"/chat/{PEER}/messages", {"device_id": device.pk}), 404)
    assert theirs.get("/chats", {"device_id": other_device.pk}).json()["results"]["data"] == []


def _queries(api, path, params) -> int:
    api.get(path, params)  # once before: the key's first use of the day is written down
    with CaptureQueriesContext(connection) as captured:
        assert api.get(path, params).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"offset": 40},
        {"media_only": "true", "offset": 5},
        {"is_from_me": "true"},
        {"start_time": "2025-03-01T12:05:00Z", "end_time": "2025-03-02T12:00:00Z"},
        {"search": "message"},
    ],
)
def test_history_queries_do_not_grow_with_the_history(api, device, params):
    chat = _history(device, 60)
    small = _queries(api, f"/chat/{PEER}/messages", {"limit": 10, **params})
    _history(device, 0)
    Message.objects.filter(chat=chat).delete()
    _history(device, 1500)
    assert _queries(api, f"/chat/{PEER}/messages", {"limit": 10, **params}) == small
    assert small <= 7  # SQLite search asks the FTS index first how common the term is


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{}, {"offset": 20}, {"search": "Chat"}])
def test_chats_queries_do_not_grow_with_the_chats(api, device, params):
    def add(n, start):
        Chat.objects.bulk_create(
            Chat(
                organization=device.organization,
                device=device,
                jid=f"90555{i:07d}@s.whatsapp.net",
                name=f"Chat {i}",
            )
            for i in range(start, start + n)
        )

    add(30, 0)
    small = _queries(api, "/chats", {"limit": 10, **params})
    add(1500, 30)
    assert _queries(api, "/chats", {"limit": 10, **params}) == small
    assert small <= (6 if "search" in params else 5)  # SQLite asks the FTS index first how common the term is


# ------------------------------------------------------------------------------------------ assigned member


@pytest.mark.django_db
def test_a_chat_is_assigned_to_a_member_by_email_and_unassigned_with_none(api, org, owner, device):
    from accounts.models import AuditEvent

    answer = api.post(f"/chat/{PEER}/assign", {"email": owner.email.upper()})
    assert answer.status_code == 200, answer.content
    results = answer.json()["results"]
    assert results["chat_jid"] == PEER and results["assigned_to"] == owner.email
    chat = Chat.objects.get(device=device, jid=PEER)
    assert chat.assigned_to == owner
    assert api.get("/chats").json()["results"]["data"][0]["assigned_to"] == owner.email
    audit = AuditEvent.objects.filter(organization=org, action="chat.assign").get()
    assert audit.details["assignee"] == owner.email and audit.api_key_id is not None

    answer = api.post(f"/chat/{PEER}/assign", {"email": ""})
    assert answer.status_code == 200 and answer.json()["results"]["assigned_to"] is None
    chat.refresh_from_db()
    assert chat.assigned_to is None


@pytest.mark.django_db
def test_assigning_to_someone_outside_the_organization_is_400_naming_email(api, device, outsider):
    for email in (outsider.email, "nobody@example.com"):
        error(api.post(f"/chat/{PEER}/assign", {"email": email}), 400, "VALIDATION_ERROR", "email")
    error(api.post("/chat/not-a-chat/assign", {"email": ""}), 400, "VALIDATION_ERROR", "chat_jid")
    error(api.post(f"/chat/{PEER}/assign", {"email": 5}), 400, "VALIDATION_ERROR", "email")
    assert not Chat.objects.filter(device=device, assigned_to__isnull=False).exists()


@pytest.mark.django_db
def test_assigning_needs_a_full_key_of_the_devices_organization(read_only_api, other_api_key, owner, device):
    error(read_only_api.post(f"/chat/{PEER}/assign", {"email": owner.email}), 403)
    theirs = ApiClient(other_api_key, device=device)
    error(theirs.post(f"/chat/{PEER}/assign", {"email": owner.email}), 404)
    assert not Chat.objects.filter(device=device, assigned_to__isnull=False).exists()
