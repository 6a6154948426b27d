"""Sandbox groups: create, info, participants, admin rules, announce/locked, invite links, join requests, leave."""

import pytest

from messaging.whatsapp import protocol as p
from messaging.whatsapp import sandbox
from tests.messaging.sandbox_harness import call, outgoing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_sandbox")]

A = p.ParticipantAction


def jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


async def test_create_group_and_info(net):
    linked = await net.link()
    peers = await call(sandbox.peer_phones)
    unregistered = await call(sandbox.unregistered_phone)
    info = await linked.client.create_group(name="Team", participants=[peers[0], peers[1], unregistered])
    assert info.jid.endswith("@g.us") and info.name == "Team" and info.owner == linked.jid
    members = {m.jid: m for m in info.participants}
    assert set(members) == {linked.jid, jid(peers[0]), jid(peers[1])}  # the unregistered number is left out
    assert members[linked.jid].is_super_admin and members[linked.jid].is_admin
    assert not members[jid(peers[0])].is_admin
    again = await linked.client.group_info(jid=info.jid)
    assert again.jid == info.jid and len(again.participants) == 3
    assert info.jid in [g.jid for g in await linked.client.joined_groups()]
    event = await linked.events.wait(p.GroupChangedEvent)
    assert event.group == info.jid and event.action == "add"


async def test_create_group_refusals(net):
    linked = await net.link()
    with pytest.raises(p.InvalidRequest):
        await linked.client.create_group(name="  ", participants=[])
    with pytest.raises(p.InvalidRequest):
        await linked.client.create_group(name="x" * 101, participants=[])
    with pytest.raises(p.InvalidRequest):
        await linked.client.create_group(name="ok", participants=["not a number"])


async def test_group_info_refusals(net):
    linked = await net.link()
    summary = await call(sandbox.network_summary)
    with pytest.raises(p.NotFound):
        await linked.client.group_info(jid="120363000000000001@g.us")
    with pytest.raises(p.Forbidden):
        await linked.client.group_info(jid=summary["groups"][0]["jid"])  # not a participant
    with pytest.raises(p.InvalidRequest):
        await linked.client.group_info(jid=jid("905551112233"))


async def test_participants_add_remove_promote_demote(net):
    linked = await net.link()
    peers = await call(sandbox.peer_phones)
    info = await linked.client.create_group(name="Team", participants=[peers[0]])
    rows = await linked.client.update_participants(
        jid=info.jid, participants=[peers[1], peers[0]], action=A.ADD
    )
    assert [(r.participant, r.status) for r in rows] == [(jid(peers[1]), "success"), (jid(peers[0]), "error")]
    assert rows[1].message == "already a participant"
    rows = await linked.client.update_participants(jid=info.jid, participants=[peers[1]], action=A.PROMOTE)
    assert rows[0].status == "success"
    state = await call(sandbox.group_state, info.jid)
    assert state["participants"][jid(peers[1])] == "admin"
    rows = await linked.client.update_participants(jid=info.jid, participants=[peers[1]], action=A.DEMOTE)
    assert rows[0].status == "success"
    rows = await linked.client.update_participants(jid=info.jid, participants=[peers[1]], action=A.DEMOTE)
    assert rows[0].status == "error" and rows[0].message == "not an admin"
    rows = await linked.client.update_participants(jid=info.jid, participants=[peers[1]], action=A.REMOVE)
    assert rows[0].status == "success"
    rows = await linked.client.update_participants(jid=info.jid, participants=[peers[1]], action=A.REMOVE)
    assert rows[0].message == "not a participant"
    events = linked.events.of(p.GroupChangedEvent)
    assert [e.action for e in events] == ["add", "add", "promote", "demote", "remove"]
    assert events[-1].participants == [jid(peers[1])] and events[-1].actor == linked.jid


