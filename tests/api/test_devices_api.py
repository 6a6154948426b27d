"""The /devices endpoints: behaviour on the sandbox (the conventions every endpoint keeps: test_conventions.py)."""

import pytest
from django.test import Client

from messaging.models import Device
from tests.api.conftest import ApiClient, error

# ------------------------------------------------------------------------------------------ on the sandbox


@pytest.mark.django_db(transaction=True)
def test_device_management_on_the_sandbox(wa, org, api_key):
    api = ApiClient(api_key)
    created = api.post("/devices", {"name": "Satış"})
    assert created.status_code == 200  # as the peer answers
    device_id = created.json()["results"]["id"]
    assert isinstance(device_id, str)  # the peer's clients parse device IDs as strings
    pk = int(device_id)
    assert created.json()["results"]["status"] == "new"
    assert [d["id"] for d in api.get("/devices").json()["results"]] == [device_id]
    assert api.get(f"/devices/{device_id}").json()["results"]["name"] == "Satış"

    login = api.get(f"/devices/{device_id}/login").json()["results"]
    qr_code = login["qr_code"] or wa.wait_event("device.qr", device=pk)["qr_code"]
    wa.sandbox.phone_scan(qr_code=qr_code)
    wa.wait_event("device.connected", device=pk)
    status = api.get(f"/devices/{device_id}/status").json()["results"]
    assert status["is_connected"] is True and status["jid"]

    assert api.post(f"/devices/{device_id}/reconnect").json()["code"] == "SUCCESS"
    wa.wait_event("device.connected", device=pk, timeout=15)
    assert api.post(f"/devices/{device_id}/logout").json()["results"]["status"] == "logged_out"
    # logged out: link it again, this time by pairing code
    phone = wa.sandbox.fresh_phone()
    paired = api.post(f"/devices/{device_id}/login/code", {"phone": phone}).json()
    assert paired["code"] == "SUCCESS", paired
    wa.sandbox.phone_enter_code(phone=phone, code=paired["results"]["pair_code"])
    wa.wait_event("device.connected", device=pk)

    assert api.delete(f"/devices/{device_id}").json()["code"] == "SUCCESS"
    assert not Device.objects.filter(pk=pk).exists()
    error(api.get(f"/devices/{device_id}"), 404, "DEVICE_NOT_FOUND")


@pytest.mark.django_db
def test_malformed_device_input_is_400(api, device):
    error(api.post("/devices", {"name": "x" * 81}), 400, "VALIDATION_ERROR", "name")
    error(api.post("/devices", {"name": "   "}), 400, "VALIDATION_ERROR", "name")
    error(api.get("/devices/abc"), 400, "VALIDATION_ERROR", "device_id")
    error(
        api.post(f"/devices/{device.pk}/login/code", {"phone": "call me"}), 400, "VALIDATION_ERROR", "phone"
    )


@pytest.mark.django_db
def test_qr_link_is_refused_when_forged_or_for_nothing(api, device):
    from django.core import signing

    from messaging.api.devices import QR_SALT

    error(Client().get("/app/login/qr/forged.png"), 404, "NOT_FOUND")
    token = signing.dumps({"d": device.pk, "o": device.organization_id}, salt=QR_SALT, compress=True)
    error(Client().get(f"/app/login/qr/{token}.png"), 404, "NOT_FOUND")  # it shows no QR code


@pytest.mark.django_db
def test_a_read_only_key_cannot_log_out_or_remove_a_number(read_only_api, device):
    body = error(read_only_api.delete(f"/devices/{device.pk}"), 403, "FORBIDDEN")
    assert "read-only" in body["message"]
    error(read_only_api.post(f"/devices/{device.pk}/logout"), 403, "FORBIDDEN")
    error(read_only_api.get("/app/logout", headers={"X-Device-Id": str(device.pk)}), 403, "FORBIDDEN")
    assert Device.objects.filter(pk=device.pk, status="disconnected").exists()


@pytest.mark.django_db
def test_another_organizations_number_cannot_be_removed_or_logged_out(api, other_device):
    error(api.delete(f"/devices/{other_device.pk}"), 404, "DEVICE_NOT_FOUND", "device_id")
    error(api.post(f"/devices/{other_device.pk}/logout"), 404, "DEVICE_NOT_FOUND", "device_id")
    assert Device.objects.filter(pk=other_device.pk, status="connected").exists()


@pytest.mark.django_db
def test_the_service_refuses_a_read_only_key_even_past_the_endpoint(org, owner, device):
    """Defence in depth: whoever calls the service with a read-only key is refused there too."""
    from django.core.exceptions import PermissionDenied

    from accounts.models import ApiKey
    from messaging.services import devices
    from tests.conftest import make_api_key

    make_api_key(org, access="read", created_by=owner)
    key = ApiKey.objects.get(organization=org, access="read")
    with pytest.raises(PermissionDenied, match="full access"):
        devices.remove_device(organization=org, device=device, api_key=key)
    assert Device.objects.filter(pk=device.pk).exists()
