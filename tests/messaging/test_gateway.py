"""gateway.call: the web tier's door to the worker holding a device; clear errors, never a hang."""

import os
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


def _stuck_device(runtime_harness, org):
    """A device whose lease names a channel nobody listens on: a command to it is never answered."""
    device = Device.objects.create(organization=org, name="Stuck", wanted=True)
    nobody = runtime_harness.run(_new_channel())
    DeviceLease.objects.create(
        device=device,
        worker_id="stuck",
        channel_name=nobody,
        expires_at=timezone.now() + timedelta(minutes=1),
    )
    return device


def test_the_redis_clients_read_timeout_is_not_the_answer_the_configured_timeout_is(
    runtime_harness, org, settings, monkeypatch
):
    """redis.exceptions.TimeoutError (the Redis client's own read timeout) is not the built-in TimeoutError:
    it used to end the wait early as a 500. The caller waits WA_COMMAND_TIMEOUT and gets UPSTREAM_TIMEOUT."""
    from channels.layers import get_channel_layer
    from redis.exceptions import TimeoutError as RedisTimeout

    settings.WA_COMMAND_TIMEOUT = 0.6
    device = _stuck_device(runtime_harness, org)
    layer = get_channel_layer()
    receive = layer.receive
    read_timeouts = []

    async def receive_timing_out_first(channel):
        if not read_timeouts:
            read_timeouts.append(channel)
            raise RedisTimeout("Timeout reading from 127.0.0.1:6379")
        return await receive(channel)

    monkeypatch.setattr(layer, "receive", receive_timing_out_first)
    started = time.monotonic()
    with pytest.raises(protocol.UpstreamTimeout):
        gateway.call(device, "contacts")
    assert read_timeouts
    assert 0.6 <= time.monotonic() - started < 5


def test_with_the_channel_layer_down_a_command_is_unavailable_and_says_when_to_retry(
    runtime_harness, org, monkeypatch
):
    from channels.layers import get_channel_layer
    from redis.exceptions import ConnectionError as RedisConnectionError

    device = _stuck_device(runtime_harness, org)

    async def refused(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(get_channel_layer(), "send", refused)
    with pytest.raises(gateway.Unavailable) as info:
        gateway.call(device, "contacts")
    assert info.value.code == "SERVICE_UNAVAILABLE" and info.value.retry_after > 0


@pytest.mark.production
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the production channel layer)")
def test_on_redis_a_command_nobody_answers_is_a_504_after_the_configured_timeout(
    runtime_harness, org, settings
):
    """On channels_redis, waiting longer than redis-py's 5 s default read timeout still ends in UPSTREAM_TIMEOUT
    at WA_COMMAND_TIMEOUT (it was a redis TimeoutError, a 500, after 5 s)."""
    settings.WA_COMMAND_TIMEOUT = 6.5
    device = _stuck_device(runtime_harness, org)
    started = time.monotonic()
    with pytest.raises(protocol.UpstreamTimeout):
        gateway.call(device, "contacts")
    assert 6.5 <= time.monotonic() - started < 9
