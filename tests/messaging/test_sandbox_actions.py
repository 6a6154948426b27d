"""Sandbox: acting on messages (react, edit, revoke, delete for me, star, mark read), presence, profile, newsletters."""

import pytest

from messaging.whatsapp import protocol as p
from messaging.whatsapp import sandbox
from tests.messaging.sandbox_harness import call, outgoing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_sandbox")]


async def quiet_peer() -> str:
    return (await call(sandbox.peer_phones, "quiet"))[0]


async def pair(net):
    """Two devices of ours on two numbers, so each sees what the other does."""
    a = await net.link(phone="905550000001", name="A")
    b = await net.link(phone="905550000002", name="B")
    return a, b


# ---------------------------------------------------------------------------------------------- edit


async def test_edit_own_message_reaches_the_other_side(net):
    a, b = await pair(net)
    message = outgoing(b.jid, "helo")
    await a.client.send(message=message)
    await b.events.wait(p.MessageEvent)
    result = await a.client.edit(chat=b.jid, message_id=message.id, text="hello")
    assert result.id != message.id
    edit = (await b.events.wait(p.MessageEvent, lambda e: e.message.kind == p.MessageKind.EDIT)).message
    assert (edit.target_id, edit.text, edit.chat) == (message.id, "hello", a.jid)
    state = await call(sandbox.message_state, message.id)
    assert state["text"] == "hello" and state["edited"]


async def test_edit_refusals(net):
    a, b = await pair(net)
    theirs = outgoing(a.jid, "from b")
    await b.client.send(message=theirs)
    await a.events.wait(p.MessageEvent)
    with pytest.raises(p.Forbidden, match="own"):
        await a.client.edit(chat=b.jid, message_id=theirs.id, text="changed")
    with pytest.raises(p.NotFound):
        await a.client.edit(chat=b.jid, message_id="3EB0UNKNOWN", text="x")
    mine = outgoing(b.jid, "mine")
    await a.client.send(message=mine)
    with pytest.raises(p.InvalidRequest):
        await a.client.edit(chat=b.jid, message_id=mine.id, text="  ")
    await call(sandbox.advance_clock, 14 * 60)
    await a.client.edit(chat=b.jid, message_id=mine.id, text="still in time")
    await call(sandbox.advance_clock, 2 * 60)
    with pytest.raises(p.Forbidden, match="15 minutes"):
        await a.client.edit(chat=b.jid, message_id=mine.id, text="too late")
    assert (await call(sandbox.message_state, mine.id))["text"] == "still in time"


async def test_injected_clock_drives_the_edit_window(net):
    linked = await net.link()
    peer = await quiet_peer()
    message = outgoing(peer, "tick")
    start = 1_800_000_000.0
    sandbox.set_clock(lambda: start)
    try:
        await linked.client.send(message=message)
        sandbox.set_clock(lambda: start + 15 * 60 + 1)
        with pytest.raises(p.Forbidden):
            await linked.client.edit(chat=peer, message_id=message.id, text="tock")
    finally:
        sandbox.set_clock(None)


async def test_peer_edit_and_revoke_reach_the_device(net):
    linked = await net.link()
    peer = (await call(sandbox.peer_phones))[0]
    mid = await call(sandbox.peer_send, from_phone=peer, to_jid=linked.jid, text="typo")
    await call(sandbox.peer_edit, from_phone=peer, chat=linked.jid, message_id=mid, text="fixed")
    edit = (await linked.events.wait(p.MessageEvent, lambda e: e.message.kind == p.MessageKind.EDIT)).message
    assert edit.target_id == mid and edit.text == "fixed"
    await call(sandbox.peer_revoke, from_phone=peer, chat=linked.jid, message_id=mid)
    revoke = (
        await linked.events.wait(p.MessageEvent, lambda e: e.message.kind == p.MessageKind.REVOKE)
    ).message
    assert revoke.target_id == mid
    # a peer cannot edit our message either
    mine = outgoing(peer, "ours")
    await linked.client.send(message=mine)
    with pytest.raises(p.Forbidden):
        await call(sandbox.peer_edit, from_phone=peer, chat=linked.jid, message_id=mine.id, text="hijack")


# ---------------------------------------------------------------------------------------------- revoke, delete, star


async def test_revoke_own_message(net):
    a, b = await pair(net)
    message = outgoing(b.jid, "oops")
    await a.client.send(message=message)
    result = await a.client.revoke(chat=b.jid, message_id=message.id, sender=a.jid)
    assert result.id
    revoke = (await b.events.wait(p.MessageEvent, lambda e: e.message.kind == p.MessageKind.REVOKE)).message
    assert revoke.target_id == message.id and revoke.chat == a.jid
    assert (await call(sandbox.message_state, message.id))["revoked"]
    with pytest.raises(p.InvalidRequest):
        await a.client.edit(chat=b.jid, message_id=message.id, text="after revoke")


