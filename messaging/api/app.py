"""GET /app/*: link the chosen device (QR or pairing code), log out, reconnect, list devices, status."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from django.db import DatabaseError, connection
from django.urls import get_script_prefix
from ninja import Router

from messaging.api.common import AUTH, Acting, ApiError, Envelope, acting, ok, require_linked
from messaging.api.devices import device_row, login_answer, pair_answer, status_row
from messaging.api.fields import PhoneDigits
from messaging.services import devices as device_services
from messaging.services import media

router = Router(tags=["app"], auth=AUTH)

DEFAULT_DEVICE_NAME = "WhatsApp"


def _device_or_first(request) -> Acting:
    """The chosen device; an organization with none gets its first one (what /app/login's clients expect)."""
    ctx = acting(request, write=True, device=False)
    if not ctx.organization.devices.exists() and not (
        request.headers.get("X-Device-Id") or request.GET.get("device_id")
    ):
        ctx.device = device_services.create_device(
            organization=ctx.organization, name=DEFAULT_DEVICE_NAME, api_key=ctx.api_key
        )
        return ctx
    return acting(request, write=True)


@router.get(
    "/app/login", response=Envelope, summary="Link by QR code: answers qr_link (an image) and qr_duration"
)
def login(request):
    ctx = _device_or_first(request)
    device = device_services.start_linking(
        organization=ctx.organization, device=ctx.device, api_key=ctx.api_key, say_unavailable=True
    )
    return login_answer(request, device)


@router.get("/app/login-with-code", response=Envelope, summary="Link by pairing code: answers pair_code")
def login_with_code(request, phone: PhoneDigits):
    ctx = _device_or_first(request)
    return pair_answer(ctx, ctx.device, phone)


@router.get("/app/logout", response=Envelope, summary="Unlink the device from WhatsApp")
def logout(request):
    ctx = acting(request, write=True)
    device = device_services.logout_device(
        organization=ctx.organization, device=ctx.device, api_key=ctx.api_key
    )
    return ok(status_row(device), "Logged out.")


@router.get("/app/reconnect", response=Envelope, summary="Connect the linked device again")
def reconnect(request):
    ctx = acting(request, write=True)
    require_linked(ctx.device)
    device = device_services.reconnect_device(
        organization=ctx.organization, device=ctx.device, api_key=ctx.api_key
    )
    return ok(status_row(device), "Reconnecting.")


@router.get("/app/devices", response=Envelope, summary="The linked devices (name, device JID)")
def devices(request):
    ctx = acting(request, device=False)
    return ok([device_row(d) for d in ctx.organization.devices.select_related("lease")])


@router.get("/app/status", response=Envelope, summary="Whether the chosen device is connected and logged in")
def status(request):
    ctx = acting(request)
    return ok(status_row(ctx.device))


def _version() -> str:
    try:
        return package_version("waportal")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "0.0.0"


@router.get("/app/info", response=Envelope, summary="Server version, base path and upload size limits")
def info(request):
    acting(request, device=False)
    return ok(
        {
            "name": "waportal",
            "version": _version(),
            "base_path": get_script_prefix().rstrip("/"),
            "max_bytes": {kind: media.max_bytes(kind) for kind in media.MEDIA_MAX_BYTES},
        }
    )


@router.get("/health", auth=None, response=Envelope, summary="Ready to serve? No key needed (200 or 503)")
def health(request):
    """Ready means the database answers: everything (keys, devices, the outbox) lives there. Redis is left out
    on purpose: without it live updates stall, but requests are still answered and nothing is lost."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        raise ApiError(
            503,
            "DEVICE_MANAGER_UNAVAILABLE",
            "The database does not answer; this server cannot serve requests right now.",
            headers={"Retry-After": "5"},
        ) from None
    return ok({"status": "OK"}, "OK")
