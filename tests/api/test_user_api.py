"""The /user endpoints: behaviour on the sandbox (the conventions every endpoint keeps: test_conventions.py)."""

from unittest import mock

import pytest

from messaging.whatsapp import protocol

# ------------------------------------------------------------------------------------------ on the sandbox
from tests.api.conftest import PEER, ApiClient, error  # noqa: E402
from tests.api.endpoints import PNG, upload  # noqa: E402


@pytest.mark.django_db(transaction=True)
def test_user_endpoints_on_the_sandbox(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    summary = wa.sandbox.network_summary()
    peer = summary["peers"][0]
    business = next(p for p in summary["peers"] if p["business"])

    info = api.get("/user/info", {"phone": peer["jid"]}).json()
    assert info["code"] == "SUCCESS" and info["results"]["data"][0]["jid"] == peer["jid"]
    assert info["results"]["data"][0]["status"] == peer["about"]

    avatar = api.get("/user/avatar", {"phone": peer["phone"], "is_preview": "true"}).json()["results"]
    assert avatar["type"] == "preview" and avatar["url"]

    check = api.get("/user/check", {"phone": "+" + peer["phone"]}).json()["results"]
    assert check["is_on_whatsapp"] is True and check["jid"] == peer["jid"]
    nobody = api.get("/user/check", {"phone": summary["unregistered"]}).json()["results"]
    assert nobody["is_on_whatsapp"] is False

    profile = api.get("/user/business-profile", {"phone": business["jid"]}).json()["results"]
    assert profile["email"] and profile["jid"] == business["jid"]
    personal = api.get("/user/business-profile", {"phone": peer["jid"]}).json()
    assert personal["code"] == "SUCCESS" and personal["results"]["email"] == "", personal

    privacy = api.get("/user/my/privacy").json()["results"]
    assert set(privacy) >= {"group_add", "last_seen", "read_receipts"}
    assert api.get("/user/my/contacts").json()["code"] == "SUCCESS"

    wa.sandbox.follow_newsletter(phone=device.phone, jid=summary["newsletters"][0]["jid"])
    newsletters = api.get("/user/my/newsletters").json()["results"]["data"]
    assert [n["jid"] for n in newsletters] == [summary["newsletters"][0]["jid"]]

    group = summary["groups"][0]["jid"]
    wa.sandbox.add_group_member(group=group, phone=device.phone)
    groups = api.get("/user/my/groups").json()["results"]["data"]
    assert group in {g["jid"] for g in groups}

    # push_name, and `pushname` as older clients send it
    # (no `results`: the peer returns none here)
    assert api.post("/user/pushname", {"push_name": "Yeni Isim"}).json() == {
        "code": "SUCCESS",
        "message": "Push name changed to Yeni Isim.",
    }
    assert api.post("/user/pushname", {"pushname": "Eski Isim"}).json()["code"] == "SUCCESS"
    device.refresh_from_db()
    assert device.push_name == "Eski Isim"
    assert api.get("/user/info", {"phone": device.jid}).json()["code"] == "SUCCESS"

    # the picture as `avatar`, and as `image`
    seen = set()
    for name in ("avatar", "image"):
        answer = api.post_form("/user/avatar", {name: upload("me.png", PNG)})
        assert answer.status_code == 200, answer.content
        assert "results" not in answer.json()
        seen.add(api.get("/user/avatar", {"phone": device.jid}).json()["results"]["id"])
    assert len(seen) == 2 and all(seen)  # each upload is a new picture


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/user/info", {"phone": "not a number"}, "phone"),
        ("/user/avatar", {"phone": PEER, "is_preview": "maybe"}, "is_preview"),
        ("/user/avatar", {"phone": PEER, "is_community": "2"}, "is_community"),
        ("/user/check", {"phone": "12"}, "phone"),
        ("/user/business-profile", {"phone": "abc@example.com"}, "phone"),
    ],
)
def test_malformed_query_is_400_naming_the_field(api, path, params, field):
    body = error(api.get(path, params), 400, "VALIDATION_ERROR")
    assert body["message"].startswith(f"{field}:")


@pytest.mark.django_db
def test_avatar_upload_is_checked(api, settings):
    body = error(api.post_form("/user/avatar", {"avatar": upload("me.png", b"just text, not an image")}), 415)
    assert body["message"].startswith("avatar:")
    settings.API_MEDIA_MAX_BYTES = {"avatar": 10}
    error(
        api.post_form("/user/avatar", {"avatar": upload("me.png", PNG)}), 413, "PAYLOAD_TOO_LARGE", "avatar"
    )
    error(api.post("/user/pushname", {"push_name": "x" * 26}), 400, "VALIDATION_ERROR", "push_name")
    error(api.post("/user/pushname", {"pushname": "   "}), 400, "VALIDATION_ERROR", "pushname")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("error_class", "status", "code"),
    [  # the peer server's statuses and codes where it has them
        (protocol.NotConnected, 401, "AUTHENTICATION_ERROR"),
        (protocol.NotLoggedIn, 401, "AUTHENTICATION_ERROR"),
        (protocol.UpstreamTimeout, 504, "GATEWAY_TIMEOUT"),
        (protocol.NotFound, 404, "NOT_FOUND"),
        (protocol.Forbidden, 403, "FORBIDDEN"),
        (protocol.InvalidRequest, 422, "VALIDATION_ERROR"),  # as documented, refused by WhatsApp
        (protocol.NotSupported, 501, "NOT_SUPPORTED"),
        (protocol.ReachoutTimelock, 429, "WA_REACHOUT_TIMELOCK"),
    ],
)
def test_whatsapp_errors_become_their_http_status(api, error_class, status, code):
    with mock.patch("messaging.gateway.call", side_effect=error_class("WhatsApp says no.")):
        body = error(api.get("/user/my/privacy"), status, code)
    assert body["message"] == "WhatsApp says no."


@pytest.mark.django_db
def test_an_unexpected_failure_is_a_500_envelope_without_a_traceback(api):
    with mock.patch("messaging.gateway.call", side_effect=RuntimeError("secret internals")):
        body = error(api.get("/user/my/privacy"), 500, "INTERNAL_SERVER_ERROR")
    assert "secret" not in body["message"] and "Traceback" not in body["message"]


@pytest.mark.django_db
def test_a_command_while_the_channel_layer_is_down_is_503_with_retry_after(api):
    from messaging import gateway

    with mock.patch("messaging.gateway.call", side_effect=gateway.Unavailable()):
        answer = api.get("/user/my/privacy")
    error(answer, 503, "SERVICE_UNAVAILABLE")
    assert int(answer["Retry-After"]) > 0


@pytest.mark.django_db
def test_a_database_at_its_connection_limit_is_503_with_retry_after(api):
    from django.db import OperationalError

    with mock.patch(
        "messaging.gateway.call", side_effect=OperationalError("sorry, too many clients already")
    ):
        answer = api.get("/user/my/privacy")
    body = error(answer, 503, "SERVICE_UNAVAILABLE")
    assert "too many" not in body["message"] and int(answer["Retry-After"]) > 0
