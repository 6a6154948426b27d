"""The Celery app: Redis-backed in production (`celery -A waportal worker`), run in-process when embedded."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waportal.settings")

app = Celery("waportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

if str(app.conf.broker_url or "").startswith("memory://"):
    # The embedded default: kombu's in-memory transport is polled, once a second unless told otherwise;
    # a short interval keeps a received message's webhook prompt at the cost of a few idle wake-ups.
    app.conf.broker_transport_options = {
        "polling_interval": 0.05,
        **(app.conf.broker_transport_options or {}),
    }

# Periodic work: settings.CELERY_BEAT_SCHEDULE (`celery -A waportal beat` or `worker -B`; the embedded
# task worker runs the same schedule itself).


@worker_process_init.connect
def _freeze_startup_objects(**kwargs):
    from waportal.gc_freeze import freeze_startup_objects

    freeze_startup_objects()  # (each worker process, its tasks imported: see gc_freeze.py)
