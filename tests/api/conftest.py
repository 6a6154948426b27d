"""Fixtures of the API tests: a client that sends an API key, devices in our and another organization."""

import base64

import pytest
from django.test import Client

from messaging.models import Device, DeviceStatus
from tests.conftest import make_api_key

PEER = "905551112233@s.whatsapp.net"


class ApiClient:
    """Django's test client speaking JSON with an API key (Bearer by default)."""

    def __init__(self, key: str | None, *, style: str = "bearer", device=None):
        self.client = Client()
        self.key = key
        self.style = style
        self.device = device

    def headers(self, extra=None) -> dict:
        headers = {}
        if self.key is not None:
            if self.style == "bearer":
                headers["Authorization"] = f"Bearer {self.key}"
            elif self.style == "header":
                headers["X-Api-Key"] = self.key
            else:
                token = base64.b64encode(f"api:{self.key}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
        if self.device is not None:
            headers["X-Device-Id"] = str(getattr(self.device, "pk", self.device))
        headers.update(extra or {})
        return headers

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params or {}, headers=self.headers(headers))

    def post(self, path, data=None, headers=None):
        return self.client.post(
            path,
            data if data is not None else {},
            content_type="application/json",
            headers=self.headers(headers),
        )

    def patch(self, path, data=None, headers=None):
        return self.client.patch(
            path,
            data if data is not None else {},
            content_type="application/json",
            headers=self.headers(headers),
        )

    def post_form(self, path, data, headers=None):
        return self.client.post(path, data, headers=self.headers(headers))

    def delete(self, path, headers=None):
        return self.client.delete(path, headers=self.headers(headers))


@pytest.fixture
def device(org):
    """A device of `org` that looks linked but that no worker holds (so WhatsApp calls answer 503)."""
    return Device.objects.create(
        organization=org,
        name="Phone",
        jid="905550000000@s.whatsapp.net",
        phone="905550000000",
        status=DeviceStatus.DISCONNECTED,
    )


@pytest.fixture
def other_device(other_org):
    return Device.objects.create(
        organization=other_org,
        name="Theirs",
        jid="905559999999@s.whatsapp.net",
        phone="905559999999",
        status=DeviceStatus.CONNECTED,
    )


@pytest.fixture
def api(api_key, device):
    return ApiClient(api_key)


@pytest.fixture
def read_only_api(org, owner, device):
    return ApiClient(make_api_key(org, access="read", created_by=owner))


def error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    """Assert the contract's error envelope; returns it."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "results"}
    if code:
        assert body["code"] == code, body
    if field:
        assert body["message"].startswith(f"{field}:") or field in body["message"], body
    return body


HOOKS_HOST = "hooks.example.com"  # a webhook receiver's host: resolves to a public address, without DNS


@pytest.fixture(autouse=True)
def _hooks_host_resolves(monkeypatch):
    from messaging import safe_fetch

    real = safe_fetch.resolve
    monkeypatch.setattr(
        safe_fetch,
        "resolve",
        lambda host, port=None: ["93.184.216.34"] if host == HOOKS_HOST else real(host, port),
    )


@pytest.fixture(autouse=True)
def _fast_settings(settings):
    # Linking waits for a worker's first QR code; in these tests either a worker answers at once or none exists.
    settings.WA_QR_WAIT_SECONDS = 0.3
    # Members are made for every test; the real password hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
