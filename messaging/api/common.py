"""What every REST endpoint shares: API-key auth, the envelope, errors, device selection, recipients, media input.

Endpoints stay thin: `acting(request, write=...)` gives the key's organization, the key and the chosen device
(or raises an ApiError with the contract's code and status); they call one service or one gateway operation
and return `ok(results)`. Every failure becomes the envelope through the handlers `install_error_handlers`
puts on the NinjaAPI, with a message that names the offending field.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import APIKeyHeader, HttpBasicAuth, HttpBearer

from accounts.models import ApiKey, ApiKeyAccess, hash_api_key
from messaging.api.fields import DEVICE_PATTERN
from messaging.models import Device, DeviceStatus
from messaging.services import media, text
from messaging.whatsapp import protocol
from waportal.prepared import Prepared

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ envelope


class Envelope(Schema):
    """Every answer: `code` SUCCESS or a stable upper-case error word, a sentence for people, the results."""

    code: str
    message: str
    results: Any = None


def ok(results: Any = None, message: str = "Success") -> dict:
    return {"code": "SUCCESS", "message": message, "results": results}


def done(message: str) -> dict:
    """Success with no `results` key at all, where the peer server returns nothing (its clients' models say so).
    The operation must be declared with `exclude_unset=True`, or the Envelope would add `"results": null`."""
    return {"code": "SUCCESS", "message": message}


class ApiError(Exception):
    """An answer other than success: HTTP status, stable code, a message naming the field when there is one."""

    def __init__(
        self, status: int, code: str, message: str, *, field: str = "", results: Any = None, headers=None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.results = results
        self.headers = headers or {}


def field_error(field: str, problem: str, *, status: int = 400, code: str = "VALIDATION_ERROR") -> ApiError:
    return ApiError(
        status, code, f"{field}: {problem}", field=field, results=[{"field": field, "error": problem}]
    )


# ------------------------------------------------------------------------------------------ JSON bodies


def is_json(content_type: str) -> bool:
    """application/json (any parameters, e.g. charset) or a +json type such as application/merge-patch+json."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class ApiParser(Parser):
    """How the API reads its input (django-ninja calls `parse_body` for every endpoint that takes a JSON body,
    when the body is not empty, and `parse_querydict` for the query, a form and its files).

    A body not said to be JSON is 415; text that could not be stored (`messaging.services.text`) is 400
    naming its field, wherever it came from. Raised in `parse_body`, an ApiError reaches the handlers as the
    cause of django-ninja's "Cannot parse request body" (see `install_error_handlers`)."""

    def parse_body(self, request):
        content_type = request.META.get("CONTENT_TYPE", "")
        if not is_json(content_type):
            raise ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "body: this endpoint takes JSON; send it with 'Content-Type: application/json' (it came as "
                f"{content_type.split(';', 1)[0].strip() or 'no Content-Type'}).",
                field="body",
            )
        data = json.loads(request.body)
        if (bad := text.problem_at(data)) is not None:
            raise field_error(text.field_path(bad[0]), bad[1])
        return data

    def parse_querydict(self, data, list_fields, request):
        parsed = super().parse_querydict(data, list_fields, request)
        if (bad := text.problem_at(parsed)) is not None:
            raise field_error(text.field_path(bad[0][:1]), bad[1])
        return parsed


# WhatsApp's refusals (protocol.ErrorCode) and the HTTP status each gets. A request WhatsApp finds invalid
# passed our validation, which is what the OpenAPI document describes: 422, where 400 means "not as documented".
WHATSAPP_STATUS = {
    protocol.ErrorCode.NOT_CONNECTED: 401,  # the peer server's status and code (PEER_CODES)
    protocol.ErrorCode.NOT_LOGGED_IN: 401,
    protocol.ErrorCode.NOT_SUPPORTED: 501,
    protocol.ErrorCode.NOT_FOUND: 404,
    protocol.ErrorCode.FORBIDDEN: 403,
    protocol.ErrorCode.INVALID: 422,  # well-formed as documented, refused by WhatsApp (the peer says 400)
    protocol.ErrorCode.TIMEOUT: 504,
    protocol.ErrorCode.UPSTREAM: 502,
    protocol.ErrorCode.UNAVAILABLE: 503,
    protocol.ErrorCode.REACHOUT_TIMELOCK: 429,
}