async def test_revoke_refusals(net):
    a, b = await pair(net)
    theirs = outgoing(a.jid, "from b")
    await b.client.send(message=theirs)
    with pytest.raises(p.Forbidden):
        await a.client.revoke(chat=b.jid, message_id=theirs.id, sender=b.jid)
    with pytest.raises(p.NotFound):
        await a.client.revoke(chat=b.jid, message_id="3EB0NOPE", sender=a.jid)
    old = outgoing(b.jid, "old")
    await a.client.send(message=old)
    await call(sandbox.advance_clock, sandbox.REVOKE_WINDOW + 1)
    with pytest.raises(p.Forbidden, match="too old"):
        await a.client.revoke(chat=b.jid, message_id=old.id, sender=a.jid)


async def test_delete_for_me_and_star(net):
    linked = await net.link()
    peer = await quiet_peer()
    message = outgoing(peer, "keep")
    await linked.client.send(message=message)
    await linked.client.star(chat=peer, message_id=message.id, sender=linked.jid, from_me=True, starred=True)
    assert (await call(sandbox.message_state, message.id))["starred_by"] == [linked.jid]
    await linked.client.star(chat=peer, message_id=message.id, sender=linked.jid, from_me=True, starred=False)
    assert (await call(sandbox.message_state, message.id))["starred_by"] == []
    await linked.client.delete_for_me(chat=peer, message_id=message.id, sender=linked.jid, from_me=True)
    state = await call(sandbox.message_state, message.id)
    assert state["deleted_for"] == [linked.jid] and not state["revoked"]
    with pytest.raises(p.NotFound):
        await linked.client.star(
            chat=peer, message_id="3EB0NOPE", sender=linked.jid, from_me=True, starred=True
        )
    with pytest.raises(p.NotFound):
        await linked.client.delete_for_me(chat=peer, message_id="3EB0NOPE", sender=linked.jid, from_me=True)
    # a message of another chat is not in this one
    other = (await call(sandbox.peer_phones, "echo"))[0]
    with pytest.raises(p.NotFound):
        await linked.client.star(
            chat=other, message_id=message.id, sender=linked.jid, from_me=True, starred=True
        )


# ---------------------------------------------------------------------------------------------- reactions


async def test_react_and_remove_reaction(net):
    a, b = await pair(net)
    message = outgoing(b.jid, "nice")
    await a.client.send(message=message)
    await b.client.react(chat=a.jid, message_id=message.id, sender=a.jid, emoji="❤️")
    reaction = (
        await a.events.wait(p.MessageEvent, lambda e: e.message.kind == p.MessageKind.REACTION)
    ).message
    assert (reaction.target_id, reaction.reaction, reaction.sender) == (message.id, "❤️", b.jid)
    assert (await call(sandbox.message_state, message.id))["reactions"] == {b.jid: "❤️"}
    await b.client.react(chat=a.jid, message_id=message.id, sender=a.jid, emoji="")
    removed = await a.events.wait(p.MessageEvent, lambda e: e.message.kind == p.MessageKind.REACTION, count=2)
    assert removed.message.reaction == ""
    assert (await call(sandbox.message_state, message.id))["reactions"] == {}


async def test_react_refusals(net):
    linked = await net.link()
    peer = await quiet_peer()
    with pytest.raises(p.NotFound):
        await linked.client.react(chat=peer, message_id="3EB0NOPE", sender=peer, emoji="👍")
    message = outgoing(peer, "x")
    await linked.client.send(message=message)
    with pytest.raises(p.InvalidRequest):
        await linked.client.react(chat=peer, message_id=message.id, sender=linked.jid, emoji="not an emoji")


async def test_peer_react_reaches_the_device(net):
    linked = await net.link()
    peer = await quiet_peer()
    message = outgoing(peer, "react to me")
    await linked.client.send(message=message)
    await call(sandbox.peer_react, from_phone=peer, chat=linked.jid, message_id=message.id, emoji="🎉")
    reaction = (await linked.events.wait(p.MessageEvent)).message
    assert (
        reaction.kind == p.MessageKind.REACTION
        and reaction.reaction == "🎉"
        and reaction.chat == f"{peer}@s.whatsapp.net"
    )


# ---------------------------------------------------------------------------------------------- read receipts