async def test_participant_rows_for_unregistered_and_private_numbers(net):
    summary = await call(sandbox.network_summary)
    private = next(x for x in summary["peers"] if x["privacy"]["group_add"] == "contacts")
    stranger = await net.link(phone="905550000077", name="Stranger")
    info = await stranger.client.create_group(name="Strangers", participants=[])
    rows = await stranger.client.update_participants(
        jid=info.jid,
        participants=[await call(sandbox.unregistered_phone), private["phone"], "x"],
        action=A.ADD,
    )
    assert [r.status for r in rows] == ["error", "error", "error"]
    assert rows[0].message == "not on WhatsApp" and "privacy" in rows[1].message


async def test_non_admin_cannot_change_participants(net):
    owner = await net.link(phone="905550000001", name="Owner")
    member = await net.link(phone="905550000002", name="Member")
    peers = await call(sandbox.peer_phones)
    info = await owner.client.create_group(name="Team", participants=[member.jid, peers[0]])
    for action in (A.ADD, A.REMOVE, A.PROMOTE, A.DEMOTE):
        with pytest.raises(p.Forbidden):
            await member.client.update_participants(jid=info.jid, participants=[peers[0]], action=action)
    rows = await owner.client.update_participants(jid=info.jid, participants=[owner.jid], action=A.REMOVE)
    assert rows[0].message == "the group's creator cannot be removed"
    await owner.client.update_participants(jid=info.jid, participants=[member.jid], action=A.PROMOTE)
    rows = await member.client.update_participants(jid=info.jid, participants=[owner.jid], action=A.DEMOTE)
    assert rows[0].message == "the group's creator cannot be demoted"
    rows = await member.client.update_participants(jid=info.jid, participants=[peers[0]], action=A.REMOVE)
    assert rows[0].status == "success"
    # both devices were told
    await owner.events.wait(p.GroupChangedEvent, lambda e: e.action == "remove")
    await member.events.wait(p.GroupChangedEvent, lambda e: e.action == "remove")


async def test_announce_group_only_admins_send(net):
    owner = await net.link(phone="905550000001", name="Owner")
    member = await net.link(phone="905550000002", name="Member")
    info = await owner.client.create_group(name="News", participants=[member.jid])
    with pytest.raises(p.Forbidden):
        await member.client.set_group_announce(jid=info.jid, announce=True)
    await owner.client.set_group_announce(jid=info.jid, announce=True)
    settings_event = await member.events.wait(
        p.GroupChangedEvent, lambda e: e.change == p.GroupChange.SETTINGS
    )
    assert settings_event.announce is True
    with pytest.raises(p.Forbidden):
        await member.client.send(message=outgoing(info.jid, "may I?"))
    message = outgoing(info.jid, "admins only")
    await owner.client.send(message=message)
    got = (await member.events.wait(p.MessageEvent)).message
    assert (got.id, got.chat, got.sender) == (message.id, info.jid, owner.jid)
    assert (await owner.client.group_info(jid=info.jid)).announce


async def test_locked_group_only_admins_edit_info(net):
    owner = await net.link(phone="905550000001", name="Owner")
    member = await net.link(phone="905550000002", name="Member")
    info = await owner.client.create_group(name="Club", participants=[member.jid])
    await member.client.set_group_name(jid=info.jid, name="Member's club")  # unlocked: anyone may
    await member.client.set_group_topic(jid=info.jid, topic="We read")
    with pytest.raises(p.Forbidden):
        await member.client.set_group_locked(jid=info.jid, locked=True)
    await owner.client.set_group_locked(jid=info.jid, locked=True)
    with pytest.raises(p.Forbidden):
        await member.client.set_group_name(jid=info.jid, name="Mine")
    with pytest.raises(p.Forbidden):
        await member.client.set_group_topic(jid=info.jid, topic="Mine")
    with pytest.raises(p.Forbidden):
        await member.client.set_group_photo(jid=info.jid, image=sandbox.identicon("x"))
    await owner.client.set_group_name(jid=info.jid, name="Owner's club")
    photo = await owner.client.set_group_photo(jid=info.jid, image=sandbox.identicon("club"))
    assert photo
    state = await owner.client.group_info(jid=info.jid)
    assert (state.name, state.topic, state.locked) == ("Owner's club", "We read", True)
    subject = await member.events.wait(p.GroupChangedEvent, lambda e: e.name == "Owner's club")
    assert subject.change == p.GroupChange.SUBJECT
    with pytest.raises(p.InvalidRequest):
        await owner.client.set_group_name(jid=info.jid, name="")
    with pytest.raises(p.InvalidRequest):
        await owner.client.set_group_photo(jid=info.jid, image=b"nope")


