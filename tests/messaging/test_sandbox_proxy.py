"""A number's proxy on the sandbox: a change reconnects the number, and the simulated network records it."""

import pytest

from messaging.services.device_settings import update_device_settings

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_changed_proxy_reconnects_the_number_through_it(wa, org):
    device = wa.linked_device(org, "Ours")
    assert wa.sandbox.recorded_proxy(device.pk) == ""
    update_device_settings(
        organization=org, device=device, proxy_url="socks5://shop:pw@proxy.example.com:1080"
    )
    wa.wait_event("device.connected", device=device)  # the worker restarted the client
    assert wa.sandbox.recorded_proxy(device.pk) == "socks5://shop:pw@proxy.example.com:1080"
    wa.mark()
    update_device_settings(organization=org, device=device, proxy_url="")
    wa.wait_event("device.connected", device=device)
    assert wa.sandbox.recorded_proxy(device.pk) == ""
