"""`manage.py demo`: a demo organization with a login, an API key and a linked sandbox device, idempotent."""

import io
import json

import pytest
from django.core.management import call_command

from accounts.models import ApiKey, Membership, User, hash_api_key
from messaging.models import Device, DeviceStatus, SandboxSession
from messaging.whatsapp import sandbox


def run_demo(*args) -> str:
    out = io.StringIO()
    call_command("demo", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_demo_json_has_everything_and_it_works():
    data = json.loads(run_demo("--json"))
    assert {"api_key", "device_id", "login", "contacts", "group_id", "invite_link", "newsletter_id"} <= set(
        data
    )
    key = ApiKey.objects.get(key_hash=hash_api_key(data["api_key"]))
    assert key.is_active and key.access == "full"
    assert User.objects.get(email=data["login"]["email"]).check_password(data["login"]["password"])
    membership = Membership.objects.get(user__email=data["login"]["email"])
    assert membership.organization_id == key.organization_id

    device = Device.objects.get(pk=data["device_id"])
    assert device.organization_id == key.organization_id and device.wanted
    assert device.jid == f"{device.phone}@s.whatsapp.net" and device.status == DeviceStatus.CONNECTING
    assert SandboxSession.objects.get(device=device).phone == device.phone

    assert data["contacts"] == sandbox.peer_phones()
    group = sandbox.group_state(data["group_id"])
    assert device.jid in group["participants"]
    outside = next(g for g in sandbox.network_summary()["groups"] if g["invite_link"] == data["invite_link"])
    assert device.jid not in outside["participants"] and not outside["join_approval"]
    assert data["newsletter_id"] in [n["jid"] for n in sandbox.network_summary()["newsletters"]]
    from messaging.models import SandboxNewsletter

    assert device.jid in SandboxNewsletter.objects.get(jid=data["newsletter_id"]).followers


@pytest.mark.django_db
def test_demo_runs_twice():
    first = json.loads(run_demo("--json"))
    second = json.loads(run_demo("--json", "--password", "a fixed password"))
    assert second["device_id"] == first["device_id"]
    assert second["group_id"] == first["group_id"]
    assert second["login"]["email"] == first["login"]["email"]
    assert Device.objects.filter(name="Demo phone").count() == 1
    device_jid = Device.objects.get(name="Demo phone").jid
    assert (
        len([m for m in sandbox.sent_by(second["contacts"][0]) if m["to"] == device_jid]) == 1
    )  # greeted once
    assert User.objects.get(email=second["login"]["email"]).check_password("a fixed password")
    for raw in (first["api_key"], second["api_key"]):  # both keys work; nothing was duplicated but keys
        assert ApiKey.objects.get(key_hash=hash_api_key(raw)).is_active


@pytest.mark.django_db
def test_demo_text_output():
    text = run_demo()
    assert "API key:" in text and "Login:" in text and "https://chat.whatsapp.com/" in text


@pytest.mark.django_db(transaction=True)
def test_demo_device_connects_through_the_worker_and_answers(wa):
    data = json.loads(run_demo("--json"))
    device = Device.objects.get(pk=data["device_id"])
    from messaging import gateway

    connected = wa.wait_event("device.connected", device=device, since_start=True)
    assert connected["jid"] == device.jid
    groups = gateway.call(device, "joined_groups")
    assert data["group_id"] in [g.jid for g in groups]
    # the first messages waiting for it are in the inbox, the picture downloaded
    wa.wait_event("message", device=device, predicate=lambda d: d["kind"] == "image", since_start=True)
    from messaging.models import Message

    texts = list(Message.objects.filter(device=device, from_me=False).values_list("kind", flat=True))
    assert sorted(texts) == ["image", "text"]
    assert Message.objects.get(device=device, kind="image").media
