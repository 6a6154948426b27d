"""GET|PATCH /devices/{id}/settings: auto-reject calls with a reply text, and the number's proxy."""

from unittest import mock

from accounts.models import AuditEvent
from messaging import gateway
from tests.api.conftest import ApiClient, error


def test_settings_start_off_and_change_with_the_password_masked(api, device):
    got = api.get(f"/devices/{device.pk}/settings")
    assert got.status_code == 200
    assert got.json()["results"] == {
        "device_id": str(device.pk),
        "reject_calls": False,
        "reject_call_message": "",
        "proxy_url": "",
    }
    changed = api.patch(
        f"/devices/{device.pk}/settings",
        {
            "reject_calls": True,
            "reject_call_message": "  We cannot take calls; write to us here.  ",
            "proxy_url": "SOCKS5://shop:s3cret@proxy.example.com:1080/",
        },
    )
    assert changed.status_code == 200, changed.content
    results = changed.json()["results"]
    assert results["reject_calls"] is True
    assert results["reject_call_message"] == "We cannot take calls; write to us here."
    assert results["proxy_url"] == "socks5://shop:****@proxy.example.com:1080"
    assert "s3cret" not in changed.content.decode()
    device.refresh_from_db()
    assert device.proxy_url == "socks5://shop:s3cret@proxy.example.com:1080"  # the connection needs it
    assert "s3cret" not in api.get(f"/devices/{device.pk}/settings").content.decode()


def test_the_masked_proxy_sent_back_keeps_the_password_and_the_audit_log_never_has_it(api, device):
    api.patch(f"/devices/{device.pk}/settings", {"proxy_url": "http://u:hunter2@10.0.0.1:3128"})
    again = api.patch(
        f"/devices/{device.pk}/settings", {"proxy_url": "http://u:****@10.0.0.1:3128", "reject_calls": True}
    )
    assert again.status_code == 200
    device.refresh_from_db()
    assert device.proxy_url == "http://u:hunter2@10.0.0.1:3128"
    entries = list(AuditEvent.objects.filter(action="device.settings").values_list("details", flat=True))
    assert entries and all("hunter2" not in str(details) for details in entries)
    moved = api.patch(f"/devices/{device.pk}/settings", {"proxy_url": "http://u:****@10.0.0.2:3128"})
    assert moved.json()["results"]["proxy_url"] == "http://u:****@10.0.0.2:3128"
    device.refresh_from_db()
    assert device.proxy_url == "http://u:hunter2@10.0.0.2:3128"  # another host, the same password
    entries = list(AuditEvent.objects.filter(action="device.settings").values_list("details", flat=True))
    assert all("hunter2" not in str(details) for details in entries)
    proxied = [details["proxy_url"] for details in entries if "proxy_url" in details][-1:]
    assert proxied == [{"from": "", "to": "http://u:****@10.0.0.1:3128"}]  # sent back unchanged: no change


def test_a_changed_proxy_reconnects_the_number(api, device):
    device.wanted = True
    device.save(update_fields=["wanted"])
    with mock.patch.object(gateway, "notify_worker", new=mock.AsyncMock(return_value=True)) as nudge:
        assert (
            api.patch(f"/devices/{device.pk}/settings", {"proxy_url": "socks5h://p.example:1080"}).status_code
            == 200
        )
        nudge.assert_awaited_once_with(device.pk, {"type": gateway.START})
        nudge.reset_mock()
        api.patch(f"/devices/{device.pk}/settings", {"reject_calls": True})  # not the proxy: no reconnect
        nudge.assert_not_awaited()


def test_bad_settings_are_refused_naming_the_field(api, device):
    for proxy in (
        "ftp://proxy.example.com:21",
        "socks5://proxy.example.com",
        "http://:8080",
        "socks5://h:1/x",
    ):
        error(api.patch(f"/devices/{device.pk}/settings", {"proxy_url": proxy}), 400, field="proxy_url")
    long = "x" * 1001
    error(
        api.patch(f"/devices/{device.pk}/settings", {"reject_call_message": long}),
        400,
        field="reject_call_message",
    )
    error(
        api.patch(f"/devices/{device.pk}/settings", {"reject_calls": "sometimes"}), 400, field="reject_calls"
    )
    device.refresh_from_db()
    assert (device.proxy_url, device.reject_call_message, device.reject_calls) == ("", "", False)


def test_a_read_only_key_reads_but_may_not_change(read_only_api, device):
    assert read_only_api.get(f"/devices/{device.pk}/settings").status_code == 200
    error(read_only_api.patch(f"/devices/{device.pk}/settings", {"reject_calls": True}), 403)
    device.refresh_from_db()
    assert device.reject_calls is False


def test_another_organizations_device_is_not_found(api, other_device, other_org, owner):
    error(api.get(f"/devices/{other_device.pk}/settings"), 404)
    error(api.patch(f"/devices/{other_device.pk}/settings", {"reject_calls": True}), 404)
    other_device.refresh_from_db()
    assert other_device.reject_calls is False


def test_without_a_key_it_is_401(device):
    assert ApiClient(None).get(f"/devices/{device.pk}/settings").status_code == 401
