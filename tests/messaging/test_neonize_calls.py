"""Calls and the proxy on the neonize backend, over neonize's real client class (autospec) and its real protobuf
call events: a ringing call becomes a CallOfferEvent, is rejected on the JID the offer named, and the number's
proxy reaches neonize's connect()."""

import asyncio

from neonize._binder import ProxySettings
from neonize.proto import Neonize_pb2 as np

from messaging.whatsapp import protocol as p
from tests.messaging.neonize_harness import PEER, jid
from tests.messaging.neonize_harness import until as _until

LID = "123456789012345@lid"


def _offer(*, creator=LID, alt=PEER, call_id="CALL9F", video=False, group_jid="") -> np.CallOffer:
    """A CallOffer as whatsmeow delivers it: the caller in basicCallMeta, the <offer> node in data."""
    attrs = [np.NodeAttrs(name="call-id", text=call_id)]
    if group_jid:
        attrs.append(np.NodeAttrs(name="group-jid", jid=jid(group_jid)))
    media = [np.Node(Tag="audio", Attrs=[np.NodeAttrs(name="enc", text="opus")])]
    if video:
        media.append(np.Node(Tag="video", Attrs=[np.NodeAttrs(name="enc", text="vp8")]))
    meta = np.BasicCallMeta(timestamp=1_700_000_500, callCreator=jid(creator), callID=call_id)
    if alt:
        meta.callCreatorAlt.CopyFrom(jid(alt))
    getattr(meta, "from").CopyFrom(jid(creator, device=3))
    return np.CallOffer(
        basicCallMeta=meta,
        callRemoteMeta=np.CallRemoteMeta(remotePlatform="android", remoteVersion="2.24"),
        data=np.Node(Tag="call", Nodes=[np.Node(Tag="offer", Attrs=attrs, Nodes=media)]),
    )


async def test_a_call_offer_names_the_caller_by_phone_with_the_lid_beside_it(neonize_client, neo, emitted):
    await neonize_client.on_event(neo, _offer(video=True))
    [event] = emitted.of(p.CallOfferEvent)
    assert event == p.CallOfferEvent(
        device_id=7,
        call_id="CALL9F",
        caller=PEER,
        caller_lid=LID,
        is_video=True,
        is_group=False,
        group="",
        timestamp=1_700_000_500,
    )


async def test_a_voice_call_from_a_phone_jid_has_no_lid(neonize_client, neo, emitted):
    await neonize_client.on_event(neo, _offer(creator=PEER, alt=None))
    [event] = emitted.of(p.CallOfferEvent)
    assert (event.caller, event.caller_lid, event.is_video, event.is_group) == (PEER, "", False, False)


async def test_a_group_call_notice_says_group_and_video(neonize_client, neo, emitted):
    meta = np.BasicCallMeta(timestamp=1_700_000_600, callCreator=jid(PEER), callID="GCALL1")
    notice = np.CallOfferNotice(
        basicCallMeta=meta,
        media="video",
        type="group",
        data=np.Node(Tag="call", Attrs=[np.NodeAttrs(name="group-jid", jid=jid("120363000000000001@g.us"))]),
    )
    await neonize_client.on_event(neo, notice)
    [event] = emitted.of(p.CallOfferEvent)
    assert (event.call_id, event.caller, event.is_video, event.is_group) == ("GCALL1", PEER, True, True)
    assert event.group == "120363000000000001@g.us"


async def test_a_rejection_goes_to_whatsmeow_on_the_jid_the_offer_named(neonize_client, neo, emitted):
    await neonize_client.on_event(neo, _offer())
    # The webhook names the caller by phone; whatsmeow must answer the offer's own (@lid) JID.
    await neonize_client.reject_call(caller=PEER, call_id="CALL9F")
    neo.reject_call.assert_awaited_once_with(jid(LID), "CALL9F")
    neo.reject_call.reset_mock()
    await neonize_client.reject_call(
        caller=PEER, call_id="UNSEEN"
    )  # an offer this client did not see: as given
    neo.reject_call.assert_awaited_once_with(jid(PEER), "UNSEEN")


async def test_a_refused_rejection_is_our_error(neonize_client, neo):
    from neonize.exc import RejectCallError

    neo.reject_call.side_effect = RejectCallError("info query returned status 404: item-not-found")
    try:
        await neonize_client.reject_call(caller=PEER, call_id="GONE")
    except p.NotFound:
        pass
    else:
        raise AssertionError("a refused rejection must raise NotFound")


async def test_call_offers_are_subscribed(backend, neo, emitted):
    neo.connect.return_value = asyncio.get_running_loop().create_future()
    c = backend.create_client(device_id=7, jid=PEER, emit=emitted)
    await c.start()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    subscribed = {call.args[0] for call in neo.event.call_args_list}
    assert {np.CallOffer, np.CallOfferNotice} <= subscribed
    neo.stop.side_effect = lambda: neo.connect.return_value.set_result(None)
    await c.stop()


async def test_the_numbers_proxy_reaches_neonizes_connect_and_a_change_reconnects(backend, neo, emitted):
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    neo.connect.side_effect = [first, second]
    neo.stop.side_effect = lambda: first.done() or first.set_result(None)
    c = backend.create_client(device_id=7, jid=PEER, emit=emitted)
    c.use_proxy("socks5://shop:s3cret@proxy.example.com:1080")
    await c.start()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    neo.connect.assert_awaited_with(
        ProxySettings(proxy_address="socks5://shop:s3cret@proxy.example.com:1080")
    )

    c.use_proxy("")  # the setting cleared: the next connection is direct
    await c.reconnect()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 2), 5)
    neo.connect.assert_awaited_with(None)
    neo.stop.side_effect = lambda: second.done() or second.set_result(None)
    await c.stop()


async def test_a_lid_caller_without_a_phone_in_the_offer_is_looked_up_in_whatsmeows_map(
    neonize_client, neo, emitted
):
    neo.get_pn_from_lid.return_value = jid(PEER)
    await neonize_client.on_event(neo, _offer(alt=None))
    neo.get_pn_from_lid.assert_awaited_once_with(jid(LID))
    [event] = emitted.of(p.CallOfferEvent)
    assert (event.caller, event.caller_lid) == (PEER, LID)
