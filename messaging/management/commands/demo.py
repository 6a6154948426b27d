"""`manage.py demo [--json]`: a demo organization with a login, an API key and a linked sandbox device."""

import json
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@waportal.example"
DEMO_DEVICE = "Demo phone"
DEMO_PHONE = "905551000000"
DEMO_GROUP = "Demo team"


class Command(BaseCommand):
    help = (
        "Create (or refresh) a demo organization on the simulated WhatsApp network: an operator login, an API "
        "key and one sandbox device already linked, with simulated contacts, a group the device is in, a group "
        "it is not in (with its invite link) and a followed newsletter. Run the server with WA_BACKEND=sandbox."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print one JSON object instead of text."
        )
        parser.add_argument(
            "--password", default=None, help="The login's password (default: a new random one)."
        )

    def handle(self, *args, as_json: bool = False, password: str | None = None, **options):
        result = build_demo(password=password)
        if as_json:
            self.stdout.write(_json(result))
            return
        if getattr(settings, "WA_BACKEND", "") != "sandbox":
            self.stderr.write(
                self.style.WARNING(
                    "WA_BACKEND is not 'sandbox': start the server with WA_BACKEND=sandbox to use the demo."
                )
            )
        out = self.stdout.write
        out(self.style.SUCCESS(f"Demo organization: {result['organization']}"))
        out(f"  Login:        {result['login']['email']}  /  {result['login']['password']}")
        out(f"  API key:      {result['api_key']}")
        out(f"  Device:       #{result['device_id']} {DEMO_DEVICE} ({result['device_phone']}, linked)")
        out(
            "  Contacts:     "
            + ", ".join(f"{c['phone']} ({c['name']}, {c['behavior']})" for c in result["contact_details"])
        )
        out(f"  Group (in):   {result['group_id']} ({DEMO_GROUP})")
        out(f"  Group (out):  {result['other_group_id']}  invite link {result['invite_link']}")
        out(f"  Newsletter:   {result['newsletter_id']}")


def _json(result: dict) -> str:
    keys = ("api_key", "device_id", "login", "contacts", "group_id", "invite_link", "newsletter_id")
    data = {key: result[key] for key in keys}
    data.update(
        organization=result["organization"],
        device_phone=result["device_phone"],
        other_group_id=result["other_group_id"],
    )
    return json.dumps(data)


def build_demo(*, password: str | None = None) -> dict:
    """Create or refresh the demo; returns what to print (the API key and password are new on every run)."""
    from accounts.models import ApiKey, Membership, Organization, Role, User
    from messaging.models import Device, DeviceStatus
    from messaging.whatsapp import sandbox

    password = password or secrets.token_urlsafe(12)
    summary = sandbox.network_summary()
    peers = summary["peers"]
    with transaction.atomic():
        organization, _ = Organization.objects.get_or_create(slug=DEMO_SLUG, defaults={"name": "Demo"})
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=DEMO_EMAIL, password=password)
        else:
            user.set_password(password)
            user.is_active = True
            user.save(update_fields=["password", "is_active"])
        Membership.objects.update_or_create(
            organization=organization, user=user, defaults={"role": Role.OWNER}
        )
        raw, prefix, digest = ApiKey.generate()
        ApiKey.objects.create(
            organization=organization,
            name="demo",
            access="full",
            key_prefix=prefix,
            key_hash=digest,
            created_by=user,
        )
        device = organization.devices.filter(name=DEMO_DEVICE).first()
        if device is None:
            device = Device.objects.create(organization=organization, name=DEMO_DEVICE)
        session = sandbox.store_session(device_id=device.pk, phone=DEMO_PHONE, push_name="Demo Support")
        Device.objects.filter(pk=device.pk).update(
            jid=session["jid"],
            phone=session["phone"],
            push_name=session["push_name"],
            wanted=True,
            # The session worker connects it when it starts (it has a stored session: no QR code).
            status=DeviceStatus.CONNECTING
            if device.status != DeviceStatus.CONNECTED
            else DeviceStatus.CONNECTED,
            status_reason="",
            qr_code="",
            qr_expires_at=None,
            pair_code="",
        )
    jid = session["jid"]
    group_id = _demo_group(sandbox, jid, [p["phone"] for p in peers])
    _first_messages(sandbox, jid, peers)
    outside = next(g for g in summary["groups"] if not g["join_approval"] and jid not in g["participants"])
    newsletter = summary["newsletters"][0]["jid"]
    sandbox.follow_newsletter(phone=DEMO_PHONE, jid=newsletter)
    return {
        "organization": organization.name,
        "api_key": raw,
        "device_id": device.pk,
        "device_phone": session["phone"],
        "login": {"email": DEMO_EMAIL, "password": password},
        "contacts": [p["phone"] for p in peers],
        "contact_details": peers,
        "group_id": group_id,
        "other_group_id": outside["jid"],
        "invite_link": outside["invite_link"],
        "newsletter_id": newsletter,
    }


def _first_messages(sandbox, device_jid: str, peers: list[dict]) -> None:
    """A few messages waiting in the inbox (once): the worker delivers them when it connects the device."""
    from messaging.models import SandboxMessage

    if SandboxMessage.objects.filter(to=device_jid).exists():
        return
    greeter = next(p for p in peers if p["behavior"] == "echo")
    artist = next((p for p in peers if p["behavior"] == "media"), greeter)
    sandbox.peer_send(from_phone=greeter["phone"], to_jid=device_jid, text="Merhaba! Is my order on its way?")
    sandbox.peer_send(
        from_phone=artist["phone"], to_jid=device_jid, kind="image", caption="This is the one I meant"
    )


def _demo_group(sandbox, device_jid: str, peers: list[str]) -> str:
    """The demo device's group (made once by a simulated peer, the device an admin in it)."""
    from messaging.models import SandboxGroup

    for group in SandboxGroup.objects.filter(name=DEMO_GROUP):
        if device_jid in group.participants:
            return group.jid
    group_id = sandbox.peer_create_group(
        owner_phone=peers[0], name=DEMO_GROUP, participants=[device_jid, peers[1], peers[2]]
    )
    sandbox.peer_group_action(
        from_phone=peers[0], group=group_id, participants=[device_jid], action="promote"
    )
    return group_id
