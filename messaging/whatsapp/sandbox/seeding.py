"""Seeding the simulated network under a seed (peers, groups, newsletters) and summing up what it holds."""

from __future__ import annotations

import random

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from messaging.whatsapp import protocol as p
from messaging.whatsapp.sandbox.network import (
    ADMIN,
    DEFAULT_PRIVACY,
    INVITE_PREFIX,
    MEMBER,
    SUPERADMIN,
    now,
)

# What the seeded peers are like: (behaviour, privacy overrides, business profile?). Order is stable.
_PERSONAS = [
    ("echo", {}, False),
    ("echo", {}, True),
    ("react", {}, False),
    ("media", {}, False),
    ("quiet", {"group_add": "contacts"}, False),
    ("echo", {"read_receipts": "none", "profile": "none", "status": "none"}, False),
]
_NAMES = [
    "Ayşe",
    "Mehmet",
    "Zeynep",
    "Can",
    "Elif",
    "Burak",
    "Maria",
    "John",
    "Priya",
    "Kenji",
    "Lena",
    "Omar",
]
_SURNAMES = ["Yılmaz", "Kaya", "Demir", "Smith", "García", "Tanaka", "Schmidt", "Haddad", "Rao", "Costa"]
_ABOUTS = [
    "Hey there! I am using WhatsApp.",
    "Available",
    "At work",
    "Busy",
    "Battery about to die",
    "Sleeping",
]


def _network():
    """The network row; seeds the network (WA_SANDBOX_SEED) the first time anything touches it."""
    from messaging.models import SandboxNetwork

    net = SandboxNetwork.objects.filter(seed__isnull=False).first()
    if net is None:
        seed_network()
        net = SandboxNetwork.objects.first()
    return net


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _token(rng: random.Random, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n))


def seed_network(seed: int | None = None) -> dict:
    """Create the simulated peers, groups and newsletters of `seed` (WA_SANDBOX_SEED); idempotent.

    The same seed gives the same numbers, names, groups and invite links. Returns `network_summary()`.
    """
    from messaging.models import SandboxAccount, SandboxGroup, SandboxNetwork, SandboxNewsletter

    seed = int(getattr(settings, "WA_SANDBOX_SEED", 1) if seed is None else seed)
    rng = random.Random(seed)
    try:
        with transaction.atomic():
            net = SandboxNetwork.objects.select_for_update().first() or SandboxNetwork.objects.create()
            if net.seed == seed:
                return _summary()
            names = rng.sample(_NAMES, len(_PERSONAS))
            peers = []
            for index, (behavior, privacy, business) in enumerate(_PERSONAS):
                phone = "1555" + _digits(rng, 7)
                name = f"{names[index]} {rng.choice(_SURNAMES)}"
                account, _ = SandboxAccount.objects.get_or_create(
                    phone=phone,
                    defaults=dict(
                        push_name=f"{name} Ltd" if business else name,
                        about=rng.choice(_ABOUTS),
                        picture_id=str(rng.randint(10**9, 10**10 - 1)),
                        kind="peer",
                        behavior=behavior,
                        privacy={**DEFAULT_PRIVACY, **privacy},
                        verified_name=f"{name} Ltd" if business else "",
                        business=(
                            {
                                "email": f"hello@{names[index].lower()}-ltd.example",
                                "address": f"{rng.randint(1, 99)} Sandbox Street, Istanbul",
                                "description": "We answer every message, instantly.",
                                "website": [f"https://{names[index].lower()}-ltd.example"],
                                "categories": ["Shopping & retail"],
                            }
                            if business
                            else None
                        ),
                    ),
                )
                peers.append(account.jid)
            created = rng.randint(1_600_000_000, 1_700_000_000)
            groups = [
                ("Weekend Hikers", dict(owner=0, admins=[1], members=[0, 1, 2, 3])),
                ("Book Club", dict(owner=1, admins=[], members=[1, 2, 3, 5], join_approval=True)),
                (
                    "Sandbox Announcements",
                    dict(owner=2, admins=[], members=[2, 0, 4], announce=True, locked=True),
                ),
            ]
            for name, spec in groups:
                participants = {peers[i]: MEMBER for i in spec["members"]}
                for i in spec["admins"]:
                    participants[peers[i]] = ADMIN
                participants[peers[spec["owner"]]] = SUPERADMIN
                SandboxGroup.objects.get_or_create(
                    jid=f"120363{_digits(rng, 12)}@{p.GROUP_SERVER}",
                    defaults=dict(
                        name=name,
                        topic=f"{name}: a group of the simulated network",
                        owner=peers[spec["owner"]],
                        created_at=created,
                        announce=spec.get("announce", False),
                        locked=spec.get("locked", False),
                        join_approval=spec.get("join_approval", False),
                        invite_code=_token(rng, 22),
                        picture_id=str(rng.randint(10**9, 10**10 - 1)),
                        participants=participants,
                    ),
                )
            for name, description, subscribers in [
                ("Sandbox News", "What happens on the simulated network", rng.randint(1000, 90000)),
                ("Daily Tips", "One WhatsApp tip a day", rng.randint(1000, 90000)),
            ]:
                SandboxNewsletter.objects.get_or_create(
                    jid=f"120363{_digits(rng, 12)}@{p.NEWSLETTER_SERVER}",
                    defaults=dict(name=name, description=description, subscribers=subscribers, followers=[]),
                )
            net.seed = seed
            net.seeded_at = timezone.now()
            net.save()
    except IntegrityError:  # another process seeded it at the same moment
        pass
    return _summary()


