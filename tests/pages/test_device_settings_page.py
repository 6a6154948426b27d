"""A number's Settings tab: auto-reject calls with a reply text, and its proxy (password masked); the simulated
phone's "Call this number"."""

from html import unescape

import pytest
from django.urls import reverse

from messaging.models import SandboxCall
from messaging.whatsapp import sandbox


def page(client, device) -> str:
    response = client.get(reverse("messaging:device_settings", args=[device.pk]))
    assert response.status_code == 200
    return unescape(response.content.decode())


def save(client, device, **data):
    return client.post(reverse("messaging:device_settings_save", args=[device.pk]), data)


@pytest.mark.parametrize("who", ["owner_client", "operator_client", "viewer_client"])
def test_every_member_sees_the_settings_and_the_tab(request, who, device):
    body = page(request.getfixturevalue(who), device)
    assert "Decline incoming calls" in body and "Proxy" in body
    assert reverse("messaging:device_settings", args=[device.pk]) in unescape(
        request.getfixturevalue(who).get(reverse("messaging:device", args=[device.pk])).content.decode()
    )
    assert ('id="save-settings"' in body) == (who != "viewer_client")


def test_an_operator_saves_them_and_the_password_is_shown_masked(operator_client, device):
    response = save(
        operator_client,
        device,
        reject_calls="on",
        reject_call_message="Aramaları kabul edemiyoruz, lütfen yazın.",
        proxy_url="http://shop:s3cret@proxy.example.com:3128",
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.reject_calls is True
    assert device.reject_call_message == "Aramaları kabul edemiyoruz, lütfen yazın."
    assert device.proxy_url == "http://shop:s3cret@proxy.example.com:3128"
    body = page(operator_client, device)
    assert "http://shop:****@proxy.example.com:3128" in body and "s3cret" not in body
    # Saved again as shown (masked): the stored password stays.
    assert (
        save(operator_client, device, proxy_url="http://shop:****@proxy.example.com:3128").status_code == 302
    )
    device.refresh_from_db()
    assert device.proxy_url == "http://shop:s3cret@proxy.example.com:3128" and device.reject_calls is False


def test_bad_input_is_shown_naming_the_field(owner_client, device):
    response = save(owner_client, device, proxy_url="ftp://proxy.example.com:21")
    assert response.status_code == 400
    body = unescape(response.content.decode())
    assert "Proxy: must start with socks5://, socks5h://, http:// or https://." in body
    response = save(owner_client, device, reject_call_message="x" * 1001, proxy_url="socks5://h.example:1080")
    assert response.status_code == 400
    assert "Reply to a declined caller: " in unescape(response.content.decode())
    device.refresh_from_db()
    assert (device.proxy_url, device.reject_call_message) == ("", "")


def test_viewers_may_not_change_them(viewer_client, device):
    assert save(viewer_client, device, reject_calls="on").status_code == 403
    device.refresh_from_db()
    assert device.reject_calls is False


def test_another_organizations_number_is_404(owner_client, other_device):
    assert owner_client.get(reverse("messaging:device_settings", args=[other_device.pk])).status_code == 404
    assert save(owner_client, other_device, reject_calls="on").status_code == 404
    other_device.refresh_from_db()
    assert other_device.reject_calls is False


def test_the_sandbox_says_it_only_records_the_proxy(owner_client, device, settings):
    settings.WA_BACKEND = "sandbox"
    sandbox.store_session(device_id=device.pk, phone=device.phone)
    device.proxy_url = "socks5://u:pw@p.example:1080"
    device.save()
    from messaging.models import SandboxSession

    SandboxSession.objects.filter(device=device).update(proxy_url=device.proxy_url)
    body = page(owner_client, device)
    assert "the simulated network has no real network" in body
    assert "socks5://u:****@p.example:1080" in body and "pw@" not in body


def test_the_simulated_phone_calls_the_number(operator_client, viewer_client, device, other_device, settings):
    settings.WA_BACKEND = "sandbox"
    settings.WA_SANDBOX_SEED = 7
    sandbox.store_session(device_id=device.pk, phone=device.phone)
    peer = sandbox.peer_phones()[0]
    url = reverse("messaging:sandbox_call", args=[device.pk])
    assert viewer_client.post(url, {"from_phone": peer}).status_code == 403
    assert (
        operator_client.post(
            reverse("messaging:sandbox_call", args=[other_device.pk]), {"from_phone": peer}
        ).status_code
        == 404
    )
    response = operator_client.post(url, {"from_phone": peer, "is_video": "on"}, follow=True)
    assert "The simulated contact is calling the number." in unescape(response.content.decode())
    call = SandboxCall.objects.get(callee=device.phone)
    assert (call.caller, call.is_video, call.state) == (peer, True, "ringing")
    detail = unescape(operator_client.get(reverse("messaging:device", args=[device.pk])).content.decode())
    assert "Call this number" in detail and 'data-call-state="ringing"' in detail
    bad = operator_client.post(url, {"from_phone": "not a number"}, follow=True)
    assert "Caller: enter a phone number" in unescape(bad.content.decode())
