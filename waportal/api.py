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
from messaging.api import device_settings as device_settings_api
from messaging.api.common import AUTH, ApiParser, install_error_handlers
from messaging.api.idempotency import idempotent_urls
from messaging.api.openapi import complete


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

**Retries**: send an `Idempotency-Key` header (any unique string of up to 255 characters, a UUID say) with a
POST, and retry with the same key after a timeout, a dropped connection or a 5xx: within 24 hours the same key
from the same organization gets the first answer again (with `Idempotent-Replayed: true`) and nothing is sent
or changed twice. The same key with another request is a 422 `IDEMPOTENCY_KEY_REUSED`; while the first request
is still running, a 409 `IDEMPOTENCY_KEY_IN_USE`. Answers 429, 500 and 503 are not kept: the retry runs.

**Answers**: always `{"code": "SUCCESS" | <ERROR_CODE>, "message": "...", "results": ...}`; an error message
names the offending field.

**Text**: any text field, in any body or query, may hold any Unicode character except NUL (`\\u0000`) and lone
surrogates, which cannot be stored: such a value is a 400 naming its field.
"""


class WaportalAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """django-ninja's document, plus the device choice, Idempotency-Key and the error answers
        (messaging.api.openapi)."""
        return complete(super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params))


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
api.add_router("", device_settings_api.router)

urls = idempotent_urls(api.urls)  # Idempotency-Key on every POST, once for the whole API
