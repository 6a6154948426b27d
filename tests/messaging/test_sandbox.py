"""The sandbox network, linking and messaging: QR codes, pairing codes, sessions, sends, receipts, peers."""

import pytest

from messaging.models import SandboxSession
from messaging.whatsapp import protocol as p
from messaging.whatsapp import sandbox
from tests.messaging.sandbox_harness import call, outgoing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_sandbox")]


# ---------------------------------------------------------------------------------------------- the network


async def test_same_seed_same_network():
    first = await call(sandbox.seed_network, 7)
    again = await call(sandbox.seed_network, 7)
    assert first == again
    assert len(first["peers"]) == 6
    assert [g["name"] for g in first["groups"]] == ["Weekend Hikers", "Book Club", "Sandbox Announcements"]
    assert all(g["invite_link"].startswith("https://chat.whatsapp.com/") for g in first["groups"])
    phones = [peer["phone"] for peer in first["peers"]]
    assert await call(sandbox.peer_phones) == phones
    assert await call(sandbox.peer_phones, "echo") == [
        pp["phone"] for pp in first["peers"] if pp["behavior"] == "echo"
    ]


def test_seed_is_deterministic_across_databases(django_db_blocker):
    from messaging.models import SandboxAccount, SandboxGroup, SandboxNetwork, SandboxNewsletter

    def snapshot(seed):
        for model in (SandboxAccount, SandboxGroup, SandboxNewsletter, SandboxNetwork):
            model.objects.all().delete()
        summary = sandbox.seed_network(seed)
        return summary

    assert snapshot(3) == snapshot(3)
    assert snapshot(3)["peers"] != snapshot(4)["peers"]


# ---------------------------------------------------------------------------------------------- linking


async def test_qr_then_scan_pairs_and_connects(net):
    device = await net.device()
    client, events = await net.client(device)
    await client.start()
    qr = await events.wait(p.QRCodeEvent)
    assert qr.code.startswith("2@sandbox:") and qr.expires_in == 20
    assert not client.is_connected()

    result = await call(sandbox.phone_scan, qr_code=qr.code, phone="+90 555 111 2233")
    assert result["jid"] == "905551112233@s.whatsapp.net"
    await client.poke()
    paired = await events.wait(p.PairedEvent)
    connected = await events.wait(p.ConnectedEvent)
    assert paired.jid == connected.jid == "905551112233@s.whatsapp.net"
    assert paired.device_id == device.pk
    assert client.is_connected()
    # the code is spent
    with pytest.raises(p.InvalidRequest):
        await call(sandbox.phone_scan, qr_code=qr.code, phone="905551112299")


async def test_scan_wakes_a_client_of_this_process_by_itself(net):
    device = await net.device()
    client, events = await net.client(device)
    await client.start()
    qr = await events.wait(p.QRCodeEvent)
    await call(sandbox.phone_scan, qr_code=qr.code, phone="905551112233")
    await events.wait(p.ConnectedEvent)  # no explicit poke: the scan poked the local client


async def test_qr_rotates_and_old_codes_expire(net, settings):
    settings.WA_SANDBOX_QR_SECONDS = 0.05
    device = await net.device()
    client, events = await net.client(device)
    await client.start()
    first = await events.wait(p.QRCodeEvent)
    second = await events.wait(p.QRCodeEvent, count=2)
    assert first.code != second.code
    await call(sandbox.advance_clock, 1)
    with pytest.raises(p.InvalidRequest, match="expired"):
        await call(sandbox.phone_scan, qr_code=first.code, phone="905551112233")


async def test_unknown_qr_is_refused():
    with pytest.raises(p.InvalidRequest):
        await call(sandbox.phone_scan, qr_code="2@sandbox:nope", phone="905551112233")


async def test_stored_session_connects_at_start_without_qr(net):
    linked = await net.link(phone="905551112233")
    await linked.client.stop()
    client, events = await net.client(linked.device, jid=linked.jid)
    await client.start()
    connected = await events.wait(p.ConnectedEvent)
    assert connected.jid == linked.jid
    assert not events.of(p.QRCodeEvent) and not events.of(p.PairedEvent)


