"""The simulated network's ground rules: its limits and roles, its clock, its settings and its JIDs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.utils.translation import gettext_noop as _noop

from messaging.whatsapp import protocol as p
from messaging.whatsapp.protocol import (
    InvalidRequest,
    NotFound,
)

EDIT_WINDOW = 15 * 60  # WhatsApp lets you edit your message for 15 minutes
REVOKE_WINDOW = 60 * 60 * 60  # and delete it for everyone for about two and a half days
PAIR_CODE_SECONDS = 160.0
INVITE_PREFIX = "https://chat.whatsapp.com/"
GROUP_NAME_MAX = 100
GROUP_TOPIC_MAX = 2048
PUSH_NAME_MAX = 25
PAIR_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"
DEFAULT_PRIVACY = {
    "group_add": "all",
    "last_seen": "all",
    "status": "all",
    "profile": "all",
    "read_receipts": "all",
    "online": "all",
    "call_add": "all",
}
SUPERADMIN, ADMIN, MEMBER = "superadmin", "admin", "member"


# ---------------------------------------------------------------------------------------------- settings


def _delay() -> float:
    return float(getattr(settings, "WA_SANDBOX_DELAY", 0.2))


def _qr_seconds() -> float:
    return float(getattr(settings, "WA_SANDBOX_QR_SECONDS", 20))


# ---------------------------------------------------------------------------------------------- the clock

_clock: Callable[[], float] | None = None


def set_clock(clock: Callable[[], float] | None) -> None:
    """Replace the network's clock in this process (None: back to real time plus the stored offset)."""
    global _clock
    _clock = clock


def now() -> float:
    """WhatsApp's time on the simulated network, unix seconds. Sync (reads the shared offset)."""
    if _clock is not None:
        return _clock()
    from messaging.models import SandboxNetwork

    # Read on every send and receipt: the one column of the one row, without building a query each time.
    with connection.cursor() as cursor:
        cursor.execute(_CLOCK_SQL.format(table=connection.ops.quote_name(SandboxNetwork._meta.db_table)))
        row = cursor.fetchone()
    return time.time() + ((row[0] if row else 0.0) or 0.0)


_CLOCK_SQL = "SELECT clock_offset FROM {table} ORDER BY id LIMIT 1"


# ---------------------------------------------------------------------------------------------- JIDs


def _jid(value: str, *, field: str = "jid") -> str:
    """A JID as the network keeps it: a hidden user ID (…@lid) as the number of the account it belongs to."""
    try:
        jid = p.normalize_jid(value)
    except ValueError as exc:
        raise InvalidRequest(_noop("%(field)s: %(reason)s") % {"field": field, "reason": exc}) from None
    if p.is_lid(jid):
        from messaging.models import SandboxAccount

        phone = SandboxAccount.objects.filter(lid=p.jid_user(jid)).values_list("phone", flat=True).first()
        if phone is None:
            raise NotFound(_noop("%(field)s: %(jid)s is not on WhatsApp.") % {"field": field, "jid": jid})
        jid = _user_jid(phone)
    return jid


def _lid_jid(lid: str) -> str:
    return f"{lid}@{p.LID_SERVER}" if lid else ""


def _phone(value: str, *, field: str = "phone") -> str:
    try:
        return p.normalize_phone(value)
    except ValueError as exc:
        raise InvalidRequest(_noop("%(field)s: %(reason)s") % {"field": field, "reason": exc}) from None


def _user_jid(phone: str) -> str:
    return f"{phone}@{p.USER_SERVER}"


def _invite_code(value: str) -> str:
    value = (value or "").strip()
    if value.startswith(INVITE_PREFIX):
        value = value[len(INVITE_PREFIX) :]
    value = value.strip("/")
    if not value or not re.fullmatch(r"[A-Za-z0-9]{6,40}", value):
        raise InvalidRequest(
            _noop("code: not a WhatsApp invite code (the part after https://chat.whatsapp.com/)")
        )
    return value
