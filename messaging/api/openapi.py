"""What the OpenAPI document says beyond django-ninja's own: the device choice, and every error an operation can answer.

django-ninja documents the success answer each endpoint declares. The failures are common to many endpoints and
come from a few places (auth, input validation, the device choice, the gateway), so they are declared here, in
one table, from what each operation is: one that takes input can answer 400, one that acts through a device can
answer what WhatsApp and the device's state give (403/404/501/502/503/504), one with a body 413 and 415. Every
failure answer is the same envelope (`Error`).
"""

from __future__ import annotations

from messaging.api.fields import DEVICE_PATTERN

# Where a device is named in the path (/devices/{device_id}...) or not chosen at all, these do not apply.
_NO_DEVICE_CHOICE = ("/devices", "/app/devices", "/app/login/qr/", "/app/info", "/health")
DEVICE_PARAMETERS = [
    {
        "name": "X-Device-Id",
        "in": "header",
        "required": False,
        "description": "The device (linked number) to act with: its ID, or its number. Optional with one device.",
        "schema": {"type": "string", "pattern": DEVICE_PATTERN},
    },
    {
        "name": "device_id",
        "in": "query",
        "required": False,
        "description": "The same as the X-Device-Id header (the header wins when both are given).",
        "schema": {"type": "string", "pattern": DEVICE_PATTERN},
    },
]

IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retry safely: the same key within 24 hours answers the first answer again and does nothing "
    "twice (see the description at the top).",
    "schema": {"type": "string", "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "description": "Every failure: a stable upper-case code, a sentence naming the offending field, details.",
    "required": ["code", "message", "results"],
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z][A-Z_]*$", "not": {"const": "SUCCESS"}},
        "message": {"type": "string"},
        "results": {
            "description": "null, or details: for VALIDATION_ERROR a list of {field, error}, one per problem."
        },
    },
}

# status: (when it is answered, its codes)
ERRORS: dict[int, tuple[str, tuple[str, ...]]] = {
    400: (
        "The input is not valid (the message names the field), WhatsApp refused it as invalid (a number not on "
        "WhatsApp: INVALID_JID), the number is already linked, or no device was chosen where the organization "
        "has several. (The reference server's statuses and codes, which its clients expect.)",
        ("VALIDATION_ERROR", "INVALID_JID", "ALREADY_LOGGED_IN", "DEVICE_ID_REQUIRED", "BAD_REQUEST"),
    ),
    401: (
        "No valid API key; or the device is not linked or not connected (link or reconnect it).",
        ("UNAUTHORIZED", "AUTHENTICATION_ERROR"),
    ),
    403: ("A read-only key tried to change something, or WhatsApp refused the operation.", ("FORBIDDEN",)),
    404: (
        "The device, or what the request names (group, message, chat, user), does not exist.",
        ("NOT_FOUND", "DEVICE_NOT_FOUND"),
    ),
    409: (
        "A request with this Idempotency-Key is still being answered: retry, and get its answer.",
        ("IDEMPOTENCY_KEY_IN_USE",),
    ),
    413: ("The request, or the media it names, is larger than this server accepts.", ("PAYLOAD_TOO_LARGE",)),
    415: (
        "The body is not in a media type this operation takes, or the file is not of a type it accepts.",
        ("UNSUPPORTED_MEDIA_TYPE",),
    ),
    422: (
        "The request is well-formed but cannot be done (a media URL that cannot be fetched, fields that "
        "contradict each other), or its Idempotency-Key was used for another request.",
        ("SEND_FAILED", "VALIDATION_ERROR", "IDEMPOTENCY_KEY_REUSED"),
    ),
    429: ("WhatsApp asks to wait before starting more new chats (its error 463).", ("WA_REACHOUT_TIMELOCK",)),
    500: ("Something went wrong on our side; it was logged.", ("INTERNAL_ERROR", "INTERNAL_SERVER_ERROR")),
    501: ("The WhatsApp backend cannot do this (see the README).", ("NOT_SUPPORTED",)),
    502: ("WhatsApp answered with an error.", ("UPSTREAM_ERROR",)),
    503: (
        "The session workers or the database cannot be reached right now: retry after `Retry-After` seconds.",
        ("SERVICE_UNAVAILABLE", "DEVICE_NOT_CONNECTED", "DEVICE_MANAGER_UNAVAILABLE"),
    ),
    504: ("WhatsApp did not answer in time.", ("GATEWAY_TIMEOUT", "UPSTREAM_TIMEOUT")),
}


def _device_bound(path: str, operation: dict) -> bool:
    names = {p["name"] for p in operation.get("parameters", [])}
    return "X-Device-Id" in names or "device_id" in names


def error_statuses(path: str, method: str, operation: dict) -> list[int]:
    """The failure statuses `operation` can answer, from what it is (see the module's docstring)."""
    statuses = {500, 503}  # 503: the database at its connection limit (any operation)
    if operation.get("security"):
        statuses.add(401)
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(400)
    if operation.get("requestBody"):
        statuses |= {413, 415}
    if method != "get":
        statuses.add(403)  # a read-only key
    if method == "post":
        statuses |= {409, 422}  # Idempotency-Key in use, or reused for another request
    if _device_bound(path, operation):
        statuses |= {400, 401, 403, 404, 422, 429, 501, 502, 503, 504}
    return sorted(statuses)


def _error_response(status: int) -> dict:
    when, codes = ERRORS[status]
    return {
        "description": f"{when} `code`: {', '.join(codes)}.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _one_file(operation: dict) -> None:
    """A multipart body takes its file uploaded or by URL (`*_url`): exactly one of them (oneOf)."""
    form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema")
    properties = (form or {}).get("properties", {})
    sources = [
        name for name, prop in properties.items() if name.endswith("_url") or prop.get("format") == "binary"
    ]
    if len(sources) > 1:
        form["oneOf"] = [{"required": [name]} for name in sources]


def complete(schema: dict) -> dict:
    """Add the device choice and the error answers to django-ninja's document (in place; returned)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if not path.startswith(_NO_DEVICE_CHOICE):
                names = {p["name"] for p in operation.get("parameters", [])}
                operation.setdefault("parameters", []).extend(
                    p for p in DEVICE_PARAMETERS if p["name"] not in names
                )
            if method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
            _one_file(operation)
            responses = operation.setdefault("responses", {})
            for status in error_statuses(path, method, operation):
                responses.setdefault(str(status), _error_response(status))
    return schema