async def test_mark_read_sends_a_read_receipt_to_the_sender(net):
    a, b = await pair(net)
    message = outgoing(b.jid, "read me")
    await a.client.send(message=message)
    await b.events.wait(p.MessageEvent)
    delivered = await a.events.wait(p.ReceiptEvent)  # b's phone confirms delivery by itself
    assert delivered.type == p.ReceiptType.DELIVERED and delivered.sender == b.jid
    await b.client.mark_read(chat=a.jid, message_ids=[message.id], sender=a.jid)
    receipt = await a.events.wait(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.READ)
    assert (receipt.type, receipt.message_ids, receipt.sender, receipt.chat) == (
        p.ReceiptType.READ,
        [message.id],
        b.jid,
        b.jid,
    )
    with pytest.raises(p.NotFound):
        await b.client.mark_read(chat=a.jid, message_ids=["3EB0NOPE"], sender=a.jid)
    with pytest.raises(p.InvalidRequest):
        await b.client.mark_read(chat=a.jid, message_ids=[], sender=a.jid)


async def test_read_receipts_off_tells_nobody(net):
    a, b = await pair(net)
    await call(sandbox.set_privacy, phone=b.phone, read_receipts="none")
    message = outgoing(b.jid, "secret read")
    await a.client.send(message=message)
    await b.client.mark_read(chat=a.jid, message_ids=[message.id], sender=a.jid)
    assert (await call(sandbox.message_state, message.id))["read_by"] == [b.jid]
    await a.client.poke()
    assert not a.events.of(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.READ)


async def test_peer_read_sends_receipts(net):
    linked = await net.link()
    # an echo peer reads on its own; send to the quiet one and let it read when told
    peer = await quiet_peer()
    await call(sandbox.set_privacy, phone=peer, read_receipts="all")
    m1, m2 = outgoing(peer, "one"), outgoing(peer, "two")
    await linked.client.send(message=m1)
    await linked.client.send(message=m2)
    # A phone acknowledges what arrived together in one receipt (one or two here, by timing); each message is
    # told delivered before read.
    await linked.events.wait(
        p.ReceiptEvent, lambda e: e.type == p.ReceiptType.READ and m2.id in e.message_ids
    )
    receipts = [(e.type, i) for e in linked.events.of(p.ReceiptEvent) for i in e.message_ids]
    for m in (m1, m2):
        assert receipts.index((p.ReceiptType.DELIVERED, m.id)) < receipts.index((p.ReceiptType.READ, m.id))
    assert await call(sandbox.peer_read, from_phone=peer, chat=linked.jid) == []  # already read


# ---------------------------------------------------------------------------------------------- presence


async def test_presence_and_chat_presence(net):
    a, b = await pair(net)
    await a.client.send_presence(presence=p.Presence.AVAILABLE)
    await a.client.send_chat_presence(chat=b.jid, state=p.ChatPresenceState.COMPOSING)
    typing = await b.events.wait(p.ChatPresenceEvent)
    assert (typing.chat, typing.sender, typing.state) == (a.jid, a.jid, p.ChatPresenceState.COMPOSING)
    with pytest.raises(p.InvalidRequest):
        await a.client.send_chat_presence(chat="nope", state=p.ChatPresenceState.PAUSED)


async def test_peer_presence_and_typing_reach_devices(net):
    linked = await net.link()
    peer = (await call(sandbox.peer_phones))[0]
    await call(sandbox.peer_presence, from_phone=peer, available=True)
    presence = await linked.events.wait(p.PresenceEvent)
    assert presence.jid == f"{peer}@s.whatsapp.net" and presence.available
    await call(sandbox.peer_typing, from_phone=peer, chat=linked.jid)
    typing = await linked.events.wait(p.ChatPresenceEvent)
    assert typing.sender == f"{peer}@s.whatsapp.net"


# ---------------------------------------------------------------------------------------------- users and profile


async def test_check_numbers_only_registered(net):
    linked = await net.link()
    peer = (await call(sandbox.peer_phones))[0]
    unregistered = await call(sandbox.unregistered_phone)
    rows = await linked.client.check_numbers(phones=[f"+{peer}", unregistered, "garbage"])
    assert [(r.is_in, r.jid) for r in rows] == [
        (True, f"{peer}@s.whatsapp.net"),
        (False, f"{unregistered}@s.whatsapp.net"),
        (False, ""),
    ]
    with pytest.raises(p.InvalidRequest):
        await linked.client.check_numbers(phones=[])


async def test_user_info_respects_privacy(net):
    linked = await net.link()
    summary = await call(sandbox.network_summary)
    open_peer = next(x for x in summary["peers"] if x["privacy"]["status"] == "all")
    hidden = next(x for x in summary["peers"] if x["privacy"]["status"] == "none")
    infos = await linked.client.user_info(
        jids=[open_peer["jid"], hidden["jid"], await call(sandbox.unregistered_phone)]
    )
    assert [i.jid for i in infos] == [open_peer["jid"], hidden["jid"]]  # the unregistered number is not known
    assert infos[0].status == open_peer["about"] and infos[0].picture_id
    assert infos[1].status == "" and infos[1].picture_id == ""
    with pytest.raises(p.InvalidRequest):
        await linked.client.user_info(jids=["bad jid@x"])