# The codes the peer server (go-whatsapp-web-multidevice) answers where ours differ: its clients switch on them.
PEER_CODES = {
    protocol.ErrorCode.NOT_CONNECTED: "AUTHENTICATION_ERROR",
    protocol.ErrorCode.NOT_LOGGED_IN: "AUTHENTICATION_ERROR",
    protocol.ErrorCode.TIMEOUT: "GATEWAY_TIMEOUT",
}

# Where a request's input did not validate: these parts of a pydantic location are not field names.
_LOCATION_PARTS = {"body", "query", "form", "file", "path", "header", "cookie", "payload", "data", "__root__"}


def _error_field(loc) -> str:
    names = [str(part) for part in loc if isinstance(part, str) and part not in _LOCATION_PARTS]
    return names[-1] if names else ""


def _response(api, request, error: ApiError):
    body = {"code": error.code, "message": error.message, "results": error.results}
    response = api.create_response(request, body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def install_error_handlers(api) -> None:
    """Make every failure of `api` the contract's envelope (replacing django-ninja's own shapes)."""

    def api_error(request, exc: ApiError):
        return _response(api, request, exc)

    def invalid(request, problems: list[dict]):
        """400 naming the first offending field in the message; every problem in the results."""
        first = problems[0] if problems else {"field": "", "error": "the request is not valid"}
        message = f"{first['field']}: {first['error']}" if first["field"] else first["error"]
        return _response(
            api, request, ApiError(400, "VALIDATION_ERROR", message, field=first["field"], results=problems)
        )

    def ninja_validation(request, exc: NinjaValidationError):
        problems = []
        for err in exc.errors:
            field = _error_field(err.get("loc") or ())
            msg = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
            if err.get("type") == "missing":
                msg = "is required"
            problems.append({"field": field, "error": msg})
        return invalid(request, problems)

    def django_validation(request, exc: DjangoValidationError):
        renames = getattr(request, "api_field_names", {})
        if hasattr(exc, "error_dict"):
            problems = [
                {"field": renames.get(field, field), "error": " ".join(str(m) for m in messages)}
                for field, messages in exc.message_dict.items()
            ]
        else:
            problems = [{"field": "", "error": " ".join(exc.messages)}]
        return invalid(request, problems)

    def whatsapp_error(request, exc: protocol.WhatsAppError):
        code = PEER_CODES.get(exc.code, str(exc.code))
        # Nothing was done and it may work in a while (the session workers cannot be reached): say when.
        headers = {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else None
        return _response(
            api,
            request,
            ApiError(WHATSAPP_STATUS.get(exc.code, 502), code, exc.message or code, headers=headers),
        )

    def not_found(request, exc):
        message = str(exc) if str(exc) else "Not found."
        return _response(api, request, ApiError(404, "NOT_FOUND", message))

    def forbidden(request, exc):
        return _response(api, request, ApiError(403, "FORBIDDEN", str(exc) or "Not allowed."))

    def unauthorized(request, exc):
        return _response(
            api,
            request,
            ApiError(
                401,
                "UNAUTHORIZED",
                "A valid API key is required: send it as 'Authorization: Bearer <key>', 'X-Api-Key: <key>' "
                "or HTTP Basic with the key as password.",
                headers={"WWW-Authenticate": 'Basic realm="waportal", charset="UTF-8"'},
            ),
        )

    def http_error(request, exc: HttpError):
        if isinstance(exc.__cause__, ApiError):  # refused by ApiParser
            return _response(api, request, exc.__cause__)
        codes = {
            400: "VALIDATION_ERROR",
            403: "FORBIDDEN",
            404: "NOT_FOUND",
            405: "METHOD_NOT_ALLOWED",
            429: "THROTTLED",
        }
        message = str(exc)
        if message == "Cannot parse request body":
            message = "body: is not valid JSON."
        return _response(
            api, request, ApiError(exc.status_code, codes.get(exc.status_code, "ERROR"), message)
        )

    def internal(request, exc):
        logger.exception("API %s %s failed", request.method, request.path, exc_info=exc)
        return _response(
            api,
            request,
            ApiError(
                500, "INTERNAL_SERVER_ERROR", "Something went wrong on our side; it was logged. Try again."
            ),
        )

    def database_unavailable(request, exc: OperationalError):
        """PostgreSQL at its connection limit, this process's pool exhausted, the database restarting: not the
        client's doing, and it passes. A request takes its connection at its first query and keeps it, so the
        pool's and PostgreSQL's limits refuse it before it has written anything."""
        logger.warning("API %s %s: the database is unavailable: %s", request.method, request.path, exc)
        return _response(
            api,
            request,
            ApiError(
                503,
                "SERVICE_UNAVAILABLE",
                "The database is busy or unavailable right now; try again shortly.",
                headers={"Retry-After": "5"},
            ),
        )

    api.add_exception_handler(Exception, internal)
    api.add_exception_handler(OperationalError, database_unavailable)
    api.add_exception_handler(ApiError, api_error)
    api.add_exception_handler(NinjaValidationError, ninja_validation)
    api.add_exception_handler(DjangoValidationError, django_validation)
    api.add_exception_handler(protocol.WhatsAppError, whatsapp_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(ObjectDoesNotExist, lambda request, exc: not_found(request, "Not found."))
    api.add_exception_handler(PermissionDenied, forbidden)
    api.add_exception_handler(AuthenticationError, unauthorized)
    api.add_exception_handler(
        RequestDataTooBig,
        lambda request, exc: _response(
            api,
            request,
            ApiError(413, "PAYLOAD_TOO_LARGE", "body: the request is larger than this server accepts."),
        ),
    )
    api.add_exception_handler(
        SuspiciousOperation,
        lambda request, exc: _response(api, request, ApiError(400, "VALIDATION_ERROR", f"body: {exc}")),
    )
    api.add_exception_handler(
        MultiPartParserError,
        lambda request, exc: _response(
            api,
            request,
            ApiError(400, "VALIDATION_ERROR", f"body: is not valid multipart/form-data ({exc})."),
        ),
    )
    api.add_exception_handler(HttpError, http_error)


# ------------------------------------------------------------------------------------------ auth

# last_used_at is written at most this often per key (a busy key would otherwise write on every request).
LAST_USED_RESOLUTION = timedelta(seconds=30)


# (key_hash is unique: no ORDER BY to build; SQL compiled once, as every API request runs it: see prepared.py)
_active_key = Prepared(
    lambda key_hash: (
        ApiKey.objects.select_related("organization")
        .filter(key_hash=key_hash, revoked_at__isnull=True)
        .order_by()[:1]
    ),
    str,
)


def key_for(raw: str | None) -> ApiKey | None:
    """The active key with this raw value, or None (wrong or revoked). Stamps last_used_at."""
    raw = (raw or "").strip()
    if not raw or len(raw) > 200:
        return None
    key = next(iter(_active_key(hash_api_key(raw))), None)
    if key is not None:
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
    return key


class BearerKey(HttpBearer):
    def authenticate(self, request, token):
        return key_for(token)


class HeaderKey(APIKeyHeader):
    param_name = "X-Api-Key"

    def authenticate(self, request, key):
        return key_for(key)


class BasicKey(HttpBasicAuth):
    """HTTP Basic with the key as password (existing clients only know Basic); any user name."""

    def authenticate(self, request, username, password):
        return key_for(password or username)


AUTH = [BearerKey(), HeaderKey(), BasicKey()]


# ------------------------------------------------------------------------------------------ acting


@dataclass(slots=True)
class Acting:
    """Who acts (the key's organization and the key) and on which device."""

    organization: Any
    api_key: ApiKey
    device: Device | None

    def service_kwargs(self) -> dict:
        return {
            "organization": self.organization,
            "device": self.device,
            "actor": None,
            "api_key": self.api_key,
        }

    def reader_kwargs(self) -> dict:
        """What a service's read takes: who reads, through which number."""
        return {"organization": self.organization, "device": self.device}


def _device_choice(request) -> str:
    """The device named by the X-Device-Id header, else by the device_id query parameter ("" for none).

    Both are checked against the pattern the document gives them, even the one not used."""
    header, query = request.headers.get("X-Device-Id"), request.GET.get("device_id")
    for given, where in ((header, "the X-Device-Id header"), (query, "the device_id parameter")):
        if given is not None and not re.search(DEVICE_PATTERN, given):
            raise field_error(
                "device_id", f"{where} is not a device ID (see GET /devices) or a linked number."
            )
    return (header or "").strip() or (query or "").strip()


# The two device reads of most API requests, their SQL compiled once (see prepared.py).
_first_devices = Prepared(
    lambda organization_id: (
        Device.objects.select_related("lease").filter(organization_id=organization_id).order_by()[:2]
    ),
    int,
)
_device_by_id = Prepared(
    lambda organization_id, pk: (
        Device.objects.select_related("lease").filter(organization_id=organization_id, pk=pk).order_by()[:1]
    ),
    int,
    int,
)


def _of_organization(devices: list[Device], organization) -> list[Device]:
    """The devices read for `organization`, each knowing it (as `organization.devices` would set it)."""
    for device in devices:
        device.organization = organization
    return devices


def find_device(organization, raw: str) -> Device:
    """The organization's device named by its ID, its JID or its phone number in any usual form
    (905551000000, +90 555 100 00 00); 400 for none of these, 404 for no such device here."""
    raw = (raw or "").strip()
    if not re.search(DEVICE_PATTERN, raw):
        raise field_error("device_id", "is not a device ID (see GET /devices) or a linked number.")
    devices = organization.devices.select_related("lease")
    device = None
    digits = raw.isascii() and raw.isdigit()  # ("³".isdigit() is true, and int() refuses it)
    if digits and len(raw) < 19:
        device = next(iter(_of_organization(_device_by_id(organization.pk, int(raw)), organization)), None)
    if device is None and not (digits and len(raw) < 7):  # too short for a number: an ID, not here
        try:
            jid = protocol.normalize_jid(raw)
        except ValueError:  # as documented (DEVICE_PATTERN), but no number: no such device
            jid = ""
        if jid:
            device = devices.filter(jid=jid).first() or devices.filter(phone=protocol.jid_user(jid)).first()
    if device is None:
        raise ApiError(
            404,
            "DEVICE_NOT_FOUND",
            "device_id: no such device in this organization.",
            field="device_id",
            results={"device_id": raw},
        )
    return device


def _chosen_device(request, organization) -> Device:
    return choose_device(organization, _device_choice(request))


def choose_device(organization, raw: str | int | None) -> Device:
    """The organization's device named by `raw` (its ID or its number), or its only one when `raw` is empty;
    an ApiError naming device_id otherwise (404 for a device of another organization)."""
    raw = str(raw if raw is not None else "").strip()
    if raw:
        return find_device(organization, raw)
    devices = _of_organization(_first_devices(organization.pk), organization)  # (one, or "which?")
    if len(devices) == 1:
        return devices[0]
    if not devices:
        raise ApiError(
            400,
            "DEVICE_ID_REQUIRED",
            "device_id: this organization has no device yet; add one with POST /devices (or GET /app/login) and link it.",
            field="device_id",
        )
    raise ApiError(
        400,
        "DEVICE_ID_REQUIRED",
        "device_id: this organization has several devices; name one with the X-Device-Id header or device_id.",
        field="device_id",
    )


def acting(request, *, write: bool = False, device: bool = True) -> Acting:
    """The caller's organization and key, refusing writes by a read-only key (403), and the chosen device."""
    key: ApiKey = request.auth
    if write and key.access != ApiKeyAccess.FULL:
        raise ApiError(
            403,
            "FORBIDDEN",
            "This API key is read-only: it cannot send or change anything. Use a key with full access.",
        )
    organization = key.organization
    return Acting(organization, key, _chosen_device(request, organization) if device else None)


def require_linked(device: Device) -> None:
    """Refuse a device that was never linked (or was logged out): nothing could ever send for it."""
    if not device.jid or device.status in (DeviceStatus.NEW, DeviceStatus.LOGGED_OUT):
        raise ApiError(
            401,
            "AUTHENTICATION_ERROR",
            f"The device {device.pk} is not linked to a WhatsApp number; link it with GET /app/login first.",
        )


# ------------------------------------------------------------------------------------------ inputs


def jid(value, field: str = "phone") -> str:
    """A recipient: a full JID or bare digits (with +, spaces, dashes), made a JID; 400 naming `field`."""
    if not isinstance(value, str):
        raise field_error(field, "is required.")
    try:
        return protocol.normalize_jid(value)
    except ValueError as exc:
        raise field_error(field, str(exc)) from None


def phone_digits(value, field: str = "phone") -> str:
    if not isinstance(value, str):
        raise field_error(field, "is required.")
    try:
        return protocol.normalize_phone(value)
    except ValueError as exc:
        raise field_error(field, str(exc)) from None


# ------------------------------------------------------------------------------------------ media

# Sizes and types per kind: messaging.services.media, shared with the dashboard. Said here in the API's words.
KIND_WORDS = {
    "image": "a JPEG, PNG, WebP or GIF image",
    "avatar": "a JPEG, PNG or WebP image",
    "photo": "a JPEG, PNG or WebP image",
    "sticker": "a WebP (or PNG) image",
    "audio": "an OGG/Opus, MP3, M4A, AAC, AMR or WAV audio file",
    "video": "an MP4, 3GP, MOV or WebM video",
}


@dataclass(slots=True)
class Media:
    """A checked file to send: `file` is the upload (on disk when large) or the fetched URL's temporary file,
    never read whole here; `data` reads it, for the small pictures that go to WhatsApp as bytes."""

    file: Any
    mime_type: str
    filename: str

    @property
    def data(self) -> bytes:
        self.file.seek(0)
        return self.file.read()


def media_input(
    *, kind: str, field: str, upload=None, url: str | None = None, url_field: str | None = None
) -> Media:
    """One file of `kind` from an upload or a URL (exactly one): size-capped (413) and type-checked (415) by
    its size and its first bytes, without reading it into memory."""
    url = (url or "").strip() if isinstance(url, str) else ""
    url_field = url_field or f"{field}_url"
    if upload is not None and url:
        raise field_error(field, f"give either the file or {url_field}, not both.")
    if upload is None and not url:
        raise field_error(
            field, f"is required: upload the file, or give {url_field}." if url_field else "is required."
        )
    limit = media.max_bytes(kind)
    if upload is not None:
        if upload.size is not None and upload.size > limit:
            raise field_error(field, f"is larger than {limit} bytes.", status=413, code="PAYLOAD_TOO_LARGE")
        file, declared, filename, source_field = upload, upload.content_type or "", upload.name or "", field
    else:
        from messaging.safe_fetch import fetch_to_file

        timeout = float(getattr(settings, "API_MEDIA_FETCH_TIMEOUT", 20.0))
        try:
            file, declared, filename = fetch_to_file(url, field=url_field, max_bytes=limit, timeout=timeout)
        except DjangoValidationError as exc:
            problem = (
                " ".join(exc.message_dict.get(url_field, exc.messages))
                if hasattr(exc, "error_dict")
                else " ".join(exc.messages)
            )
            codes = {e.code for errors in getattr(exc, "error_dict", {}).values() for e in errors}
            if "too_large" in codes:
                raise field_error(url_field, problem, status=413, code="PAYLOAD_TOO_LARGE") from None
            if "invalid_url" in codes:
                raise field_error(url_field, problem) from None
            # A well-formed URL that could not be fetched (no such host, a private address, an error answer).
            raise field_error(url_field, problem, status=422) from None
        source_field = url_field
    try:
        mime, filename = media.check(file, kind, declared=declared, filename=filename)
    except media.MediaRefused as refused:
        if refused.reason == "too_large":
            raise field_error(
                source_field, f"is larger than {refused.limit} bytes.", status=413, code="PAYLOAD_TOO_LARGE"
            ) from None
        if refused.reason == "type":
            raise field_error(
                source_field, f"must be {KIND_WORDS[kind]}.", status=415, code="UNSUPPORTED_MEDIA_TYPE"
            ) from None
        raise field_error(source_field, "the file is empty.") from None
    return Media(file, mime, filename)
