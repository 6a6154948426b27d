"""neonize's HistorySyncEv after a link: real waHistorySync protobufs through the client (autospec of neonize's
NewAClient), then our event handler and the import on the test database; and the device props that ask the
phone for as much history as the organization wants."""

import pytest
from asgiref.sync import sync_to_async
from neonize.aioze.client import NewAClient
from neonize.proto import Neonize_pb2 as np
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as hs
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from messaging import events
from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.backend import NeonizeBackend
from messaging.whatsapp.neonize.history import device_props
from tests.conftest import make_organization
from tests.messaging.neonize_harness import GROUP, ME, PEER, MemoryMessageIds

NOW = 1_780_000_000
OTHER = "905554445566@s.whatsapp.net"


def _web(msg_id: str, message: e2e.Message, *, chat=PEER, from_me=False, participant="", at=NOW, push=""):
    key = MessageKey(remoteJID=chat, fromMe=from_me, ID=msg_id, participant=participant)
    return WebMessageInfo(key=key, message=message, messageTimestamp=at, pushName=push)


def _history(*, progress=100, order=1) -> hs.HistorySync:
    image = e2e.ImageMessage(
        mimetype="image/jpeg",
        fileLength=2048,
        caption="the shop front",
        directPath="/v/t62/abc",
        mediaKey=b"k" * 32,
        fileSHA256=b"s" * 32,
        fileEncSHA256=b"e" * 32,
    )
    document = e2e.DocumentMessage(mimetype="application/pdf", fileLength=999, fileName="invoice.pdf")
    reply = e2e.ExtendedTextMessage(
        text="yes, tomorrow",
        contextInfo=e2e.ContextInfo(stanzaID="H1", quotedMessage=e2e.Message(conversation="open tomorrow?")),
    )
    one_to_one = hs.Conversation(
        ID=PEER,
        unreadCount=1,
        conversationTimestamp=NOW + 60,
        messages=[
            hs.HistorySyncMsg(message=_web("H1", e2e.Message(conversation="open tomorrow?"), push="Ayşe")),
            hs.HistorySyncMsg(
                message=_web("H2", e2e.Message(extendedTextMessage=reply), from_me=True, at=NOW + 30)
            ),
            hs.HistorySyncMsg(message=_web("H3", e2e.Message(imageMessage=image), at=NOW + 60, push="Ayşe")),
            # A system stub (no content): not a message anyone wrote.
            hs.HistorySyncMsg(
                message=WebMessageInfo(key=MessageKey(remoteJID=PEER, ID="STUB"), messageStubType=1)
            ),
        ],
    )
    group = hs.Conversation(
        ID=GROUP,
        name="Suppliers",
        conversationTimestamp=NOW,
        messages=[
            hs.HistorySyncMsg(
                message=_web(
                    "G1", e2e.Message(documentMessage=document), chat=GROUP, participant=OTHER, push="Mehmet"
                )
            )
        ],
    )
    status = hs.Conversation(ID="status@broadcast", messages=[])  # not a chat
    return hs.HistorySync(
        syncType=hs.HistorySync.RECENT,
        chunkOrder=order,
        progress=progress,
        conversations=[one_to_one, group, status],
        pushnames=[hs.Pushname(ID=PEER, pushname="Ayşe"), hs.Pushname(ID=OTHER, pushname="Mehmet")],
    )


async def test_a_history_sync_becomes_one_event_with_its_chats_and_messages(neonize_client, neo, emitted):
    await neonize_client.on_event(neo, np.HistorySync(Data=_history()))
    [event] = emitted.of(p.HistorySyncEvent)
    assert (event.sync_type, event.chunk_order, event.progress, event.final) == ("recent", 1, 100, True)
    assert [c.jid for c in event.conversations] == [PEER, GROUP]
    chat, group = event.conversations
    assert (chat.unread_count, chat.last_message_at) == (1, NOW + 60)
    assert [m.id for m in chat.messages] == ["H1", "H2", "H3"]
    first, mine, photo = chat.messages
    assert (first.text, first.sender, first.sender_name, first.from_me) == (
        "open tomorrow?",
        PEER,
        "Ayşe",
        False,
    )
    assert (mine.from_me, mine.sender, mine.reply_to_id, mine.quoted_body) == (
        True,
        ME,
        "H1",
        "open tomorrow?",
    )
    assert photo.kind == "image" and photo.caption == "the shop front" and photo.timestamp == NOW + 60
    assert (photo.media.mime_type, photo.media.size) == ("image/jpeg", 2048)
    assert photo.media.ref["direct_path"] == "/v/t62/abc"  # downloadable later, on demand
    assert group.name == "Suppliers"
    [doc] = group.messages
    assert (doc.kind, doc.sender, doc.media.filename, doc.media.size) == (
        "document",
        OTHER,
        "invoice.pdf",
        999,
    )
    assert event.push_names == {PEER: "Ayşe", OTHER: "Mehmet"}


async def test_a_chunk_short_of_100_percent_is_not_the_last(neonize_client, neo, emitted):
    await neonize_client.on_event(neo, np.HistorySync(Data=_history(progress=40)))
    [event] = emitted.of(p.HistorySyncEvent)
    assert event.progress == 40 and not event.final


