"""/devices CRUD and linking (QR, pairing code), logout, reconnect, status; and the QR image both /app/login and
/devices/{id}/login link to. The device is named in the path here (never another organization's: 404)."""

from __future__ import annotations

import io
import re
from typing import Annotated, Literal

import segno
from django.core import signing
from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from ninja import Path, Router, Schema
from pydantic import AfterValidator, Field, WithJsonSchema

from messaging.api.common import (
    AUTH,
    ApiError,
    Envelope,
    acting,
    done,
    field_error,
    find_device,
    ok,
    require_linked,
)
from messaging.api.fields import URL, DeviceRef, HttpUrl, JsonObject, PhoneDigits, pattern, text
from messaging.events import rfc3339
from messaging.models import Device, DeviceStatus
from messaging.models.device import UNHELD_REASON
from messaging.services import devices as device_services
from messaging.services.device_webhook import PEER_ALIASES, PEER_EVENTS
from messaging.webhooks import EVENT_NAMES

router = Router(tags=["devices"], auth=AUTH)

QR_SALT = "waportal.api.qr"
QR_LINK_MAX_AGE = 300  # seconds a qr_link keeps working (the code it shows rotates meanwhile)


def shown_reason(device: Device) -> str:
    # A device stored as connected whose worker is gone is reported disconnected (Device.unheld), with why.
    return UNHELD_REASON if device.unheld else device.status_reason


# The peer's four states: its "connected" is a socket up but not logged in (waiting for a QR scan or a code).
PEER_STATES = {
    DeviceStatus.CONNECTED: "logged_in",
    DeviceStatus.QR_WAITING: "connected",
    DeviceStatus.PAIRING: "connected",
    DeviceStatus.CONNECTING: "connecting",
}


def peer_state(device: Device) -> str:
    return PEER_STATES.get(device.shown_status, "disconnected")


def device_row(device: Device) -> dict:
    """The peer's device row (id as a string, phone_number, display_name, state) and our fuller fields."""
    lease = getattr(device, "lease", None)  # a device no worker ever held has none
    return {
        "id": str(device.pk),
        "phone_number": device.phone,
        "display_name": device.push_name or device.name,
        "state": peer_state(device),
        "name": device.name,
        "device": device.jid,
        "jid": device.jid,
        "phone": device.phone,
        "push_name": device.push_name,
        "status": device.shown_status,
        "status_reason": shown_reason(device),
        "is_connected": device.is_connected and not device.unheld,
        "is_logged_in": bool(device.jid) and device.status != DeviceStatus.LOGGED_OUT,
        "last_seen_at": rfc3339(device.last_seen_at),
        "connected_at": rfc3339(device.connected_at),
        "created_at": rfc3339(device.created_at),
        "worker": lease.worker_id if lease is not None and lease.is_live else "",
    }


def status_row(device: Device) -> dict:
    return {
        "device_id": str(device.pk),
        "state": peer_state(device),
        "status": device.shown_status,
        "reason": shown_reason(device),
        "is_connected": device.is_connected and not device.unheld,
        "is_logged_in": bool(device.jid) and device.status != DeviceStatus.LOGGED_OUT,
        "jid": device.jid,
        "phone": device.phone,
    }


def qr_link(request, device: Device) -> str:
    token = signing.dumps({"d": device.pk, "o": device.organization_id}, salt=QR_SALT, compress=True)
    return request.build_absolute_uri(f"/app/login/qr/{token}.png")


def login_answer(request, device: Device) -> dict:
    """What a linking call answers: the QR (as an image link and as text) with how long it lasts."""
    if device.is_connected:
        # 400 ALREADY_LOGGED_IN, as the peer answers (its clients stop polling for a QR code on it).
        raise ApiError(
            400,
            "ALREADY_LOGGED_IN",
            "The device is already connected; log it out first to link another number.",
            results=status_row(device),
        )
    seconds = 0
    if device.qr_code and device.qr_expires_at:
        seconds = max(0, int((device.qr_expires_at - timezone.now()).total_seconds()))
    results = {
        **status_row(device),
        "qr_link": qr_link(request, device) if device.qr_code else "",
        "qr_code": device.qr_code,
        "qr_duration": seconds,
    }
    if not device.qr_code:
        return ok(results, "Linking started; the QR code is on its way (see the dashboard, or call again).")
    return ok(results, "Scan the QR code with WhatsApp on the phone (Linked devices → Link a device).")


