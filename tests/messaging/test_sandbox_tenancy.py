"""The simulated network is shared by every organization: none links, or writes as, another's number, and
refusals name no group or newsletter the caller is not in."""

import pytest
from asgiref.sync import sync_to_async

from messaging.models import SandboxDelivery, SandboxSession
from messaging.whatsapp import protocol as p
from messaging.whatsapp import sandbox
from tests.conftest import make_organization
from tests.messaging.sandbox_harness import Network, call, outgoing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_sandbox")]

OURS, THEIRS = "905550001111", "905550002222"


@pytest.fixture
async def rival(fast_sandbox):
    """Another organization's devices on the same simulated network."""
    network = Network(await sync_to_async(make_organization)())
    yield network
    await network.close()


async def waiting_for_a_scan(network):
    device = await network.device("Rival")
    client, events = await network.client(device)
    await client.start()
    return device, client, events, await events.wait(p.QRCodeEvent)


def linked(device) -> bool:
    return SandboxSession.objects.filter(device=device).exists()


# ---------------------------------------------------------------------------------------------- linking


async def test_another_organization_cannot_scan_as_our_number(net, rival):
    ours = await net.link(phone=OURS)
    device, client, events, qr = await waiting_for_a_scan(rival)
    with pytest.raises(p.Forbidden, match="^phone: this number is another organization's"):
        await call(sandbox.phone_scan, qr_code=qr.code, phone="+" + OURS)
    assert not client.is_connected() and not await call(linked, device)

    # What is written to our number reaches us only; their code still links a number of their own.
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    message_id = await call(sandbox.peer_send, from_phone=quiet, to_jid=ours.jid, text="for us only")
    await ours.events.wait(p.MessageEvent, lambda e: e.message.id == message_id)
    assert not await sync_to_async(SandboxDelivery.objects.filter(device=device).exists)()
    await call(sandbox.phone_scan, qr_code=qr.code, phone=THEIRS)
    assert (await events.wait(p.ConnectedEvent)).jid == f"{THEIRS}@s.whatsapp.net"


async def test_our_number_stays_ours_after_we_unlink_it(net, rival):
    ours = await net.link(phone=OURS)
    await ours.client.logout()
    device, client, events, qr = await waiting_for_a_scan(rival)
    with pytest.raises(p.Forbidden, match="^phone: "):
        await call(sandbox.phone_scan, qr_code=qr.code, phone=OURS)
    again = await net.link(phone=OURS, name="Again")  # we link it again whenever we like
    assert again.jid == ours.jid


async def test_another_organization_gets_no_pairing_code_for_our_number(net, rival):
    await net.link(phone=OURS)
    device, client, events, qr = await waiting_for_a_scan(rival)
    with pytest.raises(p.Forbidden, match="^phone: "):
        await client.pair_phone(phone=OURS)
    assert not events.of(p.PairCodeEvent)


async def test_a_code_asked_for_before_we_linked_the_number_is_refused_when_entered(net, rival):
    device, client, events, qr = await waiting_for_a_scan(rival)
    code = await client.pair_phone(phone=OURS)  # a new number then: a code is given
    await net.link(phone=OURS)
    with pytest.raises(p.Forbidden, match="^phone: "):
        await call(sandbox.phone_enter_code, phone=OURS, code=code.code)
    assert not client.is_connected() and not await call(linked, device)


async def test_an_organization_links_its_own_number_on_several_devices(net):
    first = await net.link(phone=OURS, name="One")
    second = await net.link(phone=OURS, name="Two")
    assert first.jid == second.jid
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    message_id = await call(sandbox.peer_send, from_phone=quiet, to_jid=first.jid, text="both")
    for device in (first, second):
        await device.events.wait(p.MessageEvent, lambda e: e.message.id == message_id)


async def test_no_device_is_linked_as_a_simulated_contact(net):
    contact = (await call(sandbox.peer_phones))[0]
    device, client, events, qr = await waiting_for_a_scan(net)
    with pytest.raises(p.Forbidden, match="^phone: this is a simulated contact's number"):
        await call(sandbox.phone_scan, qr_code=qr.code, phone=contact)
    with pytest.raises(p.Forbidden, match="^phone: "):
        await client.pair_phone(phone=contact)
    assert not await call(linked, device)


# ---------------------------------------------------------------------------------------------- writing as a number


async def test_the_simulated_phone_writes_as_contacts_and_our_own_numbers_only(net, rival):
    ours = await net.link(phone=OURS)
    theirs = await rival.link(phone=THEIRS)
    with pytest.raises(p.Forbidden, match="^from_phone: "):
        await call(
            sandbox.peer_send,
            from_phone=OURS,
            to_jid=theirs.jid,
            text="I am them",
            organization_id=rival.organization.pk,
        )
    assert await call(sandbox.sent_by, OURS) == []

    contact = (await call(sandbox.peer_phones, "quiet"))[0]
    as_contact = await call(
        sandbox.peer_send,
        from_phone=contact,
        to_jid=theirs.jid,
        text="hi",
        organization_id=rival.organization.pk,
    )
    await theirs.events.wait(p.MessageEvent, lambda e: e.message.id == as_contact)
    as_ours = await call(
        sandbox.peer_send,
        from_phone=OURS,
        to_jid=theirs.jid,
        text="from us",
        organization_id=net.organization.pk,
    )
    await theirs.events.wait(p.MessageEvent, lambda e: e.message.id == as_ours)
    assert ours.jid == f"{OURS}@s.whatsapp.net"


