"""The conventions every endpoint keeps, as checks the per-router test files run over their rows of endpoints.py."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import ApiKey, AuditEvent
from messaging.models import Device, Message
from tests.api.conftest import ApiClient, error

NO_DEVICE_CHOICE = {
    "/app/devices",
    "/devices",
    "/app/info",
}  # list the organization's devices: nothing to choose


def path_for(endpoint, device) -> str:
    return endpoint.path.replace("{device}", str(device.pk))


def unauthorized(endpoint, api_key, device) -> None:
    """No key, a wrong key, a revoked key, in each accepted style: 401 with the envelope, nothing done."""
    path = path_for(endpoint, device)
    before = (Message.objects.count(), Device.objects.count(), AuditEvent.objects.count())
    for client in (ApiClient(None), ApiClient("wap_not-a-key"), ApiClient("wap_not-a-key", style="basic")):
        body = error(endpoint.request(client, path=path), 401, "UNAUTHORIZED")
        assert "API key" in body["message"]
    ApiKey.objects.update(revoked_at=timezone.now())
    for style in ("bearer", "header", "basic"):
        error(endpoint.request(ApiClient(api_key, style=style), path=path), 401, "UNAUTHORIZED")
    assert (Message.objects.count(), Device.objects.count(), AuditEvent.objects.count()) == before


def read_only_cannot_write(endpoint, read_only_api, device) -> None:
    before = (Message.objects.count(), Device.objects.count(), AuditEvent.objects.count())
    body = error(endpoint.request(read_only_api, path=path_for(endpoint, device)), 403, "FORBIDDEN")
    assert "read-only" in body["message"]
    assert (Message.objects.count(), Device.objects.count(), AuditEvent.objects.count()) == before


def other_organizations_device(endpoint, api, device, other_device) -> None:
    """Naming another organization's device is 404 (never 403), and nothing of theirs is touched or shown."""
    before = (Message.objects.count(), AuditEvent.objects.count())
    if endpoint.device_in_path:
        response = endpoint.request(api, path=path_for(endpoint, other_device))
    elif endpoint.path in NO_DEVICE_CHOICE:
        response = endpoint.request(api, headers={"X-Device-Id": str(other_device.pk)})
        assert response.status_code in (200, 201)
        listed = response.json()["results"]
        rows = listed if isinstance(listed, list) else [listed]
        assert str(other_device.pk) not in {row.get("id") for row in rows}
        assert other_device.jid not in response.content.decode()
        return
    else:
        response = endpoint.request(api, headers={"X-Device-Id": str(other_device.pk)})
    body = error(response, 404, "DEVICE_NOT_FOUND")  # the peer's code, with the device named in results
    assert "device" in body["message"] and body["results"]["device_id"]
    assert (Message.objects.count(), AuditEvent.objects.count()) == before
    assert not Message.objects.filter(device=other_device).exists()


def missing_field(endpoint, name, api, device) -> None:
    body = error(endpoint.request(api, omit=name, path=path_for(endpoint, device)), 400, "VALIDATION_ERROR")
    assert body["message"].startswith(f"{name}:"), body


def offline(endpoint, api, device) -> dict:
    """The device looks linked but no worker holds it: WhatsApp calls are 503, sends are queued."""
    response = endpoint.request(api, path=path_for(endpoint, device))
    if endpoint.offline == "queued":
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["code"] == "SUCCESS"
        assert body["results"]["status"] == "queued"
        message = Message.objects.get(wa_id=body["results"]["message_id"])
        assert message.device_id == device.pk and message.status == "queued"
        return body
    if endpoint.offline == 401:
        return error(response, 401, "AUTHENTICATION_ERROR")  # the peer's status and code
    assert response.status_code == endpoint.offline, response.content
    return response.json()
