"""The write path of devices: create, link (QR or pairing code), log out, reconnect, rename, remove.

Each function takes the tenant explicitly and looks the device up through it (another organization's device
is DoesNotExist, a 404 for the caller), records an audit entry, and talks to the session worker holding the
device only through the gateway, outside any transaction.

Who may log a number out or remove it: owners and admins on the dashboard, and API keys with full access
(keys are made by owners and admins only, so a full key acts with the authority they gave it; the drop-in
contract's /app/logout and DELETE /devices need it). Operators and read-only keys may not: logging out
unlinks the phone (someone must scan again), removing deletes the number's chats, messages and media for
good. Both refusals are PermissionDenied (403) with a sentence saying who may. Operators still link, pair,
reconnect and rename.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as _noop

from accounts.models import ApiKeyAccess, Role
from accounts.services import record_audit
from messaging import events, gateway
from messaging.models import Device, DeviceStatus
from messaging.models.device import UNHELD_REASON
from messaging.whatsapp import protocol
from waportal.i18n import localize

logger = logging.getLogger(__name__)

__all__ = [
    "create_device",
    "start_linking",
    "pair_device",
    "logout_device",
    "reconnect_device",
    "rename_device",
    "remove_device",
    "may_unlink",
    "removal_summary",
]

NAME_MAX = 80
LINK_EVENTS = frozenset({"device.qr", "device.pair_code", "device.connected"})


def qr_wait_seconds() -> float:
    """How long start_linking waits for the worker's first QR code, so callers can show it at once."""
    return float(getattr(settings, "WA_QR_WAIT_SECONDS", 8.0))


def _clean_name(name) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "a device needs a name."})
    if len(name) > NAME_MAX:
        raise ValidationError({"name": f"at most {NAME_MAX} characters."})
    return name


def _get(organization, device) -> Device:
    return organization.devices.get(pk=device if isinstance(device, int) else device.pk)


def _nudge(device_id: int, kind: str) -> None:
    """Tell the holding worker (or, with none, any worker) about the device; best effort."""
    try:
        gateway.run_sync(lambda: gateway.notify_worker(device_id, {"type": kind}), timeout=5)
    except protocol.WhatsAppError:
        pass  # the workers' heartbeat finds it anyway


def _announce(name: str, device: Device) -> None:
    """Once committed, tell the organization's open pages live that a number came or went (no webhook)."""
    outcome = events.Outcome(
        name, device.organization_id, device.pk, events.device_payload(device), webhook=False
    )

    def push():
        try:
            gateway.run_sync(lambda: events.publish(outcome), timeout=5)
        except Exception:  # best effort: the pages show it on their next load
            logger.warning("live push of %s for device %s failed", name, outcome.device_id, exc_info=True)

    transaction.on_commit(push)


def may_unlink(organization, *, actor=None, api_key=None) -> bool:
    """Whether this member or key may log out or remove the organization's numbers (see the module)."""
    if api_key is not None:
        return api_key.organization_id == organization.pk and api_key.access == ApiKeyAccess.FULL
    if actor is None:
        return True  # the system itself (management commands, clean-up)
    membership = organization.memberships.filter(user=actor).first() if actor.is_authenticated else None
    return membership is not None and membership.has_role(Role.ADMIN)


def _require_unlinker(organization, *, actor, api_key, member_refusal: str, key_refusal: str) -> None:
    if not may_unlink(organization, actor=actor, api_key=api_key):
        raise PermissionDenied(key_refusal if api_key is not None else member_refusal)


def removal_summary(device: Device) -> dict:
    """What removing the number deletes: its chats, its messages, and the media files stored with them."""
    from messaging.models import Message

    media = (
        Message.objects.filter(device=device)
        .exclude(media="")
        .aggregate(files=Count("id"), size=Sum("media_size"))
    )
    return {
        "chats": device.chats.count(),
        "messages": Message.objects.filter(device=device).count(),
        "media_files": media["files"] or 0,
        "media_bytes": media["size"] or 0,
        "contacts": device.contacts.count(),
    }


def create_device(*, organization, name, actor=None, api_key=None) -> Device:
    name = _clean_name(name)
    with transaction.atomic():
        device = Device.objects.create(organization=organization, name=name)
        record_audit(
            organization=organization, action="device.create", actor=actor, api_key=api_key, obj=device
        )
        _announce("device.created", device)
    return device


def _qr_is_live(device: Device) -> bool:
    return bool(device.qr_code and device.qr_expires_at and device.qr_expires_at > timezone.now())


