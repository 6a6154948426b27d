"""What the simulated network holds, as plain data: for tests and the demo to look at."""

from __future__ import annotations

from messaging.whatsapp.sandbox.network import (
    ADMIN,
    INVITE_PREFIX,
    SUPERADMIN,
    _phone,
    _user_jid,
)


def sent_to(phone: str) -> list[dict]:
    """Messages the account `phone` received (direct, and in its groups), oldest first, each once."""
    from messaging.models import SandboxGroup, SandboxMessage

    jid = _user_jid(_phone(phone))
    groups = [g.jid for g in SandboxGroup.objects.all() if jid in g.participants]
    rows = (
        SandboxMessage.objects.filter(to__in=[jid, *groups]).exclude(sender=jid).order_by("timestamp", "id")
    )
    return [_row_dict(r) for r in rows]


def received_by(phone: str) -> list[dict]:
    """Alias of `sent_to`: what the account received."""
    return sent_to(phone)


def sent_by(phone: str) -> list[dict]:
    from messaging.models import SandboxMessage

    jid = _user_jid(_phone(phone))
    return [_row_dict(r) for r in SandboxMessage.objects.filter(sender=jid).order_by("timestamp", "id")]


def message_state(message_id: str) -> dict | None:
    """A message as the network holds it (reactions, starred_by, read_by, deleted_for, revoked, edited_at)."""
    from messaging.models import SandboxMessage

    row = SandboxMessage.objects.filter(msg_id=message_id).order_by("id").first()
    return _row_dict(row) if row else None


def group_state(jid: str) -> dict | None:
    from messaging.models import SandboxGroup

    row = SandboxGroup.objects.filter(jid=jid).first()
    if row is None:
        return None
    return {
        "jid": row.jid,
        "name": row.name,
        "topic": row.topic,
        "owner": row.owner,
        "locked": row.locked,
        "announce": row.announce,
        "join_approval": row.join_approval,
        "participants": dict(row.participants),
        "join_requests": dict(row.join_requests),
        "invite_link": INVITE_PREFIX + row.invite_code,
    }


def groups_of(jid: str) -> list[dict]:
    """The groups the account `jid` is in, by name: jid, name, join_approval, and whether it is an admin there."""
    from messaging.models import SandboxGroup

    if not jid:
        return []
    groups = [
        {
            "jid": row.jid,
            "name": row.name,
            "join_approval": row.join_approval,
            "admin": row.participants[jid] in (ADMIN, SUPERADMIN),
        }
        for row in SandboxGroup.objects.all()
        if jid in row.participants
    ]
    return sorted(groups, key=lambda g: (g["name"].lower(), g["jid"]))


def _row_dict(row) -> dict:
    return {
        "id": row.msg_id,
        "from": row.sender,
        "to": row.to,
        "kind": row.kind,
        "text": row.text,
        "caption": row.caption,
        "timestamp": row.timestamp,
        "media": (row.data or {}).get("media"),
        "data": row.data,
        "edited": row.edited_at is not None,
        "revoked": row.revoked,
        "reactions": dict(row.reactions),
        "starred_by": list(row.starred_by),
        "read_by": list(row.read_by),
        "deleted_for": list(row.deleted_for),
    }
