"""The REST API (django-ninja): routes at the root, as the contract's existing clients expect.

Auth by organization API key (Bearer, X-Api-Key, or Basic with the key as password); every answer is the
contract's envelope `{"code", "message", "results"}`. The OpenAPI document is at /openapi.json and the
interactive docs at /docs, served from our own static files (static/vendor/swagger-ui/, no CDN).
"""

from django.shortcuts import render
from django.urls import reverse
from ninja import NinjaAPI
from ninja.openapi.docs import DocsBase

from groups.api import router as group_router
from messaging.api import app, call, chat, devices, message, newsletter, send, user
from messaging.api.common import AUTH, ApiParser, install_error_handlers


class LocalSwagger(DocsBase):
    """Swagger UI from our vendored static files (django-ninja's own template would load it from a CDN)."""

    def render_page(self, request, api, **kwargs):
        openapi_url = reverse(f"{api.urls_namespace}:openapi-json", kwargs=kwargs)
        return render(request, "api/docs.html", {"api": api, "openapi_url": openapi_url})


DESCRIPTION = """\
A drop-in for clients of the WhatsApp REST API described in the contract (only the base URL and the
credentials change).

**Auth**: an organization's API key as `Authorization: Bearer <key>`, `X-Api-Key: <key>` or HTTP Basic with
the key as password. A read-only key cannot send or change anything (403).

**Device**: choose the linked number with the `X-Device-Id` header or the `device_id` query parameter; with
exactly one device in the organization it is the default.

**Answers**: always `{"code": "SUCCESS" | <ERROR_CODE>, "message": "...", "results": ...}`; an error message
names the offending field.
"""

# Where a device is named in the path (/devices/{device_id}...) or not chosen at all, these do not apply.
_NO_DEVICE_CHOICE = ("/devices", "/app/devices", "/app/login/qr/", "/app/info", "/health")
DEVICE_PARAMETERS = [
    {
        "name": "X-Device-Id",
        "in": "header",
        "required": False,
        "description": "The device (linked number) to act with: its ID, or its number. Optional with one device.",
        "schema": {"type": "string"},
    },
    {
        "name": "device_id",
        "in": "query",
        "required": False,
        "description": "The same as the X-Device-Id header.",
        "schema": {"type": "string"},
    },
]


class WaportalAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """django-ninja's document, plus the device choice every device-bound operation reads from the request."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for path, item in schema["paths"].items():
            if path.startswith(_NO_DEVICE_CHOICE):
                continue
            for operation in item.values():
                names = {p["name"] for p in operation.get("parameters", [])}
                operation.setdefault("parameters", []).extend(
                    p for p in DEVICE_PARAMETERS if p["name"] not in names
                )
        return schema


api = WaportalAPI(
    title="waportal WhatsApp API",
    version="1.0.0",
    description=DESCRIPTION,
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs=LocalSwagger(),
    auth=AUTH,
    parser=ApiParser(),
)
install_error_handlers(api)

api.add_router("", app.router)
api.add_router("", user.router)
api.add_router("", send.router)
api.add_router("", message.router)
api.add_router("", chat.router)
api.add_router("", group_router)
api.add_router("", newsletter.router)
api.add_router("", devices.router)
api.add_router("", call.router)

urls = api.urls
