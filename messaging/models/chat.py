"""Chats, messages (received and the outbox of sent ones) and contacts of a linked device."""

from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Chat(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="chats")
    device = models.ForeignKey("messaging.Device", on_delete=models.CASCADE, related_name="chats")
    # The phone-number JID when known, else the hidden user ID (…@lid) WhatsApp named the person by.
    jid = models.CharField(max_length=128)
    lid = models.CharField(max_length=128, blank=True)  # the person's …@lid, when WhatsApp told it
    name = models.CharField(max_length=200, blank=True)
    is_group = models.BooleanField(default=False)
    unread_count = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The chat's state as set through this server (pin, archive, disappearing timer, labels).
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    disappearing_seconds = models.PositiveIntegerField(default=0)  # 0: messages stay
    labels = models.ManyToManyField("messaging.Label", related_name="chats", blank=True)
    # The member of the organization who looks after the chat (our own: WhatsApp knows nothing of it).
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_chats",
    )

    class Meta:
        verbose_name = _("chat")
        verbose_name_plural = _("chats")
        constraints = [models.UniqueConstraint(fields=["device", "jid"], name="one_chat_per_jid")]
        indexes = [
            models.Index(fields=["device", "-last_message_at", "-id"]),
            # The inbox orders by activity (last message, else creation): with 100,000 chats a page must not sort
            # them all.
            models.Index(
                F("device"),
                Coalesce("last_message_at", "created_at").desc(),
                F("id").desc(),
                name="chat_device_activity",
            ),
            # The inbox's default list: not archived, pinned first, then by activity (keyset, see views.inbox).
            models.Index(
                F("device"),
                F("archived"),
                F("pinned").desc(),
                Coalesce("last_message_at", "created_at").desc(),
                F("id").desc(),
                name="chat_device_inbox",
            ),
        ]

    def __str__(self):
        return self.name or self.jid


