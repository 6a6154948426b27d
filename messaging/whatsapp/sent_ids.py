"""Our message IDs and the IDs WhatsApp gave them, in the shared database, for backends that cannot send with ours.

neonize lets WhatsApp choose the ID of a sent message. So that receipts, replies, reactions and edits of our
messages come back under the ID the API answered, whichever worker holds the number, and so that no worker
sends a message twice, a backend like it keeps one `SentMessageId` row per sent message:

- `begin(ours)` before the send: an earlier completed send gives its result back (nothing is sent again); an
  earlier send that was started and never completed (its worker died, or it timed out) raises
  `protocol.SendOutcomeUnknown`: whether WhatsApp took it cannot be told, so it is not sent again unless a
  person asks (`messaging.services.messages.resend_message` forgets the attempt);
- `finish(ours, theirs, timestamp)` once WhatsApp answered; `abandon(ours)` when the send certainly did not
  go out (refused before it left), so that a retry may send it.

Every call runs in the runtime's database threads (`runtime.db`), never on the event loop.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging import runtime
from messaging.whatsapp import protocol


def _begin(device_id: int, ours: str) -> float | None:
    from messaging.models import SentMessageId

    row = SentMessageId.objects.filter(device_id=device_id, message_id=ours).first()
    if row is not None:
        if row.sent_at is not None:
            return row.sent_at.timestamp()
        raise protocol.SendOutcomeUnknown(
            f"a send of this message started at {row.started_at:%Y-%m-%d %H:%M:%S} UTC was cut off;"
            " it may or may not have reached WhatsApp"
        )
    try:
        with transaction.atomic():
            SentMessageId.objects.create(device_id=device_id, message_id=ours, started_at=timezone.now())
    except IntegrityError:  # another attempt began at the same moment: that one decides
        raise protocol.SendOutcomeUnknown("another send of this message is under way") from None
    return None


def _finish(device_id: int, ours: str, theirs: str, timestamp: float) -> None:
    from messaging.models import SentMessageId

    sent_at = datetime.fromtimestamp(timestamp, UTC) if timestamp else timezone.now()
    SentMessageId.objects.update_or_create(
        device_id=device_id, message_id=ours, defaults={"whatsapp_id": theirs or ours, "sent_at": sent_at}
    )


def _abandon(device_id: int, ours: str) -> None:
    from messaging.models import SentMessageId

    SentMessageId.objects.filter(device_id=device_id, message_id=ours, sent_at__isnull=True).delete()


def _ours(device_id: int, theirs: list[str]) -> dict[str, str]:
    from messaging.models import SentMessageId

    rows = SentMessageId.objects.filter(device_id=device_id, whatsapp_id__in=theirs)
    return dict(rows.values_list("whatsapp_id", "message_id"))


def _theirs(device_id: int, ours: str) -> str:
    from messaging.models import SentMessageId

    row = SentMessageId.objects.filter(device_id=device_id, message_id=ours).exclude(whatsapp_id="")
    return row.values_list("whatsapp_id", flat=True).first() or ours


class SharedMessageIds:
    """One device's map (see the module docstring)."""

    def __init__(self, device_id: int):
        self.device_id = device_id

    async def begin(self, ours: str) -> protocol.SendResult | None:
        """Before sending `ours`: the earlier result if it went out already, else None (the attempt is now
        recorded). Raises `protocol.SendOutcomeUnknown` for an earlier attempt that never completed."""
        timestamp = await runtime.db(_begin, self.device_id, ours)
        return None if timestamp is None else protocol.SendResult(id=ours, timestamp=timestamp)

    async def finish(self, ours: str, theirs: str, timestamp: float) -> None:
        await runtime.db(_finish, self.device_id, ours, theirs, timestamp)

    async def abandon(self, ours: str) -> None:
        await runtime.db(_abandon, self.device_id, ours)

    async def ours(self, *theirs: str) -> list[str]:
        """Our ID for each WhatsApp ID (the ID itself when it is not one of our messages, or empty)."""
        wanted = [t for t in theirs if t]
        found = await runtime.db(_ours, self.device_id, wanted) if wanted else {}
        return [found.get(t, t) for t in theirs]

    async def theirs(self, ours: str) -> str:
        """The ID WhatsApp knows our message `ours` by (itself when it is not one we sent)."""
        return await runtime.db(_theirs, self.device_id, ours) if ours else ours
