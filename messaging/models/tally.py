"""Counts of a chat's messages by hour: what lets a deep `offset` skip most of a big chat (messaging.tallies)."""

from django.db import models

__all__ = ["MessageTally"]


class MessageTally(models.Model):
    """How many visible messages (not deleted for me) one chat holds in one hour of their timestamp, in total and
    for each of the history filters. Derived data: database triggers keep it (messaging.tallies), nothing in
    Python writes it. Reached only through a chat, which is already the organization's."""

    # No index of its own: the unique (chat, hour) one serves every lookup by chat.
    chat = models.ForeignKey(
        "messaging.Chat", on_delete=models.CASCADE, related_name="tallies", db_index=False
    )
    hour = models.BigIntegerField()  # seconds since 1970 of the messages' timestamp, // 3600
    visible = models.IntegerField(default=0)
    mine = models.IntegerField(default=0)  # from_me
    media = models.IntegerField(default=0)  # a media kind (chat.MEDIA_KIND_NAMES)
    media_mine = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chat", "hour"], name="one_tally_per_chat_hour")]

    def __str__(self):
        return f"chat {self.chat_id} hour {self.hour}: {self.visible}"
