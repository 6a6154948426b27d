"""The neonize client on the shared map of sent IDs (a real database): exactly once across workers."""

import pytest
from neonize.exc import SendMessageError
from neonize.proto import Neonize_pb2 as np

from messaging.models import Device, SentMessageId
from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.backend import NeonizeBackend
from tests.messaging.neonize_harness import ME, PEER, incoming, jid, outgoing

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def device(org):
    return Device.objects.create(organization=org, name="Phone", wanted=True, jid=ME)


async def _worker(tmp_path, neo, emitted, device_id, machine="a"):
    """A client of `device_id` as a worker on `machine` would make it: its own disk, the shared database."""
    backend = NeonizeBackend(session_dir=tmp_path / machine, database_url="", make_neonize=lambda **kw: neo)
    client = backend.create_client(device_id=device_id, jid=ME, emit=emitted)
    client.neo = neo
    await client.on_event(neo, np.Connected(status=True))
    return client


async def test_another_worker_neither_resends_nor_loses_receipts_of_what_one_sent(
    tmp_path, neo, emitted, device, runtime_harness
):
    first = await _worker(tmp_path, neo, emitted, device.pk)
    await first.send(message=outgoing(p.MessageKind.TEXT, text="once", id="3EB0OURS"))
    # The number moves to a worker on another machine (the first died before marking the message sent): no second send.
    second = await _worker(tmp_path, neo, emitted, device.pk, machine="b")
    assert (
        await second.send(message=outgoing(p.MessageKind.TEXT, text="once", id="3EB0OURS"))
    ).id == "3EB0OURS"
    assert neo.send_message.await_count == 1
    # WhatsApp's receipt names its own ID; the other worker reports it under ours.
    source = np.MessageSource(Chat=jid(PEER), Sender=jid(PEER))
    (receipt,) = await incoming(
        second, np.Receipt(MessageSource=source, MessageIDs=["3EB0SERVERID"], Type=np.Receipt.READ)
    )
    assert receipt.message_ids == ["3EB0OURS"]


async def test_a_send_that_timed_out_is_unknown_and_one_refused_may_go_again(
    tmp_path, neo, emitted, device, runtime_harness
):
    client = await _worker(tmp_path, neo, emitted, device.pk)
    neo.send_message.side_effect = SendMessageError("info query timed out")
    with pytest.raises(p.UpstreamTimeout):
        await client.send(message=outgoing(p.MessageKind.TEXT, text="maybe", id="3EB0MAYBE"))
    neo.send_message.side_effect = None
    with pytest.raises(p.SendOutcomeUnknown):  # it may have reached WhatsApp: not sent again
        await client.send(message=outgoing(p.MessageKind.TEXT, text="maybe", id="3EB0MAYBE"))
    assert neo.send_message.await_count == 1

    neo.send_message.side_effect = SendMessageError("server returned error 406: not-acceptable")
    with pytest.raises(p.InvalidRequest):
        await client.send(message=outgoing(p.MessageKind.TEXT, text="refused", id="3EB0REFUSED"))
    assert not await SentMessageId.objects.filter(message_id="3EB0REFUSED").aexists()
    neo.send_message.side_effect = None
    assert (await client.send(message=outgoing(p.MessageKind.TEXT, text="refused", id="3EB0REFUSED"))).id
    assert (await SentMessageId.objects.aget(message_id="3EB0REFUSED")).whatsapp_id == "3EB0SERVERID"