async def test_our_own_sent_messages_keep_our_ids(neonize_client, neo, emitted):
    neonize_client.ids.rows["3EB0OURS"] = ("H2", NOW)  # we sent H2 through this server as 3EB0OURS
    await neonize_client.on_event(neo, np.HistorySync(Data=_history()))
    [event] = emitted.of(p.HistorySyncEvent)
    assert [m.id for m in event.conversations[0].messages] == ["H1", "3EB0OURS", "H3"]


@pytest.mark.django_db(transaction=True)
async def test_the_history_is_stored_as_the_inbox_shows_it(neonize_client, neo, emitted):
    from messaging.models import Chat, Contact, Device, Message
    from messaging.services import history_import

    def device():
        org = make_organization()
        org.history_days = None
        org.save()
        return Device.objects.create(organization=org, name="Shop", jid=ME, wanted=True)

    dev = await sync_to_async(device)()
    await neonize_client.on_event(neo, np.HistorySync(Data=_history()))
    [event] = emitted.of(p.HistorySyncEvent)
    event.device_id = dev.pk

    def store():
        events.persist(event)
        return history_import.import_next_chunk(dev.pk)[0]

    outcomes = await sync_to_async(store)()
    assert [o.name for o in outcomes] == ["history.progress", "history.synced"]
    assert outcomes[-1].payload["messages"] == 4 and outcomes[-1].payload["chats"] == 2

    def read():
        chats = {c.jid: c for c in Chat.objects.filter(device=dev)}
        photo = Message.objects.get(device=dev, wa_id="H3")
        doc = Message.objects.get(device=dev, wa_id="G1")
        contacts = dict(Contact.objects.filter(device=dev).values_list("jid", "push_name"))
        return chats, photo, doc, contacts

    chats, photo, doc, contacts = await sync_to_async(read)()
    assert chats[PEER].name == "Ayşe" and chats[PEER].unread_count == 1 and chats[GROUP].name == "Suppliers"
    assert chats[GROUP].is_group and chats[PEER].last_message_preview == "the shop front"
    assert (photo.media_mime, photo.media_size, photo.read_by_me_at) == ("image/jpeg", 2048, None)
    assert (doc.media_filename, doc.sender_name, doc.kind) == ("invoice.pdf", "Mehmet", "document")
    assert contacts == {PEER: "Ayşe", OTHER: "Mehmet"}


async def test_a_conversation_named_by_its_lid_and_number_gives_its_messages_both(
    neonize_client, neo, emitted
):
    lid = "987654321012@lid"
    by_lid = hs.Conversation(
        ID=lid,
        pnJID=PEER,
        messages=[
            hs.HistorySyncMsg(message=_web("L1", e2e.Message(conversation="hello"), chat=lid)),
            hs.HistorySyncMsg(
                message=_web("L2", e2e.Message(conversation="hi"), chat=lid, from_me=True, at=NOW + 1)
            ),
        ],
    )
    data = hs.HistorySync(syncType=hs.HistorySync.RECENT, chunkOrder=1, progress=100, conversations=[by_lid])
    await neonize_client.on_event(neo, np.HistorySync(Data=data))
    [event] = emitted.of(p.HistorySyncEvent)
    [chat] = event.conversations
    theirs, mine = chat.messages
    assert chat.jid == PEER
    assert (theirs.chat, theirs.chat_lid, theirs.sender, theirs.sender_lid) == (PEER, lid, PEER, lid)
    assert (mine.chat_lid, mine.sender, mine.sender_lid) == (lid, ME, "")


@pytest.mark.parametrize(
    ("days", "full", "limit"),
    [(None, True, 0), (90, True, 90), (7, True, 7), (0, False, 0)],
)
def test_device_props_ask_the_phone_for_the_organizations_history(days, full, limit):
    props = device_props(days)
    assert props.os == "waportal" and props.requireFullSync is full
    assert props.historySyncConfig.fullSyncDaysLimit == limit


@pytest.mark.django_db(transaction=True)
async def test_a_new_link_registers_with_the_organizations_choice(tmp_path, emitted):
    from messaging.models import Device

    def device():
        org = make_organization()
        org.history_days = 7
        org.save()
        return Device.objects.create(organization=org, name="Shop", wanted=True)

    dev = await sync_to_async(device)()
    backend = NeonizeBackend(message_ids=MemoryMessageIds, session_dir=tmp_path / "sessions", database_url="")
    real = await backend.open_neonize(backend.create_client(device_id=dev.pk, jid=None, emit=emitted))
    assert isinstance(real, NewAClient)  # neonize's real client, not connected: it takes our props
    assert real.device_props.requireFullSync
    assert real.device_props.historySyncConfig.fullSyncDaysLimit == 7


async def test_history_sync_events_are_subscribed(backend, neo, emitted):
    import asyncio

    neo.connect.return_value = asyncio.get_running_loop().create_future()
    c = backend.create_client(device_id=7, jid=None, emit=emitted)
    c._subscribe(neo)
    assert np.HistorySync in {call.args[0] for call in neo.event.call_args_list}