async def test_avatars(net):
    linked = await net.link()
    summary = await call(sandbox.network_summary)
    open_peer = next(x for x in summary["peers"] if x["privacy"]["profile"] == "all")
    hidden = next(x for x in summary["peers"] if x["privacy"]["profile"] == "none")
    avatar = await linked.client.avatar(jid=open_peer["jid"])
    assert avatar.url.startswith("data:image/png;base64,") and avatar.id and avatar.type == "image"
    preview = await linked.client.avatar(jid=open_peer["jid"], preview=True)
    assert preview.type == "preview" and len(preview.url) < len(avatar.url)
    assert await linked.client.avatar(jid=hidden["jid"]) is None
    with pytest.raises(p.NotFound):
        await linked.client.avatar(jid=await call(sandbox.unregistered_phone))
    group = summary["groups"][0]["jid"]
    # A group's picture is for its participants.
    await call(sandbox.add_group_member, group=group, phone=linked.phone)
    assert (await linked.client.avatar(jid=group)).url.startswith("data:image/png")


async def test_set_avatar_and_push_name(net):
    linked = await net.link()
    png = sandbox.identicon("mine", 64)
    picture_id = await linked.client.set_avatar(image=png)
    assert picture_id
    avatar = await linked.client.avatar(jid=linked.jid)
    assert avatar.id == picture_id
    assert await call(sandbox.avatar_bytes, linked.jid) == png
    with pytest.raises(p.InvalidRequest):
        await linked.client.set_avatar(image=b"not a picture")
    await linked.client.set_push_name(name="Support Desk")
    peer = (await call(sandbox.peer_phones))[0]
    await linked.client.send(message=outgoing(peer, "hi"))
    assert (await call(sandbox.sent_to, peer))[0]["from"] == linked.jid
    with pytest.raises(p.InvalidRequest):
        await linked.client.set_push_name(name="")
    with pytest.raises(p.InvalidRequest):
        await linked.client.set_push_name(name="x" * 26)


async def test_privacy_settings(net):
    linked = await net.link()
    privacy = await linked.client.privacy()
    assert privacy.last_seen == "all" and privacy.read_receipts == "all"
    await call(sandbox.set_privacy, phone=linked.phone, last_seen="contacts")
    assert (await linked.client.privacy()).last_seen == "contacts"
    with pytest.raises(p.InvalidRequest):
        await call(sandbox.set_privacy, phone=linked.phone, nonsense="all")


async def test_contacts_are_the_phones_address_book(net):
    linked = await net.link()
    contacts = await linked.client.contacts()
    peers = await call(sandbox.peer_phones)
    assert [c.jid for c in contacts] == [f"{x}@s.whatsapp.net" for x in peers]
    assert all(c.push_name and c.first_name for c in contacts)
    assert any(c.business_name for c in contacts)


async def test_business_profile(net):
    linked = await net.link()
    summary = await call(sandbox.network_summary)
    business = next(x for x in summary["peers"] if x["business"])
    plain = next(x for x in summary["peers"] if not x["business"])
    profile = await linked.client.business_profile(jid=business["jid"])
    assert profile.jid == business["jid"] and profile.email and profile.website and profile.categories
    empty = await linked.client.business_profile(jid=plain["jid"])  # a personal account: empty, as WhatsApp
    assert (empty.jid, empty.email, empty.website, empty.categories) == (plain["jid"], "", [], [])
    with pytest.raises(p.NotFound):
        await linked.client.business_profile(jid=await call(sandbox.unregistered_phone))


# ---------------------------------------------------------------------------------------------- newsletters


async def test_newsletters_list_and_unfollow(net):
    linked = await net.link()
    summary = await call(sandbox.network_summary)
    news, tips = summary["newsletters"]
    await call(sandbox.follow_newsletter, phone=linked.phone, jid=tips["jid"])
    followed = await linked.client.newsletters()
    assert [n.jid for n in followed] == [news["jid"], tips["jid"]]
    assert (
        followed[0].name == "Sandbox News"
        and followed[0].subscribers > 0
        and followed[0].role == "subscriber"
    )
    await linked.client.unfollow_newsletter(jid=tips["jid"])
    assert [n.jid for n in await linked.client.newsletters()] == [news["jid"]]
    with pytest.raises(p.NotFound):
        await linked.client.unfollow_newsletter(jid=tips["jid"])
    with pytest.raises(p.NotFound):
        await linked.client.unfollow_newsletter(jid="120363999999999999@newsletter")
    with pytest.raises(p.Forbidden):
        await linked.client.send(message=outgoing(news["jid"], "may I post?"))
