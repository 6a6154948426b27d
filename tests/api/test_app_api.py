"""The /app endpoints: behaviour on the sandbox (the conventions every endpoint keeps: test_conventions.py)."""

from urllib.parse import urlsplit

import pytest
from django.test import Client

from accounts.models import ApiKey
from messaging.models import Device
from tests.api.conftest import ApiClient, error
from tests.conftest import make_api_key

# ------------------------------------------------------------------------------------------ on the sandbox


@pytest.mark.django_db(transaction=True)
def test_link_by_qr_then_status_logout_and_reconnect(wa, org, owner):
    api = ApiClient(make_api_key(org, created_by=owner))
    # No device yet: /app/login makes the organization's first one and starts linking it.
    answer = api.get("/app/login").json()
    assert answer["code"] == "SUCCESS", answer
    results = answer["results"]
    device = Device.objects.get(organization=org)
    if not results["qr_link"]:  # the worker's first code came after the bounded wait
        wa.wait_event("device.qr", device=device)
        results = api.get("/app/login").json()["results"]
    assert results["qr_duration"] > 0 and results["qr_code"]
    image = Client().get(urlsplit(results["qr_link"]).path)  # no API key: the signed link is enough
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")

    wa.sandbox.phone_scan(qr_code=results["qr_code"])
    wa.wait_event("device.connected", device=device)
    status = api.get("/app/status").json()["results"]
    assert status["is_connected"] is True and status["is_logged_in"] is True
    again = api.get("/app/login")
    assert again.status_code == 400 and again.json()["code"] == "ALREADY_LOGGED_IN"  # as the peer answers
    assert again.json()["results"]["device_id"] == str(device.pk)
    listed = api.get("/app/devices").json()["results"]
    assert [(d["name"], d["device"]) for d in listed] == [("WhatsApp", status["jid"])]

    assert api.get("/app/reconnect").json()["code"] == "SUCCESS"
    wa.wait_event("device.connected", device=device, timeout=15)
    assert api.get("/app/logout").json()["results"]["status"] == "logged_out"
    status = api.get("/app/status").json()["results"]
    assert status["is_connected"] is False and status["is_logged_in"] is False
    error(api.post("/send/message", {"phone": wa.peers[0], "message": "x"}), 401, "AUTHENTICATION_ERROR")


@pytest.mark.django_db(transaction=True)
def test_link_by_pairing_code(wa, org, api_key):
    device = Device.objects.create(organization=org, name="Phone")
    api = ApiClient(api_key)
    phone = wa.sandbox.fresh_phone()
    answer = api.get("/app/login-with-code", {"phone": phone}).json()
    assert answer["code"] == "SUCCESS", answer
    code = answer["results"]["pair_code"]
    assert len(code) == 9 and code[4] == "-"
    wa.sandbox.phone_enter_code(phone=phone, code=code)
    wa.wait_event("device.connected", device=device)
    device.refresh_from_db()
    assert device.phone == phone


@pytest.mark.django_db(transaction=True)
def test_no_pairing_code_for_another_organizations_number(wa, org, other_org, other_api_key):
    """On the shared simulated network, a number one organization linked is not another's to link."""
    ours = wa.linked_device(org)
    Device.objects.create(organization=other_org, name="Theirs")
    body = error(
        ApiClient(other_api_key).get("/app/login-with-code", {"phone": ours.phone}), 403, "FORBIDDEN"
    )
    assert body["message"].startswith("phone: ") and org.name not in body["message"]


@pytest.mark.django_db(transaction=True)
def test_login_while_the_session_workers_cannot_be_reached_says_so(wa, org, api_key, monkeypatch):
    """Not "Linking started": a 503 to retry after, as the dashboard says it; the device stays wanted, so a
    worker's heartbeat starts it once the channel layer is back."""
    from tests.messaging.test_outbox import _channel_layer_down

    device = Device.objects.create(organization=org, name="Phone")
    api = ApiClient(api_key)
    with monkeypatch.context() as down:
        _channel_layer_down(down)
        answer = api.get("/app/login")
        by_id = api.get(f"/devices/{device.pk}/login")
    for response in (answer, by_id):
        body = error(response, 503, "SERVICE_UNAVAILABLE")
        assert "session workers cannot be reached" in body["message"] and response["Retry-After"] == "5"
    device.refresh_from_db()
    assert device.wanted and device.status == "connecting"


@pytest.mark.django_db
def test_malformed_phone_for_pairing_is_400(api):
    error(api.get("/app/login-with-code", {"phone": "my phone"}), 400, "VALIDATION_ERROR", "phone")


@pytest.mark.django_db
@pytest.mark.parametrize("style", ["bearer", "header", "basic"])
def test_each_way_of_passing_the_key_works_and_is_recorded(style, api_key, device):
    answer = ApiClient(api_key, style=style).get("/app/status")
    assert answer.status_code == 200
    assert answer.json()["results"]["device_id"] == str(device.pk)
    assert ApiKey.objects.get().last_used_at is not None


@pytest.mark.django_db
def test_another_organizations_key_sees_only_its_own_devices(api, other_api_key, device, other_device):
    theirs = ApiClient(other_api_key).get("/app/devices").json()["results"]
    assert [d["id"] for d in theirs] == [str(other_device.pk)]
    error(ApiClient(other_api_key, device=device).get("/app/status"), 404, "DEVICE_NOT_FOUND", "device_id")
