"""Idempotency-Key on every POST of the REST API: a retry of a request gets the first answer, and nothing is
done twice.

Put on every view of the API at once (`idempotent_urls`, in waportal/api.py), not per endpoint. A POST with the
header from an organization's API key:

- the first time: the key is recorded (in flight), the request runs, and its answer is kept with the key;
- again with the same request: the kept answer, as it was (header `Idempotent-Replayed: true`), and nothing runs;
- again while the first is still running: 409 IDEMPOTENCY_KEY_IN_USE (with Retry-After);
- again with another request (method, path, query or body differ): 422 IDEMPOTENCY_KEY_REUSED.

Answers that say nothing was done and invite a retry (429, 503) and unexpected failures (500) are not kept:
the key is free again and the retry runs. Keys are scoped to the organization and kept KEEP_FOR (24 h), then
removed by the periodic clean-up (`forget_expired`). A key whose request never finished (the web process was
killed mid-request) is taken over after STALE_AFTER.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from messaging.models import IdempotencyKey

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
# A request that holds its key longer than this died with its process (requests end far sooner: every wait of
# the API is bounded by WA_COMMAND_TIMEOUT and the like): a retry takes the key over.
STALE_AFTER = timedelta(minutes=10)
MAX_KEY_LENGTH = 255
# Answers not kept: nothing was done (429, 503: try again later) or it is not known what was (500).
NOT_KEPT = frozenset({429, 500, 503})


def _error(status: int, code: str, message: str, *, headers=None) -> JsonResponse:
    response = JsonResponse({"code": code, "message": message, "results": None}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _organization(request):
    """The organization of the request's API key (as the API authenticates it), or None."""
    from messaging.api.common import AUTH

    for auth in AUTH:
        try:
            key = auth(request)
        except Exception:  # a malformed header: the view answers it (401)
            key = None
        if key is not None:
            return key.organization
    return None


def fingerprint(request) -> str:
    """SHA-256 of what the request asks for: method, path, query, and the body (JSON compared as data, a form
    by its fields and its files' names and contents: a retry may send another multipart boundary)."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update("&".join(sorted(f"{k}={v}" for k, values in request.GET.lists() for v in values)).encode())
    digest.update(b"\n")
    content_type = request.content_type or ""
    if content_type.startswith("multipart/form-data"):
        try:
            fields = sorted(request.POST.lists())
        except MultiPartParserError:  # the endpoint refuses it (400) as it reads it: nothing to compare
            fields = [("", [request.body.hex()])]
        for name, values in fields:
            for value in values:
                digest.update(f"{name}={value}\n".encode())
        for name, files in sorted(request.FILES.lists()):
            for upload in files:
                digest.update(f"{name}:{upload.name}:".encode())
                for chunk in upload.chunks():
                    digest.update(chunk)
                upload.seek(0)  # the view reads it again
                digest.update(b"\n")
    else:
        body = request.body
        if content_type == "application/json":
            try:
                body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
            except ValueError:
                pass  # not JSON after all: compared as bytes (the view answers 400)
        digest.update(body)
    return digest.hexdigest()


def _claim(organization, key: str, request, print_: str):
    """Record the key as in flight; returns the new row, or an answer to give instead of running the view."""
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    organization=organization,
                    key=key,
                    method=request.method,
                    path=request.path[:500],
                    fingerprint=print_,
                    created_at=now,
                )
        except IntegrityError:
            pass
        found = IdempotencyKey.objects.filter(organization=organization, key=key).first()
        if found is None:
            continue  # removed meanwhile (its request failed): try to take it again
        if found.created_at <= now - KEEP_FOR:  # expired, not yet cleaned up: a new key
            IdempotencyKey.objects.filter(pk=found.pk, created_at=found.created_at).delete()
            continue
        if found.fingerprint != print_:
            return _error(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                f"{HEADER}: this key was used for another request ({found.method} {found.path} with other "
                "parameters) in the last 24 hours; use a new key for a new request.",
            )
        if found.status_code is None:
            if found.created_at <= now - STALE_AFTER and IdempotencyKey.objects.filter(
                pk=found.pk, status_code__isnull=True, created_at=found.created_at
            ).update(created_at=now):
                found.created_at = now
                return found  # its request died with its process: this one runs instead
            return _error(
                409,
                "IDEMPOTENCY_KEY_IN_USE",
                f"{HEADER}: a request with this key is still running; retry once it has been answered.",
                headers={"Retry-After": "1"},
            )
        response = HttpResponse(bytes(found.body), status=found.status_code, content_type=found.content_type)
        response["Idempotent-Replayed"] = "true"
        return response
    return _error(
        409,
        "IDEMPOTENCY_KEY_IN_USE",
        f"{HEADER}: other requests with this key are being answered; retry shortly.",
        headers={"Retry-After": "1"},
    )


def idempotent(view):
    """The view, answering POSTs with an Idempotency-Key as the module says."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if request.method != "POST" or key is None:
            return view(request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
            return _error(
                400,
                "VALIDATION_ERROR",
                f"{HEADER}: must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (a UUID, say).",
            )
        organization = _organization(request)
        if organization is None:
            return view(request, *args, **kwargs)  # it answers 401
        claimed = _claim(organization, key, request, fingerprint(request))
        if not isinstance(claimed, IdempotencyKey):
            return claimed
        try:
            response = view(request, *args, **kwargs)
        except BaseException:
            IdempotencyKey.objects.filter(pk=claimed.pk, status_code__isnull=True).delete()
            raise
        if response.status_code in NOT_KEPT or getattr(response, "streaming", False):
            IdempotencyKey.objects.filter(pk=claimed.pk, status_code__isnull=True).delete()
        else:
            IdempotencyKey.objects.filter(pk=claimed.pk).update(
                status_code=response.status_code,
                content_type=response.get("Content-Type", "")[:100],
                body=response.content,
            )
        return response

    return wrapper


def idempotent_urls(urls):
    """django-ninja's `api.urls` with every view made `idempotent`."""
    patterns, app_name, namespace = urls
    return [_wrap(pattern) for pattern in patterns], app_name, namespace


def _wrap(pattern):
    if isinstance(pattern, URLResolver):
        pattern.url_patterns[:] = [_wrap(p) for p in pattern.url_patterns]
    elif isinstance(pattern, URLPattern):
        pattern.callback = idempotent(pattern.callback)
    return pattern


def forget_expired(*, now=None) -> int:
    """Remove keys older than KEEP_FOR (the periodic clean-up); returns how many."""
    now = now or timezone.now()
    return IdempotencyKey.objects.filter(created_at__lt=now - KEEP_FOR).delete()[0]
