"""Labels on the neonize backend, over neonize's real classes (autospec) and real protobufs.

neonize 0.5.2 forwards no label event from whatsmeow (see messaging.whatsapp.neonize.events): these tests pin
that down (so a neonize upgrade that adds them fails here and gets them wired), translate whatsmeow's real
label actions (waSyncAction protobufs, which 0.5.2 has), and check that editing labels answers 501's
NotSupported like the other app-state changes."""

import asyncio

import pytest
from neonize.aioze import events as neonize_events
from neonize.proto.waSyncAction import WAWebProtobufSyncAction_pb2 as sync

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.events import (
    LABEL_ASSOCIATION_EVENT,
    LABEL_EDIT_EVENT,
    label_association,
    label_edit,
    label_events,
)
from tests.messaging.neonize_harness import PEER
from tests.messaging.neonize_harness import until as _until


def test_neonize_0_5_2_forwards_no_label_event():
    names = {cls.__name__ for cls in neonize_events.EVENT_TO_INT}
    assert not any("Label" in name for name in names)
    assert not hasattr(neonize_events, LABEL_EDIT_EVENT) and not hasattr(
        neonize_events, LABEL_ASSOCIATION_EVENT
    )
    assert label_events() == ()


async def test_the_connection_subscribes_to_every_event_neonize_has_for_us(backend, neo, emitted):
    neo.connect.return_value = asyncio.get_running_loop().create_future()
    c = backend.create_client(device_id=7, jid=None, emit=emitted)
    await c.start()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    subscribed = {call.args[0] for call in neo.event.call_args_list}
    assert set(label_events()) <= subscribed  # (none to subscribe to in 0.5.2)
    assert all(cls in neonize_events.EVENT_TO_INT for cls in subscribed)  # each one neonize can deliver
    await c.on_qr(neo, b"2@code")
    neo.stop.side_effect = lambda: neo.connect.return_value.set_result(None)
    await c.stop()


def test_whatsmeows_label_edit_action_becomes_our_label_edit():
    action = sync.LabelEditAction(name="Yeni müşteri", color=4, predefinedID=0, deleted=False, orderIndex=2)
    event = label_edit(label_id="5", action=action, timestamp=1_700_000_000)
    assert event == p.LabelEditEvent(
        label_id="5", name="Yeni müşteri", color=4, deleted=False, timestamp=1_700_000_000
    )
    gone = label_edit(label_id="5", action=sync.LabelEditAction(deleted=True))
    assert gone.deleted and gone.name == ""
    # A colour outside WhatsApp's palette (a newer app's) is shown as the first one, not refused.
    assert label_edit(label_id="6", action=sync.LabelEditAction(name="x", color=99)).color == 0


def test_whatsmeows_label_association_action_becomes_our_label_association():
    event = label_association(chat=PEER, label_id="5", action=sync.LabelAssociationAction(labeled=True))
    assert event == p.LabelAssociationEvent(chat=PEER, label_id="5", labeled=True)
    off = label_association(chat=PEER, label_id="5", action=sync.LabelAssociationAction(labeled=False))
    assert off.labeled is False


@pytest.mark.parametrize("deleted", [False, True])
async def test_editing_labels_is_not_supported_by_neonize_0_5_2(neonize_client, neo, deleted):
    with pytest.raises(p.NotSupported, match="app-state"):
        await neonize_client.edit_label(label_id="1", name="VIP", color=3, deleted=deleted)
    neo.send_app_state.assert_not_called()
