"""gateway.call: the web tier's door to the worker holding a device; clear errors, never a hang."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging import gateway
from messaging.models import Device, DeviceLease
from messaging.whatsapp import protocol

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operation_runs_on_the_holding_worker_and_returns_typed_results(wa, org):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    found = gateway.call(device, "check_numbers", phones=[peer, wa.sandbox.unregistered_phone()])
    assert [type(r) for r in found] == [protocol.OnWhatsApp, protocol.OnWhatsApp]
    assert [r.is_in for r in found] == [True, False]


def test_a_refusal_comes_back_as_its_error(wa, org):
    device = wa.linked_device(org)
    with pytest.raises(protocol.WhatsAppError) as info:
        gateway.call(device, "edit", chat=f"{wa.peers[0]}@s.whatsapp.net", message_id="3EB0NOPE", text="x")
    assert info.value.code in {"NOT_FOUND", "VALIDATION_ERROR"}


def test_no_lease_means_device_not_connected(org):
    device = Device.objects.create(organization=org, name="Idle", wanted=True)
    with pytest.raises(protocol.NotConnected) as info:
        gateway.call(device, "contacts")
    assert info.value.code == "DEVICE_NOT_CONNECTED"
    DeviceLease.objects.create(
        device=device, worker_id="gone", channel_name="x!y", expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(protocol.NotConnected):
        gateway.call(device, "contacts")


def test_a_worker_that_never_answers_is_an_upstream_timeout(runtime_harness, org, settings):
    settings.WA_COMMAND_TIMEOUT = 0.5
    device = Device.objects.create(organization=org, name="Stuck", wanted=True)
    nobody = runtime_harness.run(_new_channel())
    DeviceLease.objects.create(
        device=device,
        worker_id="stuck",
        channel_name=nobody,
        expires_at=timezone.now() + timedelta(minutes=1),
    )
    started = time.monotonic()
    with pytest.raises(protocol.UpstreamTimeout) as info:
        gateway.call(device, "contacts")
    assert info.value.code == "UPSTREAM_TIMEOUT"
    assert time.monotonic() - started < 5


def test_a_device_the_worker_holds_but_is_not_connected_says_so(wa, org, owner):
    from messaging.services import devices

    device = devices.create_device(organization=org, name="Linking", actor=owner)
    devices.start_linking(organization=org, device=device, actor=owner)
    with pytest.raises(protocol.NotConnected):
        gateway.call(device, "contacts")


def test_unknown_operations_are_refused_before_anything_is_sent(org):
    device = Device.objects.create(organization=org, name="Any")
    with pytest.raises(protocol.InvalidRequest):
        gateway.call(device, "format_disk")


async def _new_channel():
    from channels.layers import get_channel_layer

    return await get_channel_layer().new_channel()
