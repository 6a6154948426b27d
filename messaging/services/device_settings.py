"""A number's settings: decline incoming calls (with an optional reply text), and the proxy it connects through.

Set on the number's Settings page and by `GET|PATCH /devices/{id}/settings`. The proxy's password is stored
(the connection needs it) but shown masked everywhere, the audit log included. A changed proxy restarts the
number's connection, so that it goes through the new one at once.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.services import record_audit
from messaging import gateway
from messaging import proxy_url as proxies
from messaging.models import Device
from messaging.services import text as text_rules
from messaging.whatsapp import protocol

__all__ = ["REPLY_MAX", "device_settings", "update_device_settings"]

REPLY_MAX = 1000  # characters of the reply text to a declined caller


def device_settings(device: Device) -> dict:
    """The settings as pages and API answers show them (the proxy's password masked)."""
    return {
        "reject_calls": device.reject_calls,
        "reject_call_message": device.reject_call_message,
        "proxy_url": device.proxy_shown,
    }


def _clean_message(value) -> str:
    value = (value or "").strip()
    if len(value) > REPLY_MAX:
        raise ValidationError({"reject_call_message": _("at most %(max)s characters.") % {"max": REPLY_MAX}})
    if found := text_rules.problem(value):
        raise ValidationError({"reject_call_message": found})
    return value


def _clean_proxy(value, current: str) -> str:
    value = value or ""  # not stripped: a blank in it is refused, as the API's pattern says
    if value and value == proxies.mask(current):
        return current  # the masked value shown, sent back unchanged: keep the stored password
    value = proxies.keep_password(
        value, current
    )  # edited where shown: the masked password stays the stored one
    if found := proxies.problem(value):
        raise ValidationError({"proxy_url": found})
    return proxies.normalize(value)


def update_device_settings(
    *,
    organization,
    device,
    reject_calls: bool | None = None,
    reject_call_message: str | None = None,
    proxy_url: str | None = None,
    actor=None,
    api_key=None,
) -> Device:
    """Change the settings given (None keeps one). Bad input raises ValidationError naming the field; a
    changed proxy reconnects the number (when a session worker drives it)."""
    pk = device if isinstance(device, int) else device.pk
    with transaction.atomic():
        device = Device.objects.select_for_update(no_key=True).get(pk=organization.devices.get(pk=pk).pk)
        changes: dict = {}
        if reject_calls is not None and bool(reject_calls) != device.reject_calls:
            changes["reject_calls"] = bool(reject_calls)
        if reject_call_message is not None:
            message = _clean_message(reject_call_message)
            if message != device.reject_call_message:
                changes["reject_call_message"] = message
        if proxy_url is not None:
            proxy = _clean_proxy(proxy_url, device.proxy_url)
            if proxy != device.proxy_url:
                changes["proxy_url"] = proxy
        if not changes:
            return device
        old_proxy = device.proxy_url
        for key, value in changes.items():
            setattr(device, key, value)
        device.save(update_fields=[*changes, "updated_at"])
        details = {k: v for k, v in changes.items() if k != "proxy_url"}
        if "proxy_url" in changes:  # never the password in clear
            details["proxy_url"] = {"from": proxies.mask(old_proxy), "to": device.proxy_shown}
        record_audit(
            organization=organization,
            action="device.settings",
            actor=actor,
            api_key=api_key,
            obj=device,
            details=details,
        )
    if "proxy_url" in changes and device.wanted:
        _restart(device.pk)
    return device


def _restart(device_id: int) -> None:
    """Have the holding worker restart the number's client (it reads the proxy as it starts); best effort."""
    try:
        gateway.run_sync(lambda: gateway.notify_worker(device_id, {"type": gateway.START}), timeout=5)
    except protocol.WhatsAppError:
        pass  # no worker reachable now: the next one to start the client reads the new proxy