async def test_pairing_code_works_for_the_right_number_only(net):
    device = await net.device()
    client, events = await net.client(device)
    await client.start()
    code = await client.pair_phone(phone="+90 555 444 5566")
    assert len(code.code) == 9 and code.code[4] == "-"
    assert (await events.wait(p.PairCodeEvent)).code == code.code
    with pytest.raises(p.Forbidden):
        await call(sandbox.phone_enter_code, phone="905554445599", code=code.code)
    with pytest.raises(p.NotFound):
        await call(sandbox.phone_enter_code, phone="905554445566", code="AAAA-AAAA")
    with pytest.raises(p.InvalidRequest):
        await call(sandbox.phone_enter_code, phone="905554445566", code="short")
    await call(sandbox.phone_enter_code, phone="905554445566", code=code.code.lower().replace("-", ""))
    connected = await events.wait(p.ConnectedEvent)
    assert connected.jid == "905554445566@s.whatsapp.net"


async def test_pairing_code_refusals(net):
    linked = await net.link()
    with pytest.raises(p.InvalidRequest):
        await linked.client.pair_phone(phone="905554445566")  # already linked
    device = await net.device()
    client, events = await net.client(device)
    await client.start()
    with pytest.raises(p.InvalidRequest):
        await client.pair_phone(phone="12")
    code = await client.pair_phone(phone="905554445566")
    await call(sandbox.advance_clock, sandbox.PAIR_CODE_SECONDS + 1)
    with pytest.raises(p.InvalidRequest, match="expired"):
        await call(sandbox.phone_enter_code, phone="905554445566", code=code.code)


async def test_logout_removes_the_session(net):
    linked = await net.link()
    await linked.client.logout()
    await linked.events.wait(p.LoggedOutEvent)
    assert not linked.client.is_connected()
    assert not await call(SandboxSession.objects.filter(device=linked.device).exists)
    with pytest.raises(p.NotConnected):
        await linked.client.send(message=outgoing((await call(sandbox.peer_phones))[0]))
    # starting again means linking again
    client, events = await net.client(linked.device, jid=linked.jid)
    await client.start()
    await events.wait(p.QRCodeEvent)


async def test_unlink_from_the_phone_logs_the_device_out(net):
    linked = await net.link()
    await call(sandbox.phone_unlink, device_id=linked.device.pk)
    await linked.events.wait(p.LoggedOutEvent)
    assert not linked.client.is_connected()
    with pytest.raises(p.NotFound):
        await call(sandbox.phone_unlink, device_id=linked.device.pk)


async def test_reconnect(net):
    linked = await net.link()
    await linked.client.reconnect()
    await linked.events.wait(p.DisconnectedEvent)
    await linked.events.wait(p.ConnectedEvent, count=2)
    assert linked.client.is_connected()


# Arguments good enough to reach the connection check of every operation.
_ARGS = {
    "chat": "905551112233@s.whatsapp.net",
    "message_id": "3EB0AAAA",
    "sender": "905551112233@s.whatsapp.net",
    "emoji": "👍",
    "text": "x",
    "message_ids": ["3EB0AAAA"],
    "from_me": True,
    "starred": True,
    "ref": {"sandbox": "x"},
    "jids": ["905551112233"],
    "jid": "120363000000000001@g.us",
    "preview": False,
    "image": b"\x89PNG\r\n\x1a\n",
    "name": "x",
    "color": 0,
    "phones": ["905551112233"],
    "participants": ["905551112233"],
    "action": p.ParticipantAction.ADD,
    "code": "AbCdEfGhIjK",
    "reset": False,
    "approve": True,
    "topic": "x",
    "locked": True,
    "announce": True,
    "presence": p.Presence.AVAILABLE,
    "state": p.ChatPresenceState.COMPOSING,
    "message": None,
    "pinned": True,
    "archived": True,
    "seconds": 86400,
    "label_id": "1",
    "label_name": "x",
    "labeled": True,
    "caller": "905551112233@s.whatsapp.net",
    "call_id": "CALL1",
}


@pytest.mark.parametrize("op", sorted(p.OPERATIONS - {"pair_phone", "logout", "reconnect"}))
async def test_every_operation_needs_a_connection(net, op):
    import inspect

    device = await net.device()
    client, events = await net.client(device)
    await client.start()
    method = getattr(client, op)
    params = [
        n for n, prm in inspect.signature(method).parameters.items() if prm.default is inspect.Parameter.empty
    ]
    kwargs = {name: _ARGS[name] for name in params}
    if "message" in kwargs:
        kwargs["message"] = outgoing("905551112233")
    with pytest.raises(p.NotConnected):
        await method(**kwargs)