def network_summary() -> dict:
    """The simulated network as plain data: peers (in persona order), groups, newsletters, an unregistered number."""
    _network()
    return _summary()


def _summary() -> dict:
    from messaging.models import SandboxAccount, SandboxGroup, SandboxNetwork, SandboxNewsletter

    net = SandboxNetwork.objects.first()
    peers = [
        {
            "phone": a.phone,
            "jid": a.jid,
            "name": a.push_name,
            "behavior": a.behavior,
            "business": bool(a.business),
            "about": a.about,
            "privacy": a.privacy,
            "lid": f"{a.lid}@{p.LID_SERVER}" if a.lid else "",
            "shares_phone": a.shares_phone,
        }
        for a in SandboxAccount.objects.filter(kind="peer").order_by("id")
    ]
    groups = [
        {
            "jid": g.jid,
            "name": g.name,
            "invite_link": INVITE_PREFIX + g.invite_code,
            "owner": g.owner,
            "participants": dict(g.participants),
            "announce": g.announce,
            "locked": g.locked,
            "join_approval": g.join_approval,
        }
        for g in SandboxGroup.objects.order_by("id")
    ]
    newsletters = [{"jid": n.jid, "name": n.name} for n in SandboxNewsletter.objects.order_by("id")]
    return {
        "seed": net.seed if net else None,
        "peers": peers,
        "groups": groups,
        "newsletters": newsletters,
        "unregistered": unregistered_phone(),
    }


def peer_phones(behavior: str | None = None) -> list[str]:
    """Phone numbers (digits) of the simulated peers, in a stable order; only those of `behavior` if given."""
    from messaging.models import SandboxAccount

    _network()
    rows = SandboxAccount.objects.filter(kind="peer", registered=True)
    if behavior:
        rows = rows.filter(behavior=behavior)
    return list(rows.order_by("id").values_list("phone", flat=True))


def unregistered_phone() -> str:
    """A well-formed number that is not on the simulated WhatsApp."""
    from messaging.models import SandboxAccount

    n = 1
    while SandboxAccount.objects.filter(phone=f"1555999{n:04d}", registered=True).exists():
        n += 1
    return f"1555999{n:04d}"


def fresh_phone() -> str:
    """A number no account has yet: for linking a new device from a new simulated phone."""
    from messaging.models import SandboxAccount

    n = SandboxAccount.objects.filter(kind="phone").count() + 1
    while SandboxAccount.objects.filter(phone=f"1999{n:07d}").exists():
        n += 1
    return f"1999{n:07d}"


def advance_clock(seconds: float) -> float:
    """Make time pass on the network for every process (edit windows, code expiry); returns the new time."""
    from messaging.models import SandboxNetwork

    _network()
    SandboxNetwork.objects.update(clock_offset=F("clock_offset") + float(seconds))
    return now()