def owned(ctx, device_id: str) -> Device:
    """The device named in the path: by its ID, its JID or its number, as X-Device-Id (another's: 404)."""
    return find_device(ctx.organization, device_id)


# ------------------------------------------------------------------------------------------ endpoints


# An event of ours or the peer's name of one (PEER_EVENTS), as the per-device webhook takes them.
WebhookEventName = Literal[tuple(sorted({*EVENT_NAMES, *PEER_EVENTS, *PEER_ALIASES}))]


class DeviceIn(JsonObject):
    name: text(80) | None = Field(None, description='Its name on the dashboard (default "WhatsApp").')
    # The peer's fields. Our device IDs are ours to choose: a device_id given becomes the name, when none is.
    device_id: str | None = Field(None, max_length=80, description="Accepted as the name (IDs are ours).")
    webhook_url: HttpUrl | None = Field(None, description="Give the device its webhook at once.")
    webhook_secret: str | None = Field(None, min_length=8, max_length=100)
    webhook_events: list[WebhookEventName] | None = Field(None, max_length=50)


@router.get("/devices", response=Envelope, summary="The organization's devices")
def list_devices(request):
    ctx = acting(request, device=False)
    return ok([device_row(d) for d in ctx.organization.devices.select_related("lease")])


@router.post("/devices", response=Envelope, summary="Add a device (then link it with /devices/{id}/login)")
def create_device(request, payload: DeviceIn):
    from messaging.services.device_webhook import set_device_webhook

    ctx = acting(request, write=True, device=False)
    name = payload.name if payload.name is not None else (payload.device_id or "").strip() or "WhatsApp"
    request.api_field_names = {"url": "webhook_url"}
    with transaction.atomic():  # a refused webhook adds no device either
        device = device_services.create_device(organization=ctx.organization, name=name, api_key=ctx.api_key)
        if payload.webhook_url:
            set_device_webhook(
                organization=ctx.organization,
                device=device,
                url=payload.webhook_url,
                secret=payload.webhook_secret,
                events=payload.webhook_events,
            )
    # 200, as the peer answers (its clients check for it).
    return ok(device_row(device), "Device added; link it with GET /devices/{id}/login.")


@router.get("/devices/{device_id}", response=Envelope, summary="One device")
def get_device(request, device_id: Path[DeviceRef]):
    ctx = acting(request, device=False)
    return ok(device_row(owned(ctx, device_id)))


@router.delete(
    "/devices/{device_id}",
    response=Envelope,
    exclude_unset=True,
    summary="Remove a device (logs it out first)",
)
def delete_device(request, device_id: Path[DeviceRef]):
    ctx = acting(request, write=True, device=False)
    device = owned(ctx, device_id)
    device_services.remove_device(organization=ctx.organization, device=device, api_key=ctx.api_key)
    return done(f"Device {device.pk} removed.")


@router.get("/devices/{device_id}/login", response=Envelope, summary="Link the device by QR code")
def device_login(request, device_id: Path[DeviceRef]):
    ctx = acting(request, write=True, device=False)
    device = device_services.start_linking(
        organization=ctx.organization, device=owned(ctx, device_id), api_key=ctx.api_key, say_unavailable=True
    )
    return login_answer(request, device)


class PairIn(Schema):
    phone: PhoneDigits


def pair_answer(ctx, device: Device, digits: str) -> dict:
    """Start linking by pairing code; `digits` is the phone number (fields.PhoneDigits)."""
    code = device_services.pair_device(
        organization=ctx.organization, device=device, phone=digits, api_key=ctx.api_key
    )
    return ok(
        {"pair_code": code.code, "expires_in": code.expires_in, "device_id": str(device.pk), "phone": digits},
        "Enter this code on the phone: WhatsApp → Linked devices → Link with phone number.",
    )


@router.post("/devices/{device_id}/login/code", response=Envelope, summary="Link the device by pairing code")
def device_login_code(request, payload: PairIn, device_id: Path[DeviceRef]):
    ctx = acting(request, write=True, device=False)
    return pair_answer(ctx, owned(ctx, device_id), payload.phone)


@router.post("/devices/{device_id}/logout", response=Envelope, summary="Unlink the device from WhatsApp")
def device_logout(request, device_id: Path[DeviceRef]):
    ctx = acting(request, write=True, device=False)
    device = device_services.logout_device(
        organization=ctx.organization, device=owned(ctx, device_id), api_key=ctx.api_key
    )
    return ok(status_row(device), "Logged out.")


