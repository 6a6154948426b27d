"""Conformance to the reference server (go-whatsapp-web-multidevice v9.2) as /work/shared/spec/PEER-V9.md states it.

Written from the peer's documented shapes, not from our answers: a client with a strict response model must
parse what we send. `shape(...)` checks the envelope, whether `results` is there, and the type of each field.
"""

from __future__ import annotations

import csv
import io
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from messaging.models import Chat, Message
from tests.api.conftest import PEER, ApiClient
from tests.api.endpoints import PNG, upload

# Every route of PEER-V9.md's table of "endpoints beyond the seed" (method, path as django-ninja spells it).
PEER_ROUTES = [
    ("get", "/app/status"),
    ("get", "/app/info"),
    ("get", "/health"),
    ("get", "/devices"),
    ("post", "/devices"),
    ("get", "/devices/{device_id}"),
    ("delete", "/devices/{device_id}"),
    ("get", "/devices/{device_id}/login"),
    ("post", "/devices/{device_id}/login/code"),
    ("post", "/devices/{device_id}/logout"),
    ("post", "/devices/{device_id}/reconnect"),
    ("get", "/devices/{device_id}/status"),
    ("get", "/devices/{device_id}/webhook"),
    ("patch", "/devices/{device_id}/webhook"),
    ("get", "/user/business-profile"),
    ("post", "/send/sticker"),
    ("post", "/send/chat-presence"),
    ("post", "/message/{message_id}/forward"),
    ("get", "/message/{message_id}/download"),
    ("get", "/group/info"),
    ("get", "/group/info-from-link"),
    ("get", "/group/invite-link"),
    ("get", "/group/participants"),
    ("get", "/group/participants/export"),
    ("post", "/group/photo"),
    ("post", "/group/name"),
    ("post", "/group/topic"),
    ("post", "/group/locked"),
    ("post", "/group/announce"),
    ("get", "/newsletter/messages"),
    ("get", "/chats"),
    ("get", "/chat/{chat_jid}/messages"),
    ("post", "/chat/{chat_jid}/pin"),
    ("post", "/chat/{chat_jid}/archive"),
    ("post", "/chat/{chat_jid}/disappearing"),
    ("post", "/chat/{chat_jid}/label"),
    ("post", "/call/reject"),
]


# Routes of the table we do not serve yet (each commit that adds one takes it out of here).
NOT_YET: set = set()


def _route_params():
    return [
        pytest.param(
            method,
            path,
            id=f"{method} {path}",
            marks=[pytest.mark.xfail(strict=True, reason="not served yet")]
            if (method, path) in NOT_YET
            else [],
        )
        for method, path in PEER_ROUTES
    ]


