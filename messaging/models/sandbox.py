"""State of the simulated WhatsApp network (the sandbox backend), shared by every worker process."""

from django.db import models
from django.utils import timezone

__all__ = [
    "SandboxAccount",
    "SandboxCall",
    "SandboxDelivery",
    "SandboxGroup",
    "SandboxLinkCode",
    "SandboxMedia",
    "SandboxMessage",
    "SandboxNetwork",
    "SandboxNewsletter",
    "SandboxSession",
]


class SandboxNetwork(models.Model):
    """The one row of network-wide state: the seed it was built from and its clock (WhatsApp's time)."""

    seed = models.BigIntegerField(null=True, blank=True)
    # Seconds added to the real clock: tests make time pass (edit window, code expiry) by moving it.
    clock_offset = models.FloatField(default=0.0)
    seeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "sandbox network"

    def __str__(self):
        return f"sandbox network (seed {self.seed})"


class SandboxAccount(models.Model):
    """A WhatsApp account on the simulated network: a simulated peer, or the phone a device was linked from."""

    phone = models.CharField(max_length=32, unique=True)
    push_name = models.CharField(max_length=120, blank=True)
    about = models.CharField(max_length=200, blank=True)
    picture_id = models.CharField(max_length=40, blank=True)
    picture = models.BinaryField(null=True, blank=True)  # set_avatar's PNG; otherwise one is generated
    # "peer" (simulated, behaves by `behavior`) or "phone" (a phone that links devices; a person drives it).
    kind = models.CharField(max_length=12, default="peer")
    behavior = models.CharField(max_length=20, blank=True)  # echo, react, media, quiet
    registered = models.BooleanField(default=True)  # on WhatsApp at all
    verified_name = models.CharField(max_length=120, blank=True)
    business = models.JSONField(null=True, blank=True)  # business profile, for business accounts
    privacy = models.JSONField(default=dict, blank=True)
    contacts = models.JSONField(default=list, blank=True)  # JIDs in this phone's address book
    # Its hidden user ID (digits of …@lid), once it has one; while `shares_phone` is off, the devices it writes
    # to see only that ID, not the number (see peers.peer_hide_phone).
    lid = models.CharField(max_length=32, blank=True, db_index=True)
    shares_phone = models.BooleanField(default=True)
    # The organization whose device first linked this phone: the network is shared by every tenant, and a
    # number one organization linked stays its own (no other may link it, or write as it, even once unlinked).
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    presence = models.CharField(max_length=12, blank=True)
    last_seen = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["phone"]

    def __str__(self):
        return f"{self.push_name} ({self.phone})"

    @property
    def jid(self) -> str:
        return f"{self.phone}@s.whatsapp.net"


class SandboxSession(models.Model):
    """A linked device's session: what `start` logs in with. Removed by logout."""

    device = models.OneToOneField(
        "messaging.Device", on_delete=models.CASCADE, related_name="sandbox_session"
    )
    phone = models.CharField(max_length=32)
    push_name = models.CharField(max_length=120, blank=True)
    platform = models.CharField(max_length=40, default="sandbox")
    # Whether the client has announced the link (PairedEvent) yet: a scan is seen by the next poke.
    announced = models.BooleanField(default=False)
    # The proxy the device's last connection was set to use (recorded only: the simulated network has no
    # real network to route through).
    proxy_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"session of device {self.device_id} ({self.phone})"

    @property
    def jid(self) -> str:
        return f"{self.phone}@s.whatsapp.net"


class SandboxLinkCode(models.Model):
    """A QR code or pairing code a device is showing; valid until expires_at (network time, unix seconds)."""

    device = models.ForeignKey(
        "messaging.Device", on_delete=models.CASCADE, related_name="sandbox_link_codes"
    )
    kind = models.CharField(max_length=8)  # qr / pair
    code = models.CharField(max_length=200, db_index=True)
    phone = models.CharField(max_length=32, blank=True)  # pair: the only number that may enter it
    expires_at = models.FloatField()
    used_at = models.FloatField(null=True, blank=True)

    def __str__(self):
        return f"{self.kind} {self.code}"


