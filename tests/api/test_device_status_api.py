"""A device stored as connected whose session worker is gone: /app/status and /devices report it disconnected."""

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Device, DeviceLease, DeviceStatus
from tests.api.conftest import ApiClient, error

pytestmark = pytest.mark.django_db


@pytest.fixture
def stale(org):
    """Connected as far as the row says; its worker's lease ran out a minute ago."""
    device = Device.objects.create(
        organization=org,
        name="Stale",
        jid="905550000042@s.whatsapp.net",
        phone="905550000042",
        status=DeviceStatus.CONNECTED,
    )
    DeviceLease.objects.create(
        device=device, worker_id="gone", expires_at=timezone.now() - timedelta(minutes=1)
    )
    return device


def test_status_of_an_unheld_device_is_disconnected(api_key, stale):
    api = ApiClient(api_key)
    for path in ("/app/status", f"/devices/{stale.pk}/status"):
        body = api.get(path).json()
        assert set(body) == {"code", "message", "results"} and body["code"] == "SUCCESS"
        results = body["results"]
        assert set(results) == {
            "device_id",
            "state",
            "status",
            "reason",
            "is_connected",
            "is_logged_in",
            "jid",
            "phone",
        }
        assert results["status"] == "disconnected" and results["is_connected"] is False, results
        assert results["state"] == "disconnected"  # the peer's word
        assert "no session worker" in results["reason"]
        assert results["is_logged_in"] is True  # still linked: a worker that takes it over reconnects it


def test_device_rows_of_an_unheld_device_say_disconnected(api_key, stale):
    api = ApiClient(api_key)
    for rows in (
        api.get("/devices").json()["results"],
        api.get("/app/devices").json()["results"],
        [api.get(f"/devices/{stale.pk}").json()["results"]],
    ):
        (row,) = rows
        assert row["status"] == "disconnected" and row["is_connected"] is False and row["worker"] == ""
        assert "no session worker" in row["status_reason"]


def test_a_held_device_is_still_connected(api_key, stale):
    DeviceLease.objects.filter(device=stale).update(expires_at=timezone.now() + timedelta(seconds=30))
    results = ApiClient(api_key).get("/app/status").json()["results"]
    assert results["status"] == "connected" and results["is_connected"] is True and results["reason"] == ""


def test_another_organizations_unheld_device_is_404(other_api_key, stale):
    error(ApiClient(other_api_key).get(f"/devices/{stale.pk}/status"), 404, "DEVICE_NOT_FOUND", "device_id")
