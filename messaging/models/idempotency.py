"""The answers to REST API writes sent with an Idempotency-Key, kept so that a retry gets them again."""

from django.db import models
from django.utils import timezone


class IdempotencyKey(models.Model):
    """One organization's key: the request it came with and, once answered, the answer (null while in flight)."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="idempotency_keys"
    )
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    # SHA-256 of the request (method, path, query and body, see messaging.api.idempotency.fingerprint): the
    # same key with another request is refused, not answered with the first one's answer.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key"], name="one_idempotency_key_per_organization"
            )
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