class SandboxGroup(models.Model):
    jid = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=100)
    topic = models.TextField(blank=True)
    owner = models.CharField(max_length=128, blank=True)
    created_at = models.FloatField(default=0.0)
    locked = models.BooleanField(default=False)
    announce = models.BooleanField(default=False)
    join_approval = models.BooleanField(default=False)
    invite_code = models.CharField(max_length=40, blank=True, db_index=True)
    picture_id = models.CharField(max_length=40, blank=True)
    picture = models.BinaryField(null=True, blank=True)
    participants = models.JSONField(default=dict, blank=True)  # jid -> "superadmin" / "admin" / "member"
    join_requests = models.JSONField(default=dict, blank=True)  # jid -> requested at (unix seconds)

    class Meta:
        ordering = ["jid"]

    def __str__(self):
        return f"{self.name} ({self.jid})"


class SandboxNewsletter(models.Model):
    jid = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    subscribers = models.PositiveIntegerField(default=0)
    followers = models.JSONField(default=list, blank=True)  # account JIDs following it

    class Meta:
        ordering = ["jid"]

    def __str__(self):
        return f"{self.name} ({self.jid})"


class SandboxMessage(models.Model):
    """One message on the network, as its sender sent it. (sender, msg_id) is unique: a resend is not a new one."""

    msg_id = models.CharField(max_length=128, db_index=True)  # receipts and actions look messages up by it
    sender = models.CharField(max_length=128)
    to = models.CharField(max_length=128)  # user, group or newsletter JID
    kind = models.CharField(max_length=16, default="text")
    text = models.TextField(blank=True)
    caption = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)  # media ref, location, poll, reply, ...
    timestamp = models.FloatField()
    edited_at = models.FloatField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    reactions = models.JSONField(default=dict, blank=True)  # reactor jid -> emoji
    starred_by = models.JSONField(default=list, blank=True)
    deleted_for = models.JSONField(default=list, blank=True)
    read_by = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sender", "msg_id"], name="sandbox_one_message_per_sender_id")
        ]
        indexes = [models.Index(fields=["to", "timestamp"])]

    def __str__(self):
        return f"{self.msg_id} from {self.sender}"


class SandboxMedia(models.Model):
    token = models.CharField(max_length=64, unique=True)
    data = models.BinaryField()
    mime_type = models.CharField(max_length=120, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "sandbox media file"
        verbose_name_plural = "sandbox media files"

    def __str__(self):
        return f"{self.filename or self.token} ({self.mime_type})"


class SandboxDelivery(models.Model):
    """An event waiting for a device's client to pick it up (on its next poke): written by any process."""

    device = models.ForeignKey(
        "messaging.Device", on_delete=models.CASCADE, related_name="sandbox_deliveries"
    )
    event = models.JSONField()  # wire-encoded protocol event
    created_at = models.DateTimeField(default=timezone.now)
    delivered = models.BooleanField(default=False)

    class Meta:
        verbose_name = "sandbox delivery"
        verbose_name_plural = "sandbox deliveries"
        ordering = ["id"]
        indexes = [models.Index(fields=["device", "delivered", "id"])]

    def __str__(self):
        return f"{self.event.get('__t', 'event')} for device {self.device_id}"


class SandboxCall(models.Model):
    """A call a simulated contact made to a device's number: ringing until the device rejects it (or it ends)."""

    call_id = models.CharField(max_length=64, unique=True)
    caller = models.CharField(max_length=32)  # the calling account's phone
    callee = models.CharField(max_length=32)  # the called number's phone
    is_video = models.BooleanField(default=False)
    state = models.CharField(max_length=12, default="ringing")  # ringing / rejected
    created_at = models.FloatField()  # network time (unix seconds)
    ended_at = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"call {self.call_id} from {self.caller} to {self.callee} ({self.state})"