class Label(models.Model):
    """A WhatsApp Business chat label of one device: WhatsApp knows it by `label_id`, people by name and colour."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="labels")
    device = models.ForeignKey("messaging.Device", on_delete=models.CASCADE, related_name="labels")
    label_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True)
    color = models.PositiveSmallIntegerField(default=0)  # WhatsApp's palette index (0-19)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "label_id"], name="one_label_per_id")]

    def __str__(self):
        return self.name or self.label_id


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    READ = "read", _("Read")
    PLAYED = "played", _("Played")
    FAILED = "failed", _("Failed")
    RECEIVED = "received", _("Received")
    # A send was under way when its worker died or timed out, on a backend that cannot send with our ID
    # (neonize): it may have reached WhatsApp or not. Not sent again unless an operator asks (a receipt of it
    # moves it on to delivered/read, which settles the question).
    UNKNOWN = "unknown", _("Sent?")


# Receipts only move a message forward.
STATUS_ORDER = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNKNOWN: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
    MessageStatus.PLAYED: 5,
}


# What the history endpoints read: not deleted for me; `media_only` means a media kind (protocol.MEDIA_KINDS).
VISIBLE = Q(deleted_for_me_at__isnull=True)
MEDIA_KIND_NAMES = ("audio", "document", "image", "sticker", "video")
HAS_MEDIA = Q(kind__in=MEDIA_KIND_NAMES)
BY_LID = Q(sender_jid__endswith="@lid")
# The words of a message, for PostgreSQL full-text search: the "simple" configuration (no stemming, no stop
# words) because chats mix languages. Its GIN index (on this very expression, so no column to keep in step)
# exists on PostgreSQL only: see search_index() and the migration that creates it.
SEARCH_VECTOR = SearchVector("text", "caption", config="simple")


def search_index():
    from django.contrib.postgres.indexes import GinIndex

    return GinIndex(SEARCH_VECTOR, name="msg_search_fts")


class Message(models.Model):
    """A message in a chat. Outgoing ones are the outbox: stored with their WhatsApp ID before sending."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="messages"
    )
    device = models.ForeignKey("messaging.Device", on_delete=models.CASCADE, related_name="messages")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    wa_id = models.CharField("WhatsApp message ID", max_length=128)
    from_me = models.BooleanField(default=False)
    sender_jid = models.CharField(
        max_length=128, blank=True
    )  # the phone-number JID when known (see Chat.jid)
    sender_lid = models.CharField(max_length=128, blank=True)
    sender_name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, default="text")  # protocol.MessageKind
    text = models.TextField(blank=True)
    caption = models.TextField(blank=True)
    media = models.FileField(upload_to="messages/%Y/%m/", blank=True, max_length=300)
    media_mime = models.CharField(max_length=120, blank=True)
    media_size = models.PositiveBigIntegerField(null=True, blank=True)
    media_filename = models.CharField(max_length=255, blank=True)
    # Kind-specific fields (location, contact, poll, link, media ref for download, send options).
    payload = models.JSONField(default=dict, blank=True)
    reply_to_id = models.CharField(max_length=128, blank=True)
    quoted_body = models.TextField(blank=True)
    is_forwarded = models.BooleanField(default=False)
    view_once = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    error = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    reactions = models.JSONField(default=dict, blank=True)  # sender JID -> emoji
    starred = models.BooleanField(default=False)
    edited_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    deleted_for_me_at = models.DateTimeField(null=True, blank=True)
    read_by_me_at = models.DateTimeField(null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)  # WhatsApp's time (sent or received)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [models.UniqueConstraint(fields=["device", "wa_id"], name="one_message_per_wa_id")]
        # History reads never see messages deleted for me, so their indexes leave them out (smaller, and a
        # deep OFFSET walks only what it returns). One per filter the API offers, each in reading order. The
        # trailing columns are those of the partial condition: SQLite (3.40) reads an index-only page of ids
        # only when the index holds every column the query names (PostgreSQL would not need them).
        indexes = [
            models.Index(fields=["chat", "-timestamp", "-id"]),
            models.Index(fields=["device", "status"]),
            models.Index(
                fields=["chat", "-timestamp", "-id", "deleted_for_me_at"],
                condition=VISIBLE,
                name="msg_chat_visible",
            ),
            models.Index(
                fields=["chat", "from_me", "-timestamp", "-id", "deleted_for_me_at"],
                condition=VISIBLE,
                name="msg_chat_from_me",
            ),
            models.Index(
                fields=["chat", "-timestamp", "-id", "kind", "deleted_for_me_at"],
                condition=VISIBLE & HAS_MEDIA,
                name="msg_chat_media",
            ),
            # Messages of people known by hidden user ID only (few): renamed when their number becomes known
            # (services.lids.merge_chats), without reading every message of the device.
            models.Index(fields=["device", "sender_jid"], condition=BY_LID, name="msg_sender_by_lid"),
        ]

    def __str__(self):
        return f"{self.wa_id} ({self.kind})"


class Contact(models.Model):
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="contacts"
    )
    device = models.ForeignKey("messaging.Device", on_delete=models.CASCADE, related_name="contacts")
    jid = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True)
    push_name = models.CharField(max_length=200, blank=True)
    business_name = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [models.UniqueConstraint(fields=["device", "jid"], name="one_contact_per_jid")]

    def __str__(self):
        return self.name or self.push_name or self.jid


class SentMessageId(models.Model):
    """For a backend that cannot send with our message ID (neonize: WhatsApp picks it), which ID WhatsApp knows
    each of our outgoing messages by, and whether a send of it was started.

    In the shared database, so that whichever worker holds the number matches receipts, replies and edits of
    messages another worker sent, and no worker sends a message twice: the row is written before the send
    (`whatsapp_id` empty, in flight) and completed after it; a send that finds an in-flight row of an earlier
    attempt does not go out again (the message becomes `unknown`)."""

    device = models.ForeignKey("messaging.Device", on_delete=models.CASCADE, related_name="sent_ids")
    message_id = models.CharField(max_length=128)  # ours: Message.wa_id
    whatsapp_id = models.CharField(max_length=128, blank=True)  # "" while the send is in flight
    started_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("sent message ID")
        verbose_name_plural = _("sent message IDs")
        constraints = [
            models.UniqueConstraint(fields=["device", "message_id"], name="one_sent_id_per_message")
        ]
        indexes = [models.Index(fields=["device", "whatsapp_id"])]

    def __str__(self):
        return f"{self.message_id} -> {self.whatsapp_id or '(in flight)'}"
