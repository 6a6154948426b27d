"""What goes on the wire of a webhook: the signed JSON envelope and one HTTP attempt (never raising)."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from messaging import safe_fetch

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EXCERPT_BYTES = 4096
EXCERPT_CHARS = 1000  # of the answer, kept in the attempt log


def setting(name: str, default):
    return getattr(settings, name, default)


def rfc3339(value: datetime) -> str:
    """The envelope's timestamp format (the same as messaging.events', which this package does not import:
    events publish, webhooks subscribe)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value: sha256=<hex HMAC-SHA256 of the raw body keyed with the secret>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (and what our tests do) to trust a delivery."""
    return hmac.compare_digest(sign(secret, body), header or "")


def envelope(*, event: str, device_id: int | None, payload: dict, at=None) -> str:
    """The JSON body: {"event", "device_id", "timestamp" (RFC 3339, UTC), "payload"}."""
    body = {
        "event": event,
        "device_id": device_id,
        "timestamp": rfc3339(at or timezone.now()),
        "payload": payload,
    }
    return json.dumps(body, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Outcome:
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0
    retry_after: float | None = None
    answered_at: datetime | None = None  # when the attempt ended (it may be recorded a moment later)

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return self.error != "" and not self.error.startswith("refused:")
        return self.status_code >= 500 or self.status_code == 429


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def http_client() -> httpx.Client:
    """One pooled, guarded client per process (httpx clients are thread-safe); timeouts are per request."""
    global _client
    with _client_lock:
        if _client is None:
            _client = safe_fetch.guarded_client(timeout=float(setting("WEBHOOK_TIMEOUT_SECONDS", 10)))
        return _client


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.get_current_timezone())
    return max(0.0, (when - timezone.now()).total_seconds())


def post(delivery, endpoint) -> Outcome:
    """One HTTP attempt; never raises."""
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(endpoint.secret, body),
        IDEMPOTENCY_HEADER: str(delivery.idempotency_key),
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Delivery": str(delivery.pk),
        "X-Webhook-Attempt": str(delivery.attempts),
    }
    timeout = float(setting("WEBHOOK_TIMEOUT_SECONDS", 10))
    started = time.monotonic()
    outcome = Outcome()
    try:
        with http_client().stream(
            "POST", endpoint.url, content=body, headers=headers, timeout=timeout
        ) as response:
            outcome.status_code = response.status_code
            outcome.retry_after = parse_retry_after(response.headers.get("retry-after"))
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= EXCERPT_BYTES:
                    break
            outcome.excerpt = received[:EXCERPT_BYTES].decode("utf-8", "replace")[:EXCERPT_CHARS]
            if response.is_redirect:
                outcome.error = "redirects are not followed"
    except safe_fetch.UnsafeTarget as exc:
        outcome.error = f"refused: {exc}"[:500]
    except httpx.TimeoutException:
        outcome.error = f"timed out after {timeout:g}s"
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    except Exception as exc:  # a bug here must not leave the delivery locked
        logger.exception("webhook delivery %s failed unexpectedly", delivery.pk)
        outcome.error = f"{type(exc).__name__}: {exc}"[:500]
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    outcome.answered_at = timezone.now()
    return outcome