async def test_invite_link_and_join(net):
    owner = await net.link(phone="905550000001", name="Owner")
    joiner = await net.link(phone="905550000002", name="Joiner")
    info = await owner.client.create_group(name="Open", participants=[])
    link = await owner.client.invite_link(jid=info.jid)
    assert link.startswith("https://chat.whatsapp.com/")
    assert await owner.client.invite_link(jid=info.jid) == link
    assert await joiner.client.join_with_link(code=link) == info.jid
    joined = await owner.events.wait(p.GroupChangedEvent, lambda e: e.action == "join")
    assert joined.participants == [joiner.jid]
    assert (
        await joiner.client.join_with_link(code=link.rsplit("/", 1)[1]) == info.jid
    )  # already in: same answer
    # a non-admin may not see the link; a reset link kills the old one
    with pytest.raises(p.Forbidden):
        await joiner.client.invite_link(jid=info.jid)
    new = await owner.client.invite_link(jid=info.jid, reset=True)
    assert new != link
    third = await net.link(phone="905550000003", name="Third")
    with pytest.raises(p.NotFound):
        await third.client.join_with_link(code=link)
    with pytest.raises(p.InvalidRequest):
        await third.client.join_with_link(code="!!")


async def test_join_a_seeded_group_by_its_link(net):
    linked = await net.link()
    group = (await call(sandbox.network_summary))["groups"][0]
    assert not group["join_approval"]
    assert await linked.client.join_with_link(code=group["invite_link"]) == group["jid"]
    info = await linked.client.group_info(jid=group["jid"])
    assert linked.jid in [m.jid for m in info.participants]


async def test_join_requests_with_approval(net):
    owner = await net.link(phone="905550000001", name="Owner")
    asker = await net.link(phone="905550000002", name="Asker")
    peers = await call(sandbox.peer_phones)
    info = await owner.client.create_group(name="Closed", participants=[])
    await call(sandbox.set_join_approval, group=info.jid, approval=True)
    link = await owner.client.invite_link(jid=info.jid)
    assert await asker.client.join_with_link(code=link) == info.jid
    request = await owner.events.wait(p.JoinRequestEvent)
    assert (request.group, request.requester, request.action) == (info.jid, asker.jid, "created")
    with pytest.raises(p.Forbidden):
        await asker.client.group_info(jid=info.jid)  # asked, not in yet
    await call(sandbox.peer_join_request, from_phone=peers[0], group=info.jid)
    pending = await owner.client.join_requests(jid=info.jid)
    assert [r.jid for r in pending] == [asker.jid, jid(peers[0])]
    rows = await owner.client.answer_join_requests(
        jid=info.jid, participants=[asker.jid, peers[1]], approve=True
    )
    assert [(r.participant, r.status) for r in rows] == [(asker.jid, "success"), (jid(peers[1]), "error")]
    await asker.events.wait(p.GroupChangedEvent, lambda e: e.action == "add")
    assert asker.jid in [m.jid for m in (await asker.client.group_info(jid=info.jid)).participants]
    rows = await owner.client.answer_join_requests(jid=info.jid, participants=[peers[0]], approve=False)
    assert rows[0].status == "success"
    assert await owner.client.join_requests(jid=info.jid) == []
    assert jid(peers[0]) not in (await call(sandbox.group_state, info.jid))["participants"]
    # only admins see and answer requests
    with pytest.raises(p.Forbidden):
        await asker.client.join_requests(jid=info.jid)
    with pytest.raises(p.Forbidden):
        await asker.client.answer_join_requests(jid=info.jid, participants=[peers[0]], approve=True)


