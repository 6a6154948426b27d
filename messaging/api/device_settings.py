"""GET|PATCH /devices/{id}/settings (our extension): auto-reject calls with a reply text, and the number's proxy."""

from __future__ import annotations

from ninja import Path, Router
from pydantic import Field, StrictBool

from messaging.api.common import AUTH, Envelope, acting, find_device, ok
from messaging.api.fields import DeviceRef, JsonObject
from messaging.proxy_url import MAX_LENGTH as PROXY_MAX
from messaging.proxy_url import PATTERN as PROXY_PATTERN
from messaging.services import device_settings as services

router = Router(tags=["devices"], auth=AUTH)


def settings_row(device) -> dict:
    return {"device_id": str(device.pk), **services.device_settings(device)}


class SettingsIn(JsonObject):
    reject_calls: StrictBool | None = Field(
        None, description="Decline every incoming call (call.offer fires anyway)."
    )
    reject_call_message: str | None = Field(
        None,
        max_length=services.REPLY_MAX,
        description='Sent to a declined caller (queued in the outbox); "" sends nothing.',
    )
    proxy_url: str | None = Field(
        None,
        max_length=PROXY_MAX,
        # Documented, and checked by the service (its message says what is wrong, naming the field).
        json_schema_extra={"pattern": PROXY_PATTERN},
        description='socks5://, socks5h://, http:// or https://, with user:password or not; "" connects '
        "directly. Answered with the password masked; sending the masked value back keeps it. A change "
        "reconnects the number.",
    )


@router.get("/devices/{device_id}/settings", response=Envelope, summary="The device's settings")
def get_settings(request, device_id: Path[DeviceRef]):
    ctx = acting(request, device=False)
    return ok(settings_row(find_device(ctx.organization, device_id)))


@router.patch("/devices/{device_id}/settings", response=Envelope, summary="Change the device's settings")
def set_settings(request, payload: SettingsIn, device_id: Path[DeviceRef]):
    ctx = acting(request, write=True, device=False)
    device = services.update_device_settings(
        organization=ctx.organization,
        device=find_device(ctx.organization, device_id),
        reject_calls=payload.reject_calls,
        reject_call_message=payload.reject_call_message,
        proxy_url=payload.proxy_url,
        api_key=ctx.api_key,
    )
    return ok(settings_row(device), "Settings saved.")
