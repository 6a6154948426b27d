"""Hidden user IDs (…@lid) on the neonize backend: neonize's real client class (autospec) and real protobuf
events; what they carry (a number beside the LID, or the LID alone and whatsmeow's store) reaches our map."""

import pytest
from asgiref.sync import sync_to_async
from neonize.proto import Neonize_pb2 as np
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from messaging import events
from messaging.models import Chat, LidMapping
from messaging.whatsapp import protocol as p
from tests.conftest import make_organization
from tests.messaging.neonize_harness import ME, PEER, incoming, jid

LID = "123456789012345@lid"


@pytest.fixture
def client(neonize_client):
    return neonize_client


def _by_lid(text: str, *, alt: str | None = None, msg_id: str = "L1", from_me: bool = False) -> np.Message:
    """A 1:1 message in a chat WhatsApp addresses by LID (AddressingMode LID), the number in *Alt if told."""
    source = np.MessageSource(
        Chat=jid(LID),
        Sender=jid(ME if from_me else LID),
        IsFromMe=from_me,
        IsGroup=False,
        AddressingMode=np.LID,
        **({("RecipientAlt" if from_me else "SenderAlt"): jid(alt)} if alt else {}),
    )
    info = np.MessageInfo(MessageSource=source, ID=msg_id, Pushname="Ayşe", Timestamp=1_700_000_100)
    return np.Message(Info=info, Message=e2e.Message(conversation=text))


async def test_a_message_by_lid_with_its_number_carries_both(client, neo):
    (event,) = await incoming(client, _by_lid("merhaba", alt=PEER))
    m = event.message
    assert (m.chat, m.chat_lid, m.sender, m.sender_lid) == (PEER, LID, PEER, LID)
    neo.get_pn_from_lid.assert_not_called()  # told already: no trip to the store


async def test_our_own_message_in_a_lid_chat_names_the_recipients_number(client, neo):
    (event,) = await incoming(client, _by_lid("selam", alt=PEER, from_me=True))
    assert (event.message.chat, event.message.chat_lid, event.message.sender) == (PEER, LID, ME)


async def test_a_message_by_phone_number_keeps_the_lid_whatsapp_gives_beside_it(client):
    source = np.MessageSource(
        Chat=jid(PEER), Sender=jid(PEER), SenderAlt=jid(LID), IsGroup=False, AddressingMode=np.PN
    )
    info = np.MessageInfo(MessageSource=source, ID="P1", Timestamp=1_700_000_100)
    (event,) = await incoming(client, np.Message(Info=info, Message=e2e.Message(conversation="x")))
    assert (event.message.chat, event.message.chat_lid, event.message.sender_lid) == (PEER, LID, LID)


async def test_a_message_by_lid_alone_asks_whatsmeows_store_for_the_number(client, neo):
    neo.get_pn_from_lid.return_value = jid(PEER)
    (event,) = await incoming(client, _by_lid("kimim ben"))
    m = event.message
    assert (m.chat, m.chat_lid, m.sender, m.sender_lid) == (PEER, LID, PEER, LID)
    assert neo.get_pn_from_lid.await_args.args[0].User == LID.split("@")[0]


async def test_a_lid_whatsmeow_does_not_know_stays_a_lid(client, neo):
    neo.get_pn_from_lid.return_value = np.JID()  # whatsmeow's answer for an unknown LID: an empty JID
    (event,) = await incoming(client, _by_lid("kimim ben"))
    assert (event.message.chat, event.message.sender, event.message.sender_lid) == (LID, LID, LID)


async def test_a_receipt_that_carries_both_tells_the_pair_once(client):
    source = np.MessageSource(Chat=jid(LID), Sender=jid(LID), SenderAlt=jid(PEER), IsGroup=False)
    receipt = np.Receipt(
        MessageSource=source, MessageIDs=["A"], Timestamp=1_700_000_300, Type=np.Receipt.READ
    )
    first = await incoming(client, receipt)
    assert first[0] == p.LidMappingEvent(lid=LID, phone=PEER)
    assert isinstance(first[1], p.ReceiptEvent) and (first[1].chat, first[1].sender) == (PEER, PEER)
    again = await incoming(client, receipt)
    assert [type(e) for e in again] == [p.ReceiptEvent]


@pytest.mark.django_db(transaction=True)
async def test_stored_a_lid_chat_is_merged_into_the_numbers_when_a_later_message_carries_both(client, neo):
    from messaging.models import Device

    device = await sync_to_async(Device.objects.create)(
        organization=await sync_to_async(make_organization)(), name="Shop", jid=ME, wanted=True
    )
    neo.get_pn_from_lid.return_value = np.JID()

    async def store(event):
        outcomes = []
        for item in await incoming(client, event):
            item.device_id = device.pk
            outcomes += await sync_to_async(events.persist)(item)
        return outcomes

    (stored,) = await store(_by_lid("kimim ben", msg_id="L1"))
    assert (stored.payload["chat_id"], stored.payload["from"], stored.payload["from_lid"]) == (LID, LID, LID)
    merged, message = await store(_by_lid("numaram bu", alt=PEER, msg_id="L2"))
    assert merged.name == "chat.merged" and merged.payload["chat_id"] == PEER
    assert (message.payload["chat_id"], message.payload["from"], message.payload["from_lid"]) == (
        PEER,
        PEER,
        LID,
    )
    chats = await sync_to_async(lambda: list(Chat.objects.filter(device=device).values_list("jid", "lid")))()
    assert chats == [(PEER, LID)]
    chat = await sync_to_async(Chat.objects.get)(device=device)
    assert chat.unread_count == 2
    assert await sync_to_async(LidMapping.objects.filter(device=device, lid=LID, phone=PEER).exists)()
