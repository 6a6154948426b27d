"""Which phone number each hidden user ID (`…@lid`) of a linked number stands for, as WhatsApp told it."""

from django.db import models
from django.utils import timezone


class LidMapping(models.Model):
    """One LID ↔ phone pair, per device: WhatsApp reveals a LID's number to the numbers that may see it, so a
    pair one device learnt is not another's (and never another organization's) to use."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey("messaging.Device", on_delete=models.CASCADE, related_name="lid_mappings")
    lid = models.CharField(max_length=128)  # "123456789@lid"
    phone = models.CharField(max_length=128)  # "905551234567@s.whatsapp.net"
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "lid"], name="one_phone_per_lid")]
        indexes = [models.Index(fields=["device", "phone"])]

    def __str__(self):
        return f"{self.lid} = {self.phone}"