def start_linking(
    *,
    organization,
    device,
    actor=None,
    api_key=None,
    wait: float | None = None,
    say_unavailable: bool = False,
) -> Device:
    """Ask a worker to link the device (QR flow) and wait, bounded, for its first QR code.

    Returns the device as it is then: `qr_waiting` with `qr_code` set, `connected` if it already was (or
    linked meanwhile), or still `connecting` if no worker answered within the wait (the QR then arrives live).
    With the channel layer down no worker hears of it (a worker's heartbeat still starts it, the device being
    wanted): `say_unavailable` makes that a `gateway.Unavailable` for a caller that cannot show the QR code live.
    """
    device = _get(organization, device)
    if device.is_connected:
        return device
    held = gateway.worker_channel(device) is not None
    if held and device.wanted and device.status == DeviceStatus.QR_WAITING and _qr_is_live(device):
        return device  # already showing a live code
    with transaction.atomic():
        device = Device.objects.select_for_update(no_key=True).get(pk=device.pk)
        device.wanted = True
        device.status = DeviceStatus.CONNECTING
        device.status_reason = ""
        device.qr_code = ""
        device.qr_expires_at = None
        device.pair_code = ""
        device.save(
            update_fields=[
                "wanted",
                "status",
                "status_reason",
                "qr_code",
                "qr_expires_at",
                "pair_code",
                "updated_at",
            ]
        )
        record_audit(
            organization=organization, action="device.link", actor=actor, api_key=api_key, obj=device
        )

    device_id = device.pk

    async def kick():
        # The holder restarts the client (a new QR); with no holder, any worker claims it and starts it.
        await gateway.notify_worker(device_id, {"type": gateway.START})

    def ready():
        current = Device.objects.filter(pk=device_id).first()
        if current is not None and (current.is_connected or _qr_is_live(current) or current.pair_code):
            return {"event": "ready"}
        if current is not None and current.unreachable:
            return {"event": "unreachable"}  # said at once: no QR code comes while WhatsApp cannot be reached
        return None

    def answered(message) -> bool:
        if message.get("event") in LINK_EVENTS:
            return True
        data = message.get("data") or {}
        return (
            message.get("event") == "device.disconnected"
            and data.get("reason") == protocol.UNREACHABLE_REASON
        )

    wait = qr_wait_seconds() if wait is None else wait
    try:
        gateway.run_sync(
            lambda: gateway.await_device_event(
                device_id, match=answered, kick=kick, ready=ready, timeout=wait
            ),
            timeout=wait + 5,
        )
    except gateway.CHANNEL_LAYER_ERRORS:  # Redis is down: the QR is pushed live once a heartbeat starts it
        gateway.note_layer_failure()
        if say_unavailable:
            raise gateway.Unavailable() from None
    except protocol.WhatsAppError:
        pass  # no answer in time: the QR is pushed live when it comes, or shown on reload
    device.refresh_from_db()
    return device


def pair_device(*, organization, device, phone, actor=None, api_key=None) -> protocol.PairCode:
    """Link by pairing code: the code to type on the phone `phone` (digits with country code)."""
    device = _get(organization, device)
    try:
        digits = protocol.normalize_phone(phone)
    except ValueError as exc:
        raise ValidationError({"phone": localize(str(exc))}) from None
    if device.is_connected:
        raise protocol.InvalidRequest(
            _noop("The device is already linked and connected; log it out to link another number.")
        )
    if gateway.worker_channel(device) is None or not device.wanted:
        # A pairing code is asked of a running (linking) client.
        device = start_linking(organization=organization, device=device, actor=actor, api_key=api_key)
    code = gateway.call(device, "pair_phone", phone=digits)
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).update(pair_code=code.code, updated_at=timezone.now())
        record_audit(
            organization=organization,
            action="device.pair",
            actor=actor,
            api_key=api_key,
            obj=device,
            details={"phone": digits},
        )
    return code


def logout_device(*, organization, device, actor=None, api_key=None) -> Device:
    """Unlink the number from WhatsApp (when connected) and stop driving it. The device row stays."""
    device = _get(organization, device)
    _require_unlinker(
        organization,
        actor=actor,
        api_key=api_key,
        member_refusal=_("Only owners and admins may log a number out: it must then be linked again."),
        key_refusal=_("Only an API key with full access may log a number out."),
    )
    if gateway.worker_channel(device) is not None:
        try:
            gateway.call(device, "logout")
        except protocol.NotConnected:
            pass  # not connected: nothing to unlink upstream; the session is dropped below
    with transaction.atomic():
        record_audit(
            organization=organization, action="device.logout", actor=actor, api_key=api_key, obj=device
        )
    device.refresh_from_db()
    if device.status != DeviceStatus.LOGGED_OUT or device.wanted:
        # The backend did not report it (or never held it): record it the same way, live and for webhooks.
        event = protocol.LoggedOutEvent(device_id=device.pk, reason="logged out from waportal")
        gateway.run_sync(lambda: events.handle(event), timeout=gateway.command_timeout())
    _nudge(device.pk, gateway.RELEASE)
    device.refresh_from_db()
    return device