# ---------------------------------------------------------------------------------------------- sending


async def test_send_text_to_a_peer_then_delivered_then_read(net):
    linked = await net.link()
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    message = outgoing(quiet, "hi there")
    result = await linked.client.send(message=message)
    assert result.id == message.id and result.timestamp > 0
    delivered = await linked.events.wait(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.DELIVERED)
    read = await linked.events.wait(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.READ)
    assert delivered.message_ids == read.message_ids == [message.id]
    assert delivered.chat == f"{quiet}@s.whatsapp.net"
    receipts = linked.events.of(p.ReceiptEvent)
    assert [r.type for r in receipts] == [p.ReceiptType.DELIVERED, p.ReceiptType.READ]
    got = await call(sandbox.sent_to, quiet)
    assert [(m["id"], m["text"], m["from"]) for m in got] == [(message.id, "hi there", linked.jid)]


async def test_the_same_message_id_is_delivered_once(net):
    linked = await net.link()
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    message = outgoing(quiet, "once")
    first = await linked.client.send(message=message)
    second = await linked.client.send(message=message)
    assert first == second
    assert len(await call(sandbox.sent_to, quiet)) == 1
    await linked.events.wait(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.READ)
    assert len(linked.events.of(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.DELIVERED)) == 1


async def test_several_sent_at_once_in_order_a_refusal_stopping_none(net):
    linked = await net.link()
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    unregistered = await call(sandbox.unregistered_phone)
    first, refused, last = outgoing(quiet, "one"), outgoing(unregistered, "nobody"), outgoing(quiet, "three")
    results = await linked.client.send_many(messages=[first, refused, last, first])
    assert [type(r) for r in results] == [p.SendResult, p.NotFound, p.SendResult, p.SendResult]
    assert results[0].id == results[3].id == first.id and results[2].id == last.id  # the resend: once
    got = await call(sandbox.sent_to, quiet)
    assert [(m["id"], m["text"]) for m in got] == [(first.id, "one"), (last.id, "three")]
    read = await linked.events.wait(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.READ)
    assert read.message_ids == [first.id, last.id]  # one receipt for what arrived together


async def test_several_sent_at_once_need_a_connection(net):
    linked = await net.link()
    await linked.client.stop()
    with pytest.raises(p.NotConnected):
        await linked.client.send_many(messages=[outgoing("905550000001")])


async def test_peer_with_read_receipts_off_only_delivers(net):
    linked = await net.link()
    summary = await call(sandbox.network_summary)
    private = next(x for x in summary["peers"] if x["privacy"]["read_receipts"] == "none")
    await linked.client.send(message=outgoing(private["phone"], "are you there"))
    await linked.events.wait(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.DELIVERED)
    # the echo answer comes after where a read receipt would have been: waiting for it proves there was none
    await linked.events.wait(p.MessageEvent)
    assert not linked.events.of(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.READ)


async def test_echo_peer_types_and_answers(net):
    linked = await net.link()
    echo = (await call(sandbox.peer_phones, "echo"))[0]
    message = outgoing(echo, "ping")
    await linked.client.send(message=message)
    answer = (await linked.events.wait(p.MessageEvent)).message
    assert answer.text == "Echo: ping" and answer.sender == f"{echo}@s.whatsapp.net"
    assert answer.chat == f"{echo}@s.whatsapp.net" and not answer.from_me
    assert answer.reply_to_id == message.id and answer.sender_name
    assert linked.events.of(p.ChatPresenceEvent, lambda e: e.state == p.ChatPresenceState.COMPOSING)


async def test_react_peer_reacts(net):
    linked = await net.link()
    reacts = (await call(sandbox.peer_phones, "react"))[0]
    message = outgoing(reacts, "like this?")
    await linked.client.send(message=message)
    reaction = (await linked.events.wait(p.MessageEvent)).message
    assert reaction.kind == p.MessageKind.REACTION and reaction.target_id == message.id and reaction.reaction


async def test_media_peer_sends_a_picture_that_downloads(net):
    linked = await net.link()
    media_peer = (await call(sandbox.peer_phones, "media"))[0]
    await linked.client.send(message=outgoing(media_peer, "send me something"))
    picture = (await linked.events.wait(p.MessageEvent)).message
    assert picture.kind == p.MessageKind.IMAGE and picture.media.mime_type == "image/png"
    data = await linked.client.download_media(ref=picture.media.ref)
    assert data.startswith(b"\x89PNG") and len(data) == picture.media.size