@router.post("/devices/{device_id}/reconnect", response=Envelope, summary="Connect a linked device again")
def device_reconnect(request, device_id: Path[DeviceRef]):
    ctx = acting(request, write=True, device=False)
    device = owned(ctx, device_id)
    require_linked(device)
    device = device_services.reconnect_device(
        organization=ctx.organization, device=device, api_key=ctx.api_key
    )
    return ok(status_row(device), "Reconnecting.")


@router.get("/devices/{device_id}/status", response=Envelope, summary="The device's connection status")
def device_status(request, device_id: Path[DeviceRef]):
    ctx = acting(request, device=False)
    return ok(status_row(owned(ctx, device_id)))


@router.get(
    "/app/login/qr/{token}.png",
    auth=None,
    include_in_schema=False,
    summary="The current QR code of a device being linked (the link itself is the credential, for 5 minutes)",
)
def qr_image(request, token: str):
    try:
        claims = signing.loads(token, salt=QR_SALT, max_age=QR_LINK_MAX_AGE)
    except signing.BadSignature:
        raise field_error(
            "token",
            "this QR link is not valid or has expired; call /app/login again.",
            status=404,
            code="NOT_FOUND",
        ) from None
    device = Device.objects.filter(pk=claims.get("d"), organization_id=claims.get("o")).first()
    if device is None or not device.qr_code:
        raise ApiError(
            404, "NOT_FOUND", "There is no QR code to show: the device is linked, or linking has stopped."
        )
    buffer = io.BytesIO()
    segno.make(device.qr_code, error="L").save(buffer, kind="png", scale=8, border=4)
    response = HttpResponse(buffer.getvalue(), content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------------------------------ its webhook


def webhook_row(ctx, device: Device, endpoint) -> dict:
    from messaging.services.device_webhook import PEER_EVENTS

    theirs = {ours: peer for peer, ours in PEER_EVENTS.items()}
    full = ctx.api_key.access == "full"  # a read-only key does not see the signing secret
    return {
        "device_id": str(device.pk),
        "webhook_url": endpoint.url if endpoint else "",
        "webhook_secret": endpoint.secret if endpoint and full else "",
        "webhook_events": [theirs.get(e, e) for e in endpoint.events] if endpoint else [],
    }


@router.get("/devices/{device_id}/webhook", response=Envelope, summary="The device's webhook")
def get_webhook(request, device_id: Path[DeviceRef]):
    from messaging.services.device_webhook import device_webhook

    ctx = acting(request, device=False)
    device = owned(ctx, device_id)
    return ok(webhook_row(ctx, device, device_webhook(organization=ctx.organization, device=device)))


WEBHOOK_URL_PATTERN = pattern(URL, optional=True)


def _webhook_url(value: str) -> str:
    if not re.search(WEBHOOK_URL_PATTERN, value):
        raise ValueError(f'{value.strip()!r} is not an http(s) URL (nor "", which removes the webhook)')
    return value.strip()


# An http(s) URL, or "" (the webhook removed), as the document says it (schemathesis generates from it).
WebhookUrl = Annotated[
    str,
    AfterValidator(_webhook_url),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": WEBHOOK_URL_PATTERN,
            "maxLength": 500,
            "examples": ["https://example.com/hooks/whatsapp"],
            "description": 'Where to send events; "" removes the webhook.',
        }
    ),
]


class WebhookIn(Schema):
    webhook_url: WebhookUrl = Field(max_length=500)
    webhook_secret: str | None = Field(
        None, min_length=8, max_length=100, description="Signs X-Hub-Signature-256 (8 to 100 characters)."
    )
    webhook_events: list[WebhookEventName] | None = Field(
        None, max_length=50, description="None: keep; []: every event."
    )


@router.patch("/devices/{device_id}/webhook", response=Envelope, summary="Set or clear the device's webhook")
def set_webhook(request, payload: WebhookIn, device_id: Path[DeviceRef]):
    from messaging.services.device_webhook import set_device_webhook

    ctx = acting(request, write=True, device=False)
    device = owned(ctx, device_id)
    request.api_field_names = {"url": "webhook_url"}
    endpoint = set_device_webhook(
        organization=ctx.organization,
        device=device,
        url=payload.webhook_url,
        secret=payload.webhook_secret,
        events=payload.webhook_events,
    )
    return ok(webhook_row(ctx, device, endpoint), "Webhook set." if endpoint else "Webhook removed.")