def shape(response, fields: dict | None = None, *, results: bool | type = True) -> dict | list | None:
    """The peer's success envelope: 200, code SUCCESS, a message; `results` absent when results=False, else of
    the given type (dict by default) with each of `fields` present and of its type. Returns `results`."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["code"] == "SUCCESS" and isinstance(body["message"], str), body
    if results is False:
        assert "results" not in body, body
        return None
    assert "results" in body, body
    kind = dict if results is True else results
    assert isinstance(body["results"], kind), body
    for name, typ in (fields or {}).items():
        assert name in body["results"], (name, body)
        assert isinstance(body["results"][name], typ), (name, body["results"][name])
    return body["results"]


def rows_shape(rows: list, fields: dict) -> None:
    assert isinstance(rows, list) and rows
    for row in rows:
        for name, typ in fields.items():
            assert name in row and isinstance(row[name], typ), (name, row)


_OPENAPI: dict = {}  # the document, read once for all the routes


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), _route_params())
def test_openapi_lists_every_route_of_the_peer(client, method, path):
    paths = _OPENAPI.get("paths") or _OPENAPI.setdefault("paths", client.get("/openapi.json").json()["paths"])
    assert path in paths and method in paths[path], f"{method.upper()} {path} is not in /openapi.json"


# ------------------------------------------------------------------------------------------ errors


def peer_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and isinstance(body["message"], str), body
    return body


@pytest.mark.django_db
def test_error_codes_and_statuses_as_the_peer(api, device, other_device):
    from messaging.models import Device

    body = peer_error(
        api.get("/app/status", headers={"X-Device-Id": str(other_device.pk)}), 404, "DEVICE_NOT_FOUND"
    )
    assert body["results"] == {"device_id": str(other_device.pk)}
    # the device looks linked but is not connected
    peer_error(api.get("/user/my/privacy"), 401, "AUTHENTICATION_ERROR")
    peer_error(api.get("/user/info", {"phone": "not a number"}), 400, "VALIDATION_ERROR")
    Device.objects.create(organization=device.organization, name="Second")
    peer_error(api.get("/user/my/privacy"), 400, "DEVICE_ID_REQUIRED")
    with mock.patch("messaging.gateway.call", side_effect=RuntimeError("boom")):
        peer_error(
            api.get("/user/my/privacy", headers={"X-Device-Id": str(device.pk)}), 500, "INTERNAL_SERVER_ERROR"
        )
    from messaging.whatsapp import protocol

    with mock.patch("messaging.gateway.call", side_effect=protocol.UpstreamTimeout("slow")):
        peer_error(
            api.get("/user/my/privacy", headers={"X-Device-Id": str(device.pk)}), 504, "GATEWAY_TIMEOUT"
        )


@pytest.mark.django_db(transaction=True)
def test_a_number_not_on_whatsapp_is_400_invalid_jid(wa, org, api_key):
    wa.linked_device(org)
    nobody = wa.sandbox.network_summary()["unregistered"]
    body = peer_error(ApiClient(api_key).get("/user/info", {"phone": nobody}), 400, "INVALID_JID")
    assert body["message"].startswith("phone:")


# ------------------------------------------------------------------------------------------ results left out


@pytest.mark.django_db(transaction=True)
def test_results_left_out_where_the_peer_returns_nothing(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    a, b = wa.sandbox.peer_phones("echo")[:2]
    created = shape(api.post("/group", {"title": "Boş", "participants": [a, b]}), {"group_id": str})
    group = created["group_id"]

    shape(api.post("/group/name", {"group_id": group, "name": "Yeni"}), results=False)
    shape(api.post("/group/topic", {"group_id": group, "topic": "Konu"}), results=False)
    shape(api.post("/group/locked", {"group_id": group, "locked": True}), results=False)
    shape(api.post("/group/announce", {"group_id": group, "announce": True}), results=False)
    state = wa.sandbox.group_state(group)
    assert (state["name"], state["topic"], state["locked"], state["announce"]) == ("Yeni", "Konu", True, True)
    shape(api.post("/group/leave", {"group_id": group}), results=False)

    shape(api.post("/user/pushname", {"push_name": "Ali"}), results=False)
    shape(api.post_form("/user/avatar", {"avatar": upload("me.png", PNG)}), results=False)
    newsletter = wa.sandbox.network_summary()["newsletters"][0]["jid"]
    shape(api.post("/newsletter/unfollow", {"newsletter_id": newsletter}), results=False)

    assert shape(api.get("/app/reconnect"), {"device_id": str})["device_id"] == str(device.pk)
    assert shape(api.get("/app/logout"), {"device_id": str})["device_id"] == str(device.pk)
    shape(api.delete(f"/devices/{device.pk}"), results=False)


# ------------------------------------------------------------------------------------------ app


@pytest.mark.django_db(transaction=True)
def test_app_login_answers_a_fetchable_png_link(wa, org, api_key):
    from urllib.parse import urlsplit

    from django.test import Client

    api = ApiClient(api_key)
    results = shape(api.get("/app/login"), {"device_id": str, "qr_link": str, "qr_duration": int})
    if not results["qr_link"]:  # the worker's first code came after the bounded wait
        wa.wait_event("device.qr", device=int(results["device_id"]))
        results = shape(api.get("/app/login"))
    image = Client().get(urlsplit(results["qr_link"]).path)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    code = shape(api.get("/app/login-with-code", {"phone": wa.sandbox.fresh_phone()}))
    assert isinstance(code["pair_code"], str) and code["device_id"] == results["device_id"]


@pytest.mark.django_db
def test_app_info(api):
    info = shape(api.get("/app/info"), {"version": str, "base_path": str, "max_bytes": dict})
    assert info["max_bytes"]["image"] > 0 and info["max_bytes"]["video"] >= info["max_bytes"]["image"]


@pytest.mark.django_db
def test_app_info_needs_a_key(client):
    assert client.get("/app/info").status_code == 401


@pytest.mark.django_db
def test_health_needs_no_key_and_says_ok(client):
    assert shape(client.get("/health"))["status"] == "OK"


@pytest.mark.django_db
def test_health_is_503_when_the_database_does_not_answer(client):
    from django.db import OperationalError

    with mock.patch("messaging.api.app.connection.ensure_connection", side_effect=OperationalError("down")):
        answer = client.get("/health")
    assert answer.status_code == 503 and answer["Retry-After"]
    assert answer.json()["code"] == "DEVICE_MANAGER_UNAVAILABLE"


# ------------------------------------------------------------------------------------------ devices

PEER_STATES = {"disconnected", "connecting", "connected", "logged_in"}


@pytest.mark.django_db
def test_devices_rows_as_the_peer_with_string_ids(api, device):
    rows = shape(api.get("/devices"), results=list)
    rows_shape(
        rows,
        {"id": str, "phone_number": str, "display_name": str, "state": str, "jid": str, "created_at": str},
    )
    assert rows[0]["id"] == str(device.pk) and rows[0]["state"] in PEER_STATES
    one = shape(api.get(f"/devices/{device.pk}"), {"id": str, "state": str})
    assert one["state"] == "disconnected"
    assert shape(api.get(f"/devices/{device.pk}/status"), {"device_id": str})["device_id"] == str(device.pk)
    assert shape(api.get("/app/status"), {"device_id": str})["device_id"] == str(device.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "named",
    [
        "{pk}",
        "905550000000",
        "+90 555 000 00 00",
        "905550000000@s.whatsapp.net",
        "905550000000:7@s.whatsapp.net",
    ],
)
def test_a_device_is_chosen_by_id_jid_or_number_in_any_form(api, device, named):
    from messaging.models import Device

    Device.objects.create(organization=device.organization, name="Other", jid="905557777777@s.whatsapp.net")
    named = named.format(pk=device.pk)
    by_header = shape(api.get("/app/status", headers={"X-Device-Id": named}))
    assert by_header["device_id"] == str(device.pk)
    by_query = shape(api.get("/app/status", {"device_id": named}))
    assert by_query["device_id"] == str(device.pk)
    in_path = shape(api.get(f"/devices/{named.replace(' ', '%20')}/status"))
    assert in_path["device_id"] == str(device.pk)


@pytest.mark.django_db
def test_a_number_of_no_device_here_is_404_and_nonsense_400(api, device, other_device):
    assert api.get("/app/status", headers={"X-Device-Id": other_device.phone}).status_code == 404
    nonsense = api.get("/app/status", headers={"X-Device-Id": "phone of ali"})
    assert nonsense.status_code == 400 and nonsense.json()["message"].startswith("device_id:")


@pytest.mark.django_db
def test_post_devices_answers_200_and_takes_the_peers_fields(api, device):
    from messaging.models import WebhookEndpoint

    made = shape(
        api.post(
            "/devices",
            {
                "device_id": "sales",
                "webhook_url": "https://hooks.example.com/sales",
                "webhook_secret": "their-own-secret",
                "webhook_events": ["message"],
            },
        ),
        {"id": str, "state": str},
    )
    assert made["name"] == "sales" and made["state"] == "disconnected"
    endpoint = WebhookEndpoint.objects.get()
    assert [d.pk for d in endpoint.devices.all()] == [
        int(made["id"])
    ] and endpoint.secret == "their-own-secret"
    hook = shape(api.get(f"/devices/{made['id']}/webhook"))
    assert hook["webhook_url"] == "https://hooks.example.com/sales"


@pytest.mark.django_db
def test_post_devices_with_a_refused_webhook_adds_nothing(api, device):
    answer = api.post("/devices", {"name": "x", "webhook_url": "http://127.0.0.1/hook"})
    assert answer.status_code == 400 and answer.json()["message"].startswith("webhook_url:")
    assert device.organization.devices.count() == 1


@pytest.mark.django_db
def test_one_webhook_per_device_set_changed_and_cleared(api, device, read_only_api):
    from messaging.models import WebhookEndpoint

    empty = shape(api.get(f"/devices/{device.pk}/webhook"), {"device_id": str, "webhook_url": str})
    assert empty["webhook_url"] == "" and empty["webhook_events"] == []

    set_ = shape(
        api.patch(
            f"/devices/{device.pk}/webhook",
            {
                "webhook_url": "https://hooks.example.com/wa",
                "webhook_secret": "s3cret-of-theirs",
                "webhook_events": ["message", "message.ack"],
            },
        ),
        {"webhook_url": str, "webhook_secret": str, "webhook_events": list},
    )
    assert set_["webhook_events"] == ["message", "message.ack"] and set_["device_id"] == str(device.pk)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == "s3cret-of-theirs" and list(endpoint.devices.all()) == [device]
    assert sorted(endpoint.events) == ["message", "message.receipt"]

    moved = api.patch(f"/devices/{device.pk}/webhook", {"webhook_url": "https://hooks.example.com/v2"})
    assert shape(moved)["webhook_events"] == ["message", "message.ack"]  # kept
    assert WebhookEndpoint.objects.get().url == "https://hooks.example.com/v2"
    assert read_only_api.get(f"/devices/{device.pk}/webhook").json()["results"]["webhook_secret"] == ""

    shape(api.patch(f"/devices/{device.pk}/webhook", {"webhook_url": ""}))
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"webhook_url": "http://127.0.0.1/x"}, "webhook_url"),
        ({"webhook_url": "https://hooks.example.com/wa", "webhook_events": ["nope"]}, "webhook_events"),
        ({"webhook_url": "https://hooks.example.com/wa", "webhook_secret": "short"}, "webhook_secret"),
    ],
)
def test_device_webhook_bad_input_names_the_field(api, device, body, field):
    answer = api.patch(f"/devices/{device.pk}/webhook", body)
    assert answer.status_code == 400 and answer.json()["message"].startswith(f"{field}:"), answer.json()


# ------------------------------------------------------------------------------------------ send extras


@pytest.mark.django_db
def test_send_takes_the_peers_extra_fields_and_keeps_them_for_the_worker(api, device):
    from messaging.services.outbox import outgoing_of
    from tests.api.endpoints import MP4, OGG

    sent = shape(
        api.post(
            "/send/message",
            {
                "phone": PEER,
                "message": "Merhaba",
                "mentions": ["+90 555 111 22 44", "@everyone"],
                "duration": 86400,
            },
        ),
        {"message_id": str, "status": str},
    )
    out = outgoing_of(Message.objects.get(wa_id=sent["message_id"]))
    assert out.mentions == ["905551112244@s.whatsapp.net", "@everyone"] and out.expiration == 86400

    audio = shape(
        api.post_form("/send/audio", {"phone": PEER, "ptt": "false", "audio": upload("a.ogg", OGG)})
    )
    assert outgoing_of(Message.objects.get(wa_id=audio["message_id"])).ptt is False
    video = shape(
        api.post_form("/send/video", {"phone": PEER, "gif_playback": "true", "video": upload("v.mp4", MP4)})
    )
    assert outgoing_of(Message.objects.get(wa_id=video["message_id"])).gif_playback is True
    image = shape(
        api.post_form(
            "/send/image", {"phone": PEER, "hd": "true", "compress": "true", "image": upload("i.png", PNG)}
        )
    )
    assert outgoing_of(Message.objects.get(wa_id=image["message_id"])).compress is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": PEER, "message": "x", "mentions": ["ali"]}, "mentions"),
        ({"phone": PEER, "message": "x", "duration": -1}, "duration"),
    ],
)
def test_bad_extra_send_fields_are_400_naming_them(api, device, body, field):
    answer = api.post("/send/message", body)
    assert answer.status_code == 400 and answer.json()["message"].startswith(f"{field}:"), answer.json()


# ------------------------------------------------------------------------------------------ message


@pytest.mark.django_db(transaction=True)
def test_forward_a_text_and_an_image_to_another_chat(wa, org, api_key):
    wa.linked_device(org)
    api = ApiClient(api_key)
    a, b = wa.sandbox.peer_phones("echo")[:2]
    text = api.post("/send/message", {"phone": a, "message": "ilet bunu"}).json()["results"]["message_id"]
    image = api.post_form("/send/image", {"phone": a, "caption": "foto", "image": upload("i.png", PNG)})
    image = image.json()["results"]["message_id"]

    for original in (text, image):
        sent = shape(
            api.post(f"/message/{original}/forward", {"phone": b}), {"message_id": str, "status": str}
        )
        assert sent["status"] == "sent" and sent["message_id"] != original
        copy = Message.objects.get(wa_id=sent["message_id"])
        assert copy.chat.jid == f"{b}@s.whatsapp.net" and copy.is_forwarded
    assert Message.objects.get(wa_id=sent["message_id"]).caption == "foto"
    assert Message.objects.get(wa_id=sent["message_id"]).media


@pytest.mark.django_db
def test_forward_while_the_device_is_offline_is_queued(api, device):
    chat = Chat.objects.create(organization=device.organization, device=device, jid=PEER)
    Message.objects.create(
        organization=device.organization,
        device=device,
        chat=chat,
        wa_id="3EB0FORWARDME",
        kind="text",
        text="merhaba",
        status="received",
        timestamp=timezone.now(),
    )
    sent = shape(api.post("/message/3EB0FORWARDME/forward", {"phone": "905551112244"}))
    assert sent["status"] == "queued"
    assert Message.objects.get(wa_id=sent["message_id"]).status == "queued"


@pytest.mark.django_db
def test_forward_of_an_unknown_message_is_404_naming_it(api):
    answer = api.post("/message/3EB0NOSUCH/forward", {"phone": PEER})
    assert answer.status_code == 404 and answer.json()["message"].startswith("message_id:")


# ------------------------------------------------------------------------------------------ chat history


@pytest.mark.django_db
def test_chats_and_messages_take_the_peers_filters(api, device):
    from datetime import timedelta

    org = device.organization
    chat = Chat.objects.create(organization=org, device=device, jid=PEER, last_message_at=timezone.now())
    Chat.objects.create(organization=org, device=device, jid="905551112299@s.whatsapp.net")
    now = timezone.now()
    for n, (kind, mine, ago) in enumerate([("text", True, 3), ("image", False, 2), ("text", False, 1)]):
        Message.objects.create(
            organization=org,
            device=device,
            chat=chat,
            wa_id=f"3EB0F{n}",
            kind=kind,
            text="x",
            from_me=mine,
            status="received",
            timestamp=now - timedelta(hours=ago),
        )
    listed = shape(api.get("/chats", {"has_media": "true"}), {"data": list, "pagination": dict})
    assert [c["jid"] for c in listed["data"]] == [PEER] and listed["pagination"]["total"] == 1

    def ids(**params):
        page = shape(api.get(f"/chat/{PEER}/messages", params), {"data": list, "pagination": dict})
        return sorted(m["id"] for m in page["data"])

    assert ids(media_only="true") == ["3EB0F1"]
    assert ids(is_from_me="true") == ["3EB0F0"]
    assert ids(is_from_me="false") == ["3EB0F1", "3EB0F2"]
    start = (now - timedelta(hours=2, minutes=30)).isoformat()
    end = (now - timedelta(hours=1, minutes=30)).isoformat()
    assert ids(start_time=start, end_time=end) == ["3EB0F1"]
    bad = api.get(f"/chat/{PEER}/messages", {"start_time": "yesterday"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("start_time:")


# ------------------------------------------------------------------------------------------ chat state


@pytest.mark.django_db(transaction=True)
def test_pin_archive_disappearing_and_label_are_kept_and_listed(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    peer = f"{wa.sandbox.peer_phones('echo')[0]}@s.whatsapp.net"

    pinned = shape(api.post(f"/chat/{peer}/pin", {"pinned": True}), {"chat_jid": str, "pinned": bool})
    assert pinned == {"status": "success", "message": "Chat pinned.", "chat_jid": peer, "pinned": True}
    shape(api.post(f"/chat/{peer}/archive", {"archived": True}), {"chat_jid": str, "archived": bool})
    timer = shape(api.post(f"/chat/{peer}/disappearing", {"timer_seconds": 604800}), {"timer_seconds": int})
    assert timer["timer_seconds"] == 604800
    labeled = shape(
        api.post(f"/chat/{peer}/label", {"label_id": "5", "label_name": "Müşteri", "labeled": True}),
        {"label_id": str, "labeled": bool},
    )
    assert labeled["labeled"] is True

    chat = Chat.objects.get(device=device, jid=peer)
    assert (chat.pinned, chat.archived, chat.disappearing_seconds) == (True, True, 604800)
    assert [(label.label_id, label.name) for label in chat.labels.all()] == [("5", "Müşteri")]
    archived = api.get("/chats", {"archived": "true"}).json()["results"]["data"]
    assert [(c["jid"], c["pinned"], c["ephemeral_expiration"]) for c in archived] == [(peer, True, 604800)]
    assert archived[0]["labels"] == [{"label_id": "5", "name": "Müşteri"}]
    assert peer not in {c["jid"] for c in api.get("/chats", {"archived": "false"}).json()["results"]["data"]}

    api.post(f"/chat/{peer}/label", {"label_id": "5", "labeled": False})
    api.post(f"/chat/{peer}/pin", {"pinned": False})
    chat.refresh_from_db()
    assert not chat.pinned and not chat.labels.exists()


@pytest.mark.django_db(transaction=True)
def test_a_timer_whatsapp_does_not_offer_is_400_naming_timer_seconds(wa, org, api_key):
    wa.linked_device(org)
    answer = ApiClient(api_key).post(f"/chat/{PEER}/disappearing", {"timer_seconds": 3600})
    assert answer.status_code == 400 and answer.json()["message"].startswith("timer_seconds:")


@pytest.mark.django_db(transaction=True)
def test_a_label_id_with_spaces_is_400_naming_it(wa, org, api_key):
    wa.linked_device(org)
    answer = ApiClient(api_key).post(f"/chat/{PEER}/label", {"label_id": "a b", "labeled": True})
    assert answer.status_code == 400 and answer.json()["message"].startswith("label_id:")


# ------------------------------------------------------------------------------------------ group


@pytest.mark.django_db(transaction=True)
def test_group_participants_export_and_photo_as_the_peer(wa, org, api_key):
    wa.linked_device(org)
    api = ApiClient(api_key)
    a, b = wa.sandbox.peer_phones("echo")[:2]
    group = api.post("/group", {"title": "Peer", "participants": [a, b]}).json()["results"]["group_id"]

    listed = shape(
        api.get("/group/participants", {"group_id": group}),
        {"group_id": str, "name": str, "participants": list},
    )
    assert listed["group_id"] == group and listed["name"] == "Peer"
    rows_shape(
        listed["participants"],
        {"jid": str, "phone_number": str, "is_admin": bool, "is_super_admin": bool},
    )
    assert {r["phone_number"] for r in listed["participants"]} >= {a, b}

    link = api.get("/group/invite-link", {"group_id": group}).json()["results"]["invite_link"]
    seen = shape(
        api.get("/group/info-from-link", {"link": link}),
        {
            "group_id": str,
            "name": str,
            "topic": str,
            "created_at": str,
            "participant_count": int,
            "is_locked": bool,
            "is_announce": bool,
            "is_ephemeral": bool,
            "description": str,
        },
    )
    assert (seen["group_id"], seen["name"], seen["participant_count"]) == (group, "Peer", 3)
    gone = api.get("/group/info-from-link", {"link": "https://chat.whatsapp.com/NOSUCHCODE"})
    assert gone.status_code == 404
    bad = api.get("/group/info-from-link", {"link": "https://example.com/x y"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("link:")

    exported = api.get("/group/participants/export", {"group_id": group})
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    assert "attachment" in exported["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert {r["phone_number"] for r in table} == {r["phone_number"] for r in listed["participants"]}

    # The peer's clients upload the picture as `image`.
    photo = shape(
        api.post_form("/group/photo", {"group_id": group, "image": upload("g.png", PNG)}),
        {"picture_id": str},
    )
    assert photo["picture_id"]


@pytest.mark.django_db(transaction=True)
def test_group_photo_refuses_two_pictures_naming_the_field(wa, org, api_key):
    wa.linked_device(org)
    api = ApiClient(api_key)
    answer = api.post_form(
        "/group/photo",
        {"group_id": "120363000000000001@g.us", "image": upload("a.png", PNG), "photo": upload("b.png", PNG)},
    )
    assert answer.status_code == 400 and answer.json()["message"].startswith("photo:")


# ------------------------------------------------------------------------------------------ newsletter


@pytest.mark.django_db(transaction=True)
def test_newsletter_messages_newest_and_older(wa, org, api_key):
    wa.linked_device(org)
    api = ApiClient(api_key)
    newsletter = wa.sandbox.network_summary()["newsletters"][0]["jid"]
    newest = shape(api.get("/newsletter/messages", {"newsletter_id": newsletter, "count": 5}), {"data": list})
    rows_shape(
        newest["data"],
        {"server_id": int, "message_id": str, "type": str, "timestamp": str, "views_count": int},
    )
    assert len(newest["data"]) == 5
    oldest_shown = min(r["server_id"] for r in newest["data"])
    older = api.get(
        "/newsletter/messages", {"newsletter_id": newsletter, "count": 5, "before": oldest_shown}
    ).json()["results"]["data"]
    assert older and max(r["server_id"] for r in older) < oldest_shown
    too_many = api.get("/newsletter/messages", {"newsletter_id": newsletter, "count": 500})
    assert too_many.status_code == 400 and too_many.json()["message"].startswith("count:")


# ------------------------------------------------------------------------------------------ call


@pytest.mark.django_db(transaction=True)
def test_rejecting_a_call_that_is_not_ringing_is_404(wa, org, api_key):
    wa.linked_device(org)
    answer = ApiClient(api_key).post("/call/reject", {"caller_jid": PEER, "call_id": "NOSUCHCALL"})
    assert answer.status_code == 404 and "NOSUCHCALL" in answer.json()["message"]


@pytest.mark.django_db
def test_call_reject_names_a_bad_caller(api):
    answer = api.post("/call/reject", {"caller_jid": "not a number", "call_id": "X"})
    assert answer.status_code == 400 and answer.json()["message"].startswith("caller_jid:")


@pytest.mark.django_db
def test_call_reject_is_sent_to_the_worker(api, device):
    with mock.patch("messaging.services.calls.gateway.call") as call:
        answer = shape(api.post("/call/reject", {"caller_jid": "905551112233", "call_id": "C1"}))
    call.assert_called_once_with(mock.ANY, "reject_call", caller=PEER, call_id="C1")
    assert answer == {"caller_jid": PEER, "call_id": "C1"}
    entry = AuditEvent.objects.get(
        organization=device.organization, action="call.reject"
    )  # through the service
    assert entry.details == {"caller": PEER, "call_id": "C1"}


# ------------------------------------------------------------------------------------------ user


@pytest.mark.django_db(transaction=True)
def test_user_info_as_the_peer(wa, org, api_key):
    wa.linked_device(org)
    api = ApiClient(api_key)
    peer = wa.sandbox.network_summary()["peers"][0]
    info = shape(api.get("/user/info", {"phone": peer["phone"]}), {"data": list, "resolved_phone": str})
    rows_shape(
        info["data"],
        {"name": str, "verified_name": str, "status": str, "picture_id": str, "devices": list},
    )
    assert info["resolved_phone"] == peer["phone"]
    devices = info["data"][0]["devices"]
    rows_shape(devices, {"User": str, "Agent": int, "Device": int, "Server": str, "AD": bool})
    assert devices[0] == {
        "User": peer["phone"],
        "Agent": 0,
        "Device": 0,
        "Server": "s.whatsapp.net",
        "AD": False,
    }


@pytest.mark.django_db(transaction=True)
def test_business_profile_of_a_personal_number_is_empty_not_404(wa, org, api_key):
    wa.linked_device(org)
    api = ApiClient(api_key)
    plain = next(p for p in wa.sandbox.network_summary()["peers"] if not p["business"])
    profile = shape(api.get("/user/business-profile", {"phone": plain["jid"]}))
    assert profile["email"] == "" and profile["categories"] == []