async def test_send_refusals(net):
    linked = await net.link()
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    unregistered = await call(sandbox.unregistered_phone)
    with pytest.raises(p.NotFound):
        await linked.client.send(message=outgoing(unregistered))
    with pytest.raises(p.InvalidRequest):
        await linked.client.send(message=outgoing(quiet, "   "))
    with pytest.raises(p.InvalidRequest):
        await linked.client.send(message=outgoing(quiet, "", kind=p.MessageKind.IMAGE))
    with pytest.raises(p.InvalidRequest):
        await linked.client.send(
            message=outgoing(quiet, "", kind=p.MessageKind.POLL, poll_question="?", poll_options=["one"])
        )
    with pytest.raises(p.InvalidRequest):
        await linked.client.send(
            message=outgoing(quiet, "", kind=p.MessageKind.LOCATION, latitude=91.0, longitude=0.0)
        )
    with pytest.raises(p.InvalidRequest):
        await linked.client.send(message=outgoing(quiet, "", kind=p.MessageKind.REACTION))
    with pytest.raises(p.InvalidRequest):
        await linked.client.send(message=outgoing("not a number"))
    with pytest.raises(p.NotFound):
        await linked.client.send(message=outgoing("120363000000000000@g.us"))
    assert await call(sandbox.sent_to, quiet) == []


@pytest.mark.parametrize(
    ("kind", "mime"),
    [
        (p.MessageKind.IMAGE, "image/png"),
        (p.MessageKind.AUDIO, "audio/ogg; codecs=opus"),
        (p.MessageKind.VIDEO, "video/mp4"),
        (p.MessageKind.DOCUMENT, "application/pdf"),
        (p.MessageKind.STICKER, "image/webp"),
    ],
)
async def test_send_media_is_stored_and_downloadable(net, kind, mime):
    linked = await net.link()
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    data, _, filename = sandbox.sample_media(str(kind), "test")
    message = outgoing(quiet, "", kind=kind, media=data, mime_type=mime, filename=filename, caption="look")
    await linked.client.send(message=message)
    got = (await call(sandbox.sent_to, quiet))[0]
    assert (
        got["kind"] == str(kind) and got["media"]["mime_type"] == mime and got["media"]["size"] == len(data)
    )
    assert await linked.client.download_media(ref=got["media"]["ref"]) == data
    if kind == p.MessageKind.AUDIO:
        await linked.events.wait(p.ReceiptEvent, lambda e: e.type == p.ReceiptType.PLAYED)


async def test_download_refusals(net):
    linked = await net.link()
    with pytest.raises(p.NotFound):
        await linked.client.download_media(ref={"sandbox": "gone"})
    with pytest.raises(p.InvalidRequest):
        await linked.client.download_media(ref={"neonize": "x"})


@pytest.mark.parametrize(
    "fields",
    [
        dict(kind=p.MessageKind.LOCATION, text="", latitude=41.0, longitude=29.0),
        dict(kind=p.MessageKind.CONTACT, text="", contact_name="Ada", contact_phone="+90 555 000 1122"),
        dict(kind=p.MessageKind.POLL, text="", poll_question="Lunch?", poll_options=["Yes", "No"]),
        dict(kind=p.MessageKind.LINK, text="https://example.com/page"),
    ],
)
async def test_other_kinds_reach_another_device(net, fields):
    sender = await net.link(phone="905550000001", name="A")
    receiver = await net.link(phone="905550000002", name="B")
    kind = fields.pop("kind")
    text = fields.pop("text")
    message = outgoing(receiver.jid, text, kind=kind, **fields)
    await sender.client.send(message=message)
    got = (await receiver.events.wait(p.MessageEvent)).message
    assert got.id == message.id and got.kind == kind and got.chat == sender.jid and not got.from_me
    if kind == p.MessageKind.CONTACT:
        assert "waid=905550001122" in got.contact_vcard
    if kind == p.MessageKind.POLL:
        assert got.poll_options == ["Yes", "No"]
    if kind == p.MessageKind.LOCATION:
        assert (got.latitude, got.longitude) == (41.0, 29.0)