async def test_leave_group(net):
    owner = await net.link(phone="905550000001", name="Owner")
    member = await net.link(phone="905550000002", name="Member")
    info = await owner.client.create_group(name="Short lived", participants=[member.jid])
    await owner.client.leave_group(jid=info.jid)
    left = await member.events.wait(p.GroupChangedEvent, lambda e: e.action == "leave")
    assert left.participants == [owner.jid]
    state = await call(sandbox.group_state, info.jid)
    assert state["participants"] == {member.jid: "admin"}  # the last admin left: someone else is made admin
    with pytest.raises(p.NotFound):
        await owner.client.leave_group(jid=info.jid)
    with pytest.raises(p.Forbidden):
        await owner.client.send(message=outgoing(info.jid, "still here?"))
    with pytest.raises(p.NotFound):
        await owner.client.leave_group(jid="120363000000000001@g.us")


async def test_group_messages_reach_members_and_peers_receipt(net):
    owner = await net.link(phone="905550000001", name="Owner")
    member = await net.link(phone="905550000002", name="Member")
    quiet = (await call(sandbox.peer_phones, "react"))[0]  # (peers only answer in direct chats)
    info = await owner.client.create_group(name="Mixed", participants=[member.jid, quiet])
    message = outgoing(info.jid, "hello all")
    await owner.client.send(message=message)
    got = (await member.events.wait(p.MessageEvent)).message
    assert got.chat == info.jid and got.sender == owner.jid
    receipt = await owner.events.wait(p.ReceiptEvent, lambda e: e.sender == jid(quiet))
    assert receipt.chat == info.jid and receipt.type == p.ReceiptType.DELIVERED
    await owner.events.wait(p.ReceiptEvent, lambda e: e.sender == member.jid)  # the member's phone too
    assert [m["id"] for m in await call(sandbox.sent_to, quiet)] == [message.id]
    # a peer writes in the group
    mid = await call(sandbox.peer_send, from_phone=quiet, to_jid=info.jid, text="hi from a peer")
    peer_msg = await member.events.wait(p.MessageEvent, lambda e: e.message.id == mid)
    assert peer_msg.message.chat == info.jid
    # group admin may revoke another's message
    await owner.client.revoke(chat=info.jid, message_id=mid, sender=jid(quiet))
    with pytest.raises(p.Forbidden):
        await member.client.revoke(chat=info.jid, message_id=message.id, sender=owner.jid)


async def test_peer_creates_a_group_with_the_device(net):
    linked = await net.link()
    peers = await call(sandbox.peer_phones)
    group = await call(
        sandbox.peer_create_group, owner_phone=peers[0], name="Invited", participants=[linked.jid, peers[1]]
    )
    added = await linked.events.wait(p.GroupChangedEvent)
    assert added.group == group and linked.jid in added.participants
    assert group in [g.jid for g in await linked.client.joined_groups()]
    rows = await call(
        sandbox.peer_group_action,
        from_phone=peers[0],
        group=group,
        participants=[linked.jid],
        action="promote",
    )
    assert rows[0].status == "success"
    with pytest.raises(p.Forbidden):
        await call(
            sandbox.peer_group_action,
            from_phone=peers[1],
            group=group,
            participants=[peers[0]],
            action="remove",
        )


async def test_rejected_join_request_is_told_to_the_requester(net):
    owner = await net.link(phone="905550000001", name="Owner")
    asker = await net.link(phone="905550000002", name="Asker")
    info = await owner.client.create_group(name="Closed", participants=[])
    await call(sandbox.set_join_approval, group=info.jid, approval=True)
    await asker.client.join_with_link(code=await owner.client.invite_link(jid=info.jid))
    await owner.events.wait(p.JoinRequestEvent)
    await owner.client.answer_join_requests(jid=info.jid, participants=[asker.jid], approve=False)
    rejected = await asker.events.wait(p.JoinRequestEvent)
    assert (rejected.group, rejected.requester, rejected.action) == (info.jid, asker.jid, "rejected")
    with pytest.raises(p.Forbidden):
        await asker.client.group_info(jid=info.jid)
