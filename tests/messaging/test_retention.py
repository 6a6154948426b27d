"""Retention: old media files go (the message stays and says so), old audit events and delivery logs go, in
chunks; nothing goes while a setting is 0; the periodic schedule runs it."""

import os
from datetime import timedelta

from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from messaging import retention, webhooks
from messaging.models import Message, WebhookDelivery
from messaging.tasks import apply_retention
from tests.pages.conftest import make_chat, make_message
from tests.webhooks.conftest import make_device


def message_with_file(chat, *, age_days: float, kind="image"):
    message = make_message(chat, kind=kind, payload={"media_ref": {"url": "x"}})
    message.media.save(f"m{message.pk}.jpg", ContentFile(b"\xff\xd8\xff" + b"0" * 100), save=False)
    Message.objects.filter(pk=message.pk).update(
        media=message.media.name, created_at=timezone.now() - timedelta(days=age_days)
    )
    message.refresh_from_db()
    return message


def test_media_older_than_the_setting_is_removed_and_the_page_says_it_expired(settings, owner_client, org):
    settings.MEDIA_RETENTION_DAYS = 90
    device = make_device(org)
    chat = make_chat(device)
    old = message_with_file(chat, age_days=91)
    fresh = message_with_file(chat, age_days=10)
    old_file, fresh_file = old.media.path, fresh.media.path

    assert retention.apply_retention() == {"media_files": 1, "audit_events": 0}

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert not old.media and "media_expired_at" in old.payload and "media_ref" not in old.payload
    assert fresh.media.name and fresh.media.storage.exists(fresh.media.name)
    assert not os.path.exists(old_file) and os.path.exists(fresh_file)
    page = owner_client.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    assert page.count("File expired") == 1
    download = owner_client.get(reverse("messaging:message_download", args=[device.pk, chat.pk, old.pk]))
    assert download.status_code == 404
    assert (
        owner_client.get(
            reverse("messaging:message_download", args=[device.pk, chat.pk, fresh.pk])
        ).status_code
        == 200
    )
    assert retention.apply_retention()["media_files"] == 0  # done once


def test_nothing_is_forgotten_while_the_settings_are_0(settings, org):
    settings.MEDIA_RETENTION_DAYS = 0
    settings.AUDIT_RETENTION_DAYS = 0
    chat = make_chat(make_device(org))
    message = message_with_file(chat, age_days=3650)
    AuditEvent.objects.create(organization=org, action="x", created_at=timezone.now() - timedelta(days=3650))
    assert retention.apply_retention() == {"media_files": 0, "audit_events": 0}
    message.refresh_from_db()
    assert message.media and AuditEvent.objects.count() == 1


def test_old_audit_events_go_in_chunks(settings, org):
    settings.AUDIT_RETENTION_DAYS = 365
    old = timezone.now() - timedelta(days=400)
    AuditEvent.objects.bulk_create(
        [AuditEvent(organization=org, action="old", created_at=old) for _ in range(7)]
    )
    kept = AuditEvent.objects.create(organization=org, action="recent")
    assert retention.forget_audit(chunk=3) == 7
    assert list(AuditEvent.objects.all()) == [kept]


def test_delivery_logs_are_forgotten_in_chunks(settings, org):
    settings.WEBHOOK_LOG_RETENTION_DAYS = 30
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    endpoint = webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/hook", events=["message"])
    old = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint=endpoint, organization=org, event="message", body="{}", created_at=old)
            for _ in range(retention.RETENTION_CHUNK + 3)
        ]
    )
    recent = WebhookDelivery.objects.create(endpoint=endpoint, organization=org, event="message", body="{}")
    assert webhooks.cleanup()["deliveries"] == retention.RETENTION_CHUNK + 3
    assert list(WebhookDelivery.objects.all()) == [recent]


def test_retention_is_scheduled_and_its_task_runs(settings, org):
    tasks = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"messaging.apply_retention", "messaging.cleanup_expired"} <= tasks
    settings.MEDIA_RETENTION_DAYS = 1
    message = message_with_file(make_chat(make_device(org)), age_days=2)
    # (.result, not .get(): a Celery worker started earlier in this test process makes .get() refuse to block;
    # that worker's clean-up after each task must leave an eager task's caller its connection)
    from celery.signals import task_postrun

    from waportal import tasks_embedded

    # (what an embedded worker made earlier in this process leaves connected)
    task_postrun.connect(
        tasks_embedded._close_db_connections, weak=False, dispatch_uid="waportal-embedded-close-db"
    )
    ran = apply_retention.apply()
    assert ran.successful() and ran.result == {"media_files": 1, "audit_events": 0}, ran.traceback
    message.refresh_from_db()
    assert not message.media
