"""The history a phone sends a newly linked number: its chunks as received, and the import's progress."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["HistoryChunk", "HistorySync", "HistorySyncState"]


class HistorySyncState(models.TextChoices):
    WAITING = "waiting", _("Waiting for the phone")
    IMPORTING = "importing", _("Importing")
    FINISHED = "finished", _("Finished")


class HistorySync(models.Model):
    """How far the import of one number's history is: what the number's page shows, live.

    Counters only grow while a sync runs; a new link (a new sync) starts them again."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="history_syncs"
    )
    device = models.OneToOneField("messaging.Device", on_delete=models.CASCADE, related_name="history_sync")
    state = models.CharField(
        max_length=12, choices=HistorySyncState.choices, default=HistorySyncState.WAITING
    )
    phone_progress = models.PositiveSmallIntegerField(default=0)  # the phone's own percentage of the sync
    final_received = models.BooleanField(default=False)  # the chunk the phone marked last has come
    chunks_received = models.PositiveIntegerField(default=0)
    chunks_imported = models.PositiveIntegerField(default=0)
    chats_imported = models.PositiveIntegerField(default=0)
    messages_imported = models.PositiveIntegerField(default=0)
    messages_skipped = models.PositiveIntegerField(default=0)  # older than the organization's choice
    days = models.PositiveIntegerField(null=True, blank=True)  # the organization's choice when it started
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"history of {self.device_id}: {self.state}"

    @property
    def percent(self) -> int:
        """Of the chunks received, how many are imported (what the progress bar shows)."""
        if self.state == HistorySyncState.FINISHED:
            return 100
        if not self.chunks_received:
            return 0
        return min(99, self.chunks_imported * 100 // self.chunks_received)


class HistoryChunk(models.Model):
    """One chunk of history as the phone sent it (wire-encoded), kept until imported: a worker that dies
    mid-import leaves it here and the next import of the device picks it up. The same chunk sent again
    (same sync type and order) is one row."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="history_chunks"
    )
    device = models.ForeignKey("messaging.Device", on_delete=models.CASCADE, related_name="history_chunks")
    sync_type = models.CharField(max_length=24)
    chunk_order = models.PositiveIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)
    final = models.BooleanField(default=False)
    conversations = models.JSONField(default=list, blank=True)  # wire.encode of [HistoryConversation]
    push_names = models.JSONField(default=dict, blank=True)
    messages_total = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    imported_at = models.DateTimeField(null=True, blank=True)
    imports = models.PositiveSmallIntegerField(default=0)  # >1: sent again after its import (counted once)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "sync_type", "chunk_order"], name="one_history_chunk_per_order"
            )
        ]
        indexes = [models.Index(fields=["device", "imported_at"])]

    def __str__(self):
        return f"{self.sync_type} #{self.chunk_order} of {self.device_id}"