async def test_peer_send_reaches_the_device(net):
    linked = await net.link()
    peer = (await call(sandbox.peer_phones))[0]
    mid = await call(sandbox.peer_send, from_phone=peer, to_jid=linked.jid, text="hello device")
    got = (await linked.events.wait(p.MessageEvent)).message
    assert (got.id, got.text, got.chat, got.sender) == (
        mid,
        "hello device",
        f"{peer}@s.whatsapp.net",
        f"{peer}@s.whatsapp.net",
    )
    assert got.sender_name


@pytest.mark.parametrize("kind", ["image", "audio", "video", "document", "sticker"])
async def test_peer_sends_media(net, kind):
    linked = await net.link()
    peer = (await call(sandbox.peer_phones))[0]
    await call(sandbox.peer_send, from_phone=peer, to_jid=linked.jid, kind=kind, caption="for you")
    got = (await linked.events.wait(p.MessageEvent)).message
    assert got.kind == kind and got.media.size > 0
    assert len(await linked.client.download_media(ref=got.media.ref)) == got.media.size


async def test_messages_for_an_offline_device_wait_for_it(net):
    linked = await net.link()
    await linked.client.stop()
    peer = (await call(sandbox.peer_phones))[0]
    mid = await call(sandbox.peer_send, from_phone=peer, to_jid=linked.jid, text="while you were away")
    client, events = await net.client(linked.device, jid=linked.jid)
    await client.start()
    assert (await events.wait(p.MessageEvent)).message.id == mid
    await client.poke()
    assert len(events.of(p.MessageEvent)) == 1  # picked up once


async def test_peer_send_refusals(net):
    linked = await net.link()
    with pytest.raises(p.NotFound):
        await call(sandbox.peer_send, from_phone="15550009999", to_jid=linked.jid, text="who am I")
    peer = (await call(sandbox.peer_phones))[0]
    with pytest.raises(p.NotFound):
        await call(
            sandbox.peer_send, from_phone=peer, to_jid=await call(sandbox.unregistered_phone), text="x"
        )
    with pytest.raises(p.InvalidRequest):
        await call(sandbox.peer_send, from_phone=peer, to_jid=linked.jid, kind="hologram")
    with pytest.raises(p.InvalidRequest):
        await call(sandbox.peer_send, from_phone=peer, to_jid=linked.jid, text="")


async def test_peer_sends_a_poll_a_location_and_a_reply(net):
    linked = await net.link()
    peer = (await call(sandbox.peer_phones))[0]
    await call(
        sandbox.peer_send,
        from_phone=peer,
        to_jid=linked.jid,
        kind="poll",
        text="Lunch?",
        poll_options=["Yes", "No"],
    )
    first = await call(
        sandbox.peer_send, from_phone=peer, to_jid=linked.jid, kind="location", latitude=41.0, longitude=29.0
    )
    await call(
        sandbox.peer_send,
        from_phone=peer,
        to_jid=linked.jid,
        text="see above",
        reply_to_id=first,
        quoted_body="pin",
    )
    poll, location, reply = [
        e.message for e in [await linked.events.wait(p.MessageEvent, count=n) for n in (1, 2, 3)]
    ]
    assert (poll.kind, poll.poll_question, poll.poll_options) == (p.MessageKind.POLL, "Lunch?", ["Yes", "No"])
    assert (location.kind, location.latitude) == (p.MessageKind.LOCATION, 41.0)
    assert (reply.reply_to_id, reply.quoted_body) == (first, "pin")


async def test_a_second_device_of_the_same_phone_sees_what_the_first_sends(net):
    first = await net.link(phone="905550000001", name="Laptop")
    second = await net.link(phone="905550000001", name="Office")
    quiet = (await call(sandbox.peer_phones, "quiet"))[0]
    message = outgoing(quiet, "from the laptop")
    await first.client.send(message=message)
    copy = (await second.events.wait(p.MessageEvent)).message
    assert (copy.id, copy.from_me, copy.chat, copy.sender) == (
        message.id,
        True,
        f"{quiet}@s.whatsapp.net",
        first.jid,
    )
    assert not first.events.of(p.MessageEvent)  # the sender itself is not told of its own message


async def test_fresh_phones_are_new_numbers(net):
    one = await call(sandbox.fresh_phone)
    linked = await net.link(phone=one)
    assert linked.phone == one
    assert await call(sandbox.fresh_phone) != one
    assert one not in await call(sandbox.peer_phones)
