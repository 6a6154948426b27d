"""Device leases: exactly one session worker holds a wanted device, and a dead worker's devices move on."""

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging import sessions
from messaging.models import Device, DeviceLease

pytestmark = pytest.mark.django_db


def _device(org, *, wanted=True):
    return Device.objects.create(organization=org, name="Phone", wanted=wanted)


def _take(device, worker, seconds=30):
    return sessions.take_lease(
        device.pk, worker_id=worker, channel_name=f"chan-{worker}", lease_seconds=seconds
    )


def test_one_worker_takes_a_free_device_and_the_other_is_refused(org):
    device = _device(org)
    assert _take(device, "a")
    assert not _take(device, "b")
    lease = DeviceLease.objects.get(device=device)
    assert (lease.worker_id, lease.channel_name) == ("a", "chan-a")


def test_a_device_nobody_wants_is_not_taken(org):
    device = _device(org, wanted=False)
    assert not _take(device, "a")
    assert not DeviceLease.objects.exists()


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(org):
    device = _device(org)
    assert _take(device, "a")
    DeviceLease.objects.filter(device=device).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert device.pk in sessions.claimable_devices(worker_id="b")
    assert _take(device, "b")
    assert DeviceLease.objects.get(device=device).channel_name == "chan-b"
    # The old holder's heartbeat renews nothing of it and learns it lost it.
    assert sessions.renew_leases(worker_id="a", channel_name="chan-a", lease_seconds=30) == set()
    assert sessions.renew_leases(worker_id="b", channel_name="chan-b", lease_seconds=30) == {device.pk}


def test_a_live_lease_is_not_claimable_by_others_but_renewable_by_its_holder(org):
    device = _device(org)
    assert _take(device, "a", seconds=30)
    assert device.pk not in sessions.claimable_devices(worker_id="b")
    before = DeviceLease.objects.get(device=device).expires_at
    assert _take(device, "a", seconds=60)  # re-taking our own lease extends it
    assert DeviceLease.objects.get(device=device).expires_at > before


def test_release_frees_only_our_own_leases(org):
    mine, theirs = _device(org), _device(org)
    assert _take(mine, "a") and _take(theirs, "b")
    assert sessions.release_leases(worker_id="a") == 1
    assert list(DeviceLease.objects.values_list("device_id", flat=True)) == [theirs.pk]
    assert mine.pk in sessions.claimable_devices(worker_id="b")


def test_unwanted_devices_are_reported_for_release(org):
    kept, dropped = _device(org), _device(org)
    Device.objects.filter(pk=dropped.pk).update(wanted=False)
    assert sessions.unwanted_devices({kept.pk, dropped.pk}) == {dropped.pk}


def test_workers_are_recorded_and_forgotten(org):
    from messaging.models.device import SessionWorker

    sessions.register_worker(worker_id="w1", channel_name="c1")
    sessions.beat_worker(worker_id="w1", channel_name="c1", lease_seconds=3)
    assert SessionWorker.objects.get(worker_id="w1").channel_name == "c1"
    sessions.unregister_worker(worker_id="w1")
    assert not SessionWorker.objects.exists()
