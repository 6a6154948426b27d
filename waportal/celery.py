"""The Celery app: Redis-backed in production, run in-process by `manage.py serve` when embedded."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waportal.settings")

app = Celery("waportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
