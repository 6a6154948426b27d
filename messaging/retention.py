"""Retention: what is forgotten after how long, so that the database and the media store stay flat.

Run by the periodic task `messaging.apply_retention` (settings.CELERY_BEAT_SCHEDULE: celery beat in production,
the embedded task worker otherwise). Each setting at 0 keeps everything:

- MEDIA_RETENTION_DAYS: a message's stored file older than this is removed; the message stays, with
  `payload["media_expired_at"]` saying when, so the conversation says "File expired" instead of offering a
  download (WhatsApp's own copy has expired long before: its reference is dropped too).
- AUDIT_RETENTION_DAYS: audit events older than this are deleted.

Delivery logs (WEBHOOK_LOG_RETENTION_DAYS) are forgotten by messaging.webhooks.queueing.cleanup. Deletes go in
chunks of RETENTION_CHUNK rows, each its own short transaction: a large backlog never holds the (SQLite) write
lock for long, and a run stopped halfway has done what it did.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

RETENTION_CHUNK = 500


def _days(name: str) -> float:
    return float(getattr(settings, name, 0) or 0)


def delete_in_chunks(queryset, *, chunk: int = RETENTION_CHUNK) -> int:
    """Delete what `queryset` selects, `chunk` rows per transaction (cascades included); how many rows of its
    model went."""
    model = queryset.model
    deleted = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            return deleted
        with transaction.atomic():
            deleted += model.objects.filter(pk__in=ids).delete()[1].get(model._meta.label, 0)


def expire_media(*, now=None, chunk: int = RETENTION_CHUNK) -> int:
    """Remove stored media files older than MEDIA_RETENTION_DAYS (the messages stay, marked); how many."""
    from messaging.models import Message

    days = _days("MEDIA_RETENTION_DAYS")
    if days <= 0:
        return 0
    now = now or timezone.now()
    old = Message.objects.filter(created_at__lt=now - timedelta(days=days)).exclude(media="")
    expired = 0
    failed: list[int] = []
    while True:
        batch = list(old.exclude(pk__in=failed).order_by("pk").only("pk", "media", "payload")[:chunk])
        if not batch:
            return expired
        for message in batch:
            name = message.media.name
            try:
                message.media.storage.delete(name)
            except Exception:  # a store that is down: the file goes next time, the row must not stay behind
                logger.exception("could not remove the expired media file %s", name)
                failed.append(message.pk)  # tried again on the next run
                continue
            payload = dict(message.payload or {})
            payload.pop("media_ref", None)
            payload["media_expired_at"] = now.isoformat()
            Message.objects.filter(pk=message.pk).update(media="", payload=payload)
            expired += 1


def forget_audit(*, now=None, chunk: int = RETENTION_CHUNK) -> int:
    """Delete audit events older than AUDIT_RETENTION_DAYS; how many."""
    from accounts.models import AuditEvent

    days = _days("AUDIT_RETENTION_DAYS")
    if days <= 0:
        return 0
    now = now or timezone.now()
    return delete_in_chunks(AuditEvent.objects.filter(created_at__lt=now - timedelta(days=days)), chunk=chunk)


def apply_retention(*, now=None) -> dict:
    """Every retention rule once; what each removed."""
    result = {"media_files": expire_media(now=now), "audit_events": forget_audit(now=now)}
    if any(result.values()):
        logger.info("retention: %s", result)
    return result