def reconnect_device(*, organization, device, actor=None, api_key=None) -> Device:
    """Connect a linked device again (after a disconnect, or when no worker holds it)."""
    device = _get(organization, device)
    if not device.jid:
        raise ValidationError(
            {"device": "this device is not linked yet: link it with a QR code or a pairing code."}
        )
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).update(wanted=True, updated_at=timezone.now())
        record_audit(
            organization=organization, action="device.reconnect", actor=actor, api_key=api_key, obj=device
        )
    if gateway.worker_channel(device) is not None:
        try:
            gateway.call(device, "reconnect")
        except protocol.NotConnected:
            _nudge(device.pk, gateway.START)
    else:
        _nudge(device.pk, gateway.CLAIM)
    device.refresh_from_db()
    return device


def rename_device(*, organization, device, name, actor=None, api_key=None) -> Device:
    name = _clean_name(name)
    with transaction.atomic():
        device = Device.objects.select_for_update(no_key=True).get(pk=_get(organization, device).pk)
        old = device.name
        device.name = name
        device.save(update_fields=["name", "updated_at"])
        record_audit(
            organization=organization,
            action="device.rename",
            actor=actor,
            api_key=api_key,
            obj=device,
            details={"from": old, "to": name},
        )
    return device


def remove_device(*, organization, device, actor=None, api_key=None) -> None:
    """Log the number out (best effort), stop its client and delete the device with its chats, messages,
    contacts and the media files stored for them."""
    from messaging.models import Message

    device = _get(organization, device)
    _require_unlinker(
        organization,
        actor=actor,
        api_key=api_key,
        member_refusal=_("Only owners and admins may remove a number and everything stored for it."),
        key_refusal=_("Only an API key with full access may remove a number."),
    )
    if device.jid and gateway.worker_channel(device) is not None:
        try:
            gateway.call(device, "logout")
        except protocol.WhatsAppError:
            pass  # it goes anyway; WhatsApp drops an unused linked device by itself
    Device.objects.filter(pk=device.pk).update(wanted=False)
    _nudge(device.pk, gateway.RELEASE)
    with transaction.atomic():
        record_audit(
            organization=organization,
            action="device.remove",
            actor=actor,
            api_key=api_key,
            obj=device,
            details={"jid": device.jid, "name": device.name, **removal_summary(device)},
        )
        _announce("device.removed", device)
        media = list(Message.objects.filter(device=device).exclude(media="").values_list("media", flat=True))
        device.delete()
        # Files only once the rows are surely gone: a rolled-back removal must not lose a message's media.
        transaction.on_commit(lambda: _delete_files(media))


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not delete the media file %s of a removed number", name, exc_info=True)


def announce_unheld(window: float | None = None) -> int:
    """Tell open pages live about numbers whose session worker stopped renewing its lease: they show
    disconnected, "since" the lease ran out. Returns how many were announced.

    A worker that dies says nothing; another worker takes its numbers over within the lease time and that
    takeover is seen live. When no worker is left, nothing else would tell the pages, which kept showing
    "connected" until reloaded. Run periodically (every WA_LEASE_SECONDS): it announces the leases that
    ran out within the last `window` seconds (twice that period by default, so a late run misses none; an
    announcement said twice only renders the same badge again). Nothing is written: the stored status
    stays what the worker last knew, and whoever takes the number over reports the new one.
    """
    lease_seconds = float(settings.WA_LEASE_SECONDS)
    window = 2 * lease_seconds if window is None else window
    now = timezone.now()
    devices = list(
        Device.objects.select_related("lease").filter(
            status=DeviceStatus.CONNECTED,
            lease__expires_at__lte=now,
            lease__expires_at__gt=now - timedelta(seconds=window),
        )
    )
    outcomes = [
        events.Outcome(
            "device.status",
            device.organization_id,
            device.pk,
            {**events.device_payload(device), "status": device.shown_status, "reason": UNHELD_REASON},
            webhook=False,
        )
        for device in devices
    ]
    if outcomes:
        gateway.run_sync(lambda: events.deliver(outcomes), timeout=10)
    return len(outcomes)