# ---------------------------------------------------------------------------------------------- refusals name nothing


async def test_refusals_name_no_group_the_device_is_not_in(net):
    device = await net.link()
    summary = await call(sandbox.network_summary)
    secret = next(g for g in summary["groups"] if device.jid not in g["participants"])
    client, jid = device.client, secret["jid"]
    attempts = [
        client.group_info(jid=jid),
        client.invite_link(jid=jid),
        client.join_requests(jid=jid),
        client.leave_group(jid=jid),
        client.set_group_name(jid=jid, name="mine now"),
        client.set_group_topic(jid=jid, topic="mine now"),
        client.set_group_locked(jid=jid, locked=False),
        client.update_participants(jid=jid, participants=[device.phone], action=p.ParticipantAction.ADD),
        client.send_chat_presence(chat=jid, state=p.ChatPresenceState.COMPOSING),
        client.send(message=outgoing(jid)),
    ]
    for attempt in attempts:
        with pytest.raises((p.Forbidden, p.NotFound)) as refused:
            await attempt
        assert secret["name"] not in refused.value.message
        assert "not a participant of this group" in refused.value.message


async def test_a_groups_picture_is_for_its_participants(net):
    device = await net.link()
    summary = await call(sandbox.network_summary)
    secret = next(g for g in summary["groups"] if device.jid not in g["participants"])
    with pytest.raises(p.Forbidden) as refused:
        await device.client.avatar(jid=secret["jid"])
    assert secret["name"] not in refused.value.message
    await call(sandbox.add_group_member, group=secret["jid"], phone=device.phone)
    assert (await device.client.avatar(jid=secret["jid"])).url.startswith("data:image/")


async def test_no_read_receipts_into_a_group_the_device_is_not_in(net):
    device = await net.link()
    summary = await call(sandbox.network_summary)
    secret = next(g for g in summary["groups"] if device.jid not in g["participants"])
    member = next(iter(secret["participants"])).split("@")[0]
    message_id = await call(sandbox.peer_send, from_phone=member, to_jid=secret["jid"], text="members only")
    with pytest.raises(p.Forbidden, match="not a participant of this group"):
        await device.client.mark_read(
            chat=secret["jid"], message_ids=[message_id], sender=f"{member}@s.whatsapp.net"
        )
    assert device.jid not in (await call(sandbox.message_state, message_id))["read_by"]


async def test_refusals_inside_a_group_or_newsletter_name_it_not(net):
    device = await net.link()
    summary = await call(sandbox.network_summary)
    announce = next(g for g in summary["groups"] if g["announce"] and g["locked"])
    await call(sandbox.add_group_member, group=announce["jid"], phone=device.phone)
    newsletter = summary["newsletters"][-1]
    attempts = [
        device.client.send(message=outgoing(announce["jid"])),
        device.client.set_group_name(jid=announce["jid"], name="ours"),
        device.client.send(message=outgoing(newsletter["jid"])),
        device.client.unfollow_newsletter(jid=newsletter["jid"]),
    ]
    for attempt in attempts:
        with pytest.raises((p.Forbidden, p.NotFound)) as refused:
            await attempt
        message = refused.value.message
        assert announce["name"] not in message and newsletter["name"] not in message, message


# ---------------------------------------------------------------------------------------------- the migration


def test_the_migration_gives_a_linked_number_to_the_organization_that_linked_it_first(org, other_org):
    """Numbers linked before the rule existed (even, by the flaw it closes, by two organizations) are claimed."""
    import importlib
    import pathlib

    from django.apps import apps

    import messaging.migrations
    from messaging.models import Device, SandboxAccount

    folder = pathlib.Path(messaging.migrations.__file__).parent
    name = next(folder.glob("*_sandbox_tenancy_account_organization.py")).stem
    migration = importlib.import_module(f"messaging.migrations.{name}")
    first = Device.objects.create(organization=org, name="First")
    second = Device.objects.create(organization=other_org, name="Second")
    SandboxAccount.objects.create(phone=OURS, kind="phone")
    SandboxSession.objects.create(device=first, phone=OURS)
    SandboxSession.objects.create(device=second, phone=OURS)
    migration.claim_linked_phones(apps, None)
    assert SandboxAccount.objects.get(phone=OURS).organization_id == org.pk
    assert list(SandboxSession.objects.values_list("device_id", flat=True)) == [
        first.pk
    ]  # the intruder is out
    assert sandbox.link_refusal(OURS, organization_id=other_org.pk) == sandbox.FOREIGN
    assert sandbox.link_refusal(OURS, organization_id=org.pk) == ""
