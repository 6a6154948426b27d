"""A linked WhatsApp number and the lease that says which session worker drives it."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class DeviceStatus(models.TextChoices):
    NEW = "new", _("Not linked")
    CONNECTING = "connecting", _("Connecting")
    QR_WAITING = "qr_waiting", _("Waiting for QR scan")
    PAIRING = "pairing", _("Waiting for pairing code")
    CONNECTED = "connected", _("Connected")
    DISCONNECTED = "disconnected", _("Disconnected")
    LOGGED_OUT = "logged_out", _("Logged out")


# Why a device stored as connected is shown disconnected (see Device.unheld), to API clients and live pushes.
UNHELD_REASON = "no session worker holds this device"


class Device(models.Model):
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="devices"
    )
    name = models.CharField(_("name"), max_length=80)
    # Set once linked. The bare JID (number@s.whatsapp.net) and the digits.
    jid = models.CharField(max_length=128, blank=True, db_index=True)
    phone = models.CharField(max_length=32, blank=True)
    push_name = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=16, choices=DeviceStatus.choices, default=DeviceStatus.NEW)
    status_reason = models.CharField(max_length=200, blank=True)
    # Whether a session worker should hold this device (linking or linked, not logged out / removed).
    wanted = models.BooleanField(default=False, db_index=True)
    # The live QR code while linking (rendered by the dashboard and /app/login), with its expiry.
    qr_code = models.TextField(blank=True)
    qr_expires_at = models.DateTimeField(null=True, blank=True)
    pair_code = models.CharField(max_length=16, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Settings of the number (services.device_settings): decline calls (with an optional reply text), and the
    # proxy its connection goes through ("" for none; the password is shown masked, see `proxy_shown`).
    reject_calls = models.BooleanField(default=False)
    reject_call_message = models.TextField(blank=True)
    proxy_url = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = _("number")
        verbose_name_plural = _("numbers")
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.name + (f" ({self.phone})" if self.phone else "")

    @property
    def is_connected(self) -> bool:
        return self.status == DeviceStatus.CONNECTED

    @property
    def unheld(self) -> bool:
        """Stored as connected, but no session worker holds it (its lease expired, or it never had one).

        A worker that dies without saying so leaves "connected" in the row until another worker takes the
        number over; until then nothing drives it, so the dashboard and the API show it disconnected. Reads
        `lease`: select_related("lease") keeps that to the one query.
        """
        if self.status != DeviceStatus.CONNECTED:
            return False
        lease = getattr(self, "lease", None)  # RelatedObjectDoesNotExist is an AttributeError too
        return lease is None or not lease.is_live

    @property
    def unheld_since(self):
        """When the last worker's hold on an unheld device ran out (None if no worker ever held it)."""
        lease = getattr(self, "lease", None)
        return lease.expires_at if self.unheld and lease is not None else None

    @property
    def shown_status(self) -> str:
        """The status to show people and API clients: "disconnected" for an unheld device."""
        return DeviceStatus.DISCONNECTED.value if self.unheld else self.status

    @property
    def unreachable(self) -> bool:
        """Whether the last attempt ended because this server cannot reach WhatsApp (said until the next one)."""
        from messaging.whatsapp.protocol import UNREACHABLE_REASON

        return self.status == DeviceStatus.DISCONNECTED and self.status_reason == UNREACHABLE_REASON

    @property
    def proxy_shown(self) -> str:
        """The proxy as it may be shown: its password masked."""
        from messaging.proxy_url import mask

        return mask(self.proxy_url)

    @property
    def group_name(self) -> str:
        """Channel-layer group of this device's live events."""
        return f"device-{self.pk}"


class DeviceLease(models.Model):
    """Which session worker holds a device, until when. Renewed by the worker's heartbeat."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="lease")
    worker_id = models.CharField(max_length=120, db_index=True)
    # Where the web tier sends this device's commands: the holding worker's own channel.
    channel_name = models.CharField(max_length=200, blank=True)
    acquired_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("session lease")
        verbose_name_plural = _("session leases")

    def __str__(self):
        return f"{self.device_id} held by {self.worker_id} until {self.expires_at:%H:%M:%S}"

    @property
    def is_live(self) -> bool:
        return self.expires_at > timezone.now()


class SessionWorker(models.Model):
    """A running session worker process, so the dashboard can say who holds a device (and where it runs)."""

    worker_id = models.CharField(max_length=120, unique=True)
    hostname = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    channel_name = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("session worker")
        verbose_name_plural = _("session workers")

    def __str__(self):
        return f"{self.worker_id} ({self.hostname} pid {self.pid})"
