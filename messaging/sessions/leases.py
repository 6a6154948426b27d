"""The session workers' rows: device leases (who drives which device) and the worker registry.

Plain synchronous functions: the worker runs each of them in the runtime's DB threads (`runtime.db`), never on
its loop.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging import events


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _lease_until(lease_seconds: float):
    return timezone.now() + timedelta(seconds=lease_seconds)


def take_lease(device_id: int, *, worker_id: str, channel_name: str, lease_seconds: float) -> bool:
    """Take the device's lease if nobody holds a live one (or we do). Atomic across processes.

    The UPDATE only matches an expired row (or our own), so of two workers racing for it on PostgreSQL the
    second re-checks the condition after the first commits and matches nothing; with no row at all the
    INSERT of one of them fails on the unique device column.
    """
    from django.db.models import Q

    from messaging.models import Device, DeviceLease

    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds)
    if not Device.objects.filter(pk=device_id, wanted=True).exists():
        return False
    updated = DeviceLease.objects.filter(
        Q(expires_at__lte=now) | Q(worker_id=worker_id), device_id=device_id
    ).update(worker_id=worker_id, channel_name=channel_name, acquired_at=now, expires_at=until)
    if updated:
        return True
    if DeviceLease.objects.filter(device_id=device_id).exists():
        return False  # someone holds a live lease
    try:
        with transaction.atomic():
            DeviceLease.objects.create(
                device_id=device_id,
                worker_id=worker_id,
                channel_name=channel_name,
                acquired_at=now,
                expires_at=until,
            )
    except IntegrityError:
        return False  # another worker inserted it first
    return True


def renew_leases(*, worker_id: str, channel_name: str, lease_seconds: float) -> set[int]:
    """Extend every lease this worker still holds; returns their device IDs (a taken-over one is gone)."""
    from messaging.models import DeviceLease

    DeviceLease.objects.filter(worker_id=worker_id).update(
        expires_at=_lease_until(lease_seconds), channel_name=channel_name
    )
    return set(DeviceLease.objects.filter(worker_id=worker_id).values_list("device_id", flat=True))


def claimable_devices(*, worker_id: str) -> list[int]:
    """Wanted devices with no live lease (never held, released, or their worker died)."""
    from django.db.models import Q

    from messaging.models import Device

    now = timezone.now()
    return list(
        Device.objects.filter(wanted=True)
        .filter(Q(lease__isnull=True) | Q(lease__expires_at__lte=now) | Q(lease__worker_id=worker_id))
        .order_by("id")
        .values_list("id", flat=True)
    )


def fair_share(*, worker_id: str, lease_seconds: float, max_devices: int) -> int:
    """How many devices this worker should hold: its share of the wanted devices among the live workers
    (rounded up, so that together they hold them all), capped by `max_devices` (0: no cap).

    A worker counts as live while its heartbeat is younger than a lease: a dead one stops counting about
    when its leases run out, so the others' shares grow in time to take its devices over."""
    from messaging.models import Device
    from messaging.models.device import SessionWorker

    since = timezone.now() - timedelta(seconds=lease_seconds)
    others = SessionWorker.objects.filter(heartbeat_at__gt=since).exclude(worker_id=worker_id).count()
    wanted = Device.objects.filter(wanted=True).count()
    share = -(-wanted // (others + 1))
    return min(share, max_devices) if max_devices else share


def handover_order(device_ids) -> list[int]:
    """Of the devices we hold, the ones to give another worker first: linked ones (a QR code being scanned
    stays where it is), newest first."""
    from messaging.models import Device

    return list(
        Device.objects.filter(pk__in=list(device_ids))
        .exclude(jid="")
        .order_by("-id")
        .values_list("id", flat=True)
    )


def release_leases(*, worker_id: str, device_ids=None) -> int:
    from messaging.models import DeviceLease

    rows = DeviceLease.objects.filter(worker_id=worker_id)
    if device_ids is not None:
        rows = rows.filter(device_id__in=list(device_ids))
    return rows.delete()[0]


def unwanted_devices(device_ids) -> set[int]:
    """Of `device_ids`, those no longer wanted (logged out, removed) that the worker should let go."""
    from messaging.models import Device

    ids = set(device_ids)
    wanted = set(Device.objects.filter(pk__in=ids, wanted=True).values_list("id", flat=True))
    return ids - wanted


def device_jid(device_id: int) -> str | None:
    from messaging.models import Device

    return Device.objects.filter(pk=device_id).values_list("jid", flat=True).first() or None


def device_proxy(device_id: int) -> str:
    """The proxy the device's connection goes through ("" for none)."""
    from messaging.models import Device

    return Device.objects.filter(pk=device_id).values_list("proxy_url", flat=True).first() or ""


def abandon_linking(device_id: int) -> bool:
    """Mark a never-linked device (no JID) as not wanted any more; returns whether it was one."""
    from messaging.models import Device

    return bool(Device.objects.filter(pk=device_id, jid="", wanted=True).update(wanted=False))


def register_worker(*, worker_id: str, channel_name: str) -> None:
    from messaging.models.device import SessionWorker

    now = timezone.now()
    SessionWorker.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "hostname": socket.gethostname()[:200],
            "pid": os.getpid(),
            "channel_name": channel_name,
            "heartbeat_at": now,
        },
        create_defaults={
            "hostname": socket.gethostname()[:200],
            "pid": os.getpid(),
            "channel_name": channel_name,
            "started_at": now,
            "heartbeat_at": now,
        },
    )


def beat_worker(*, worker_id: str, channel_name: str, lease_seconds: float) -> None:
    from messaging.models.device import SessionWorker

    now = timezone.now()
    if not SessionWorker.objects.filter(worker_id=worker_id).update(heartbeat_at=now):
        register_worker(worker_id=worker_id, channel_name=channel_name)
    # Forget workers that stopped beating long ago (killed, machine gone): the dashboard lists live ones.
    SessionWorker.objects.filter(
        heartbeat_at__lt=now - timedelta(seconds=max(60.0, lease_seconds * 10))
    ).delete()


def unregister_worker(*, worker_id: str) -> None:
    from messaging.models.device import SessionWorker

    SessionWorker.objects.filter(worker_id=worker_id).delete()


def mark_stopped(device_ids, reason: str) -> list[events.Outcome]:
    """Connected devices this worker lets go of are no longer connected (until another worker has them)."""
    from messaging.models import DeviceStatus

    outcomes = []
    for device_id in device_ids:
        outcomes += events.record_status(
            device_id, DeviceStatus.DISCONNECTED, reason, only_if=DeviceStatus.CONNECTED
        )
    return outcomes
