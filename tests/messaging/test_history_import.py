"""History on link: the simulated phone's earlier chats and messages reach the inbox of a newly linked number,
as far back as the organization chose, once, beside live events; the number's page shows the progress."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging import events
from messaging.models import Chat, Contact, HistorySync, Message
from messaging.services import devices, history_import
from messaging.whatsapp import protocol as p

PHONE = "19995550001"


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.WA_SANDBOX_DELAY = 0.01


def _synced(wa, device) -> dict:
    return wa.wait_event("history.synced", device=device, timeout=20)


@pytest.mark.django_db(transaction=True)
def test_link_imports_the_phones_earlier_chats_and_messages(wa, org):
    org.history_days = None  # everything
    org.save()
    ids = wa.sandbox.seed_phone_history(PHONE)
    device = wa.linked_device(org, phone=PHONE)
    synced = _synced(wa, device)

    assert synced["messages"] == len(ids) == 30 and synced["skipped"] == 0 and synced["chats"] == 3
    assert synced["state"] == "finished" and synced["chunks_imported"] == synced["chunks_received"]
    chats = list(Chat.objects.filter(device=device))
    peers = wa.sandbox.network_summary()["peers"][:3]
    assert {c.jid for c in chats} == {peer["jid"] for peer in peers}
    by_jid = {c.jid: c for c in chats}
    for peer in peers:
        chat = by_jid[peer["jid"]]
        assert chat.name == peer["name"]  # the contact's own name, from the phone
        assert chat.unread_count == 1  # the newest photo, not read on the phone
        newest = chat.messages.order_by("-timestamp").first()
        assert newest.kind == "image" and newest.caption.startswith("A photo")
        assert newest.media_mime == "image/png" and newest.media_size and newest.media_filename
        assert not newest.media  # metadata only: downloaded on demand
        assert newest.reply_to_id and newest.quoted_body.startswith("Hello")
        assert chat.last_message_at == newest.timestamp
        assert chat.last_message_preview == newest.caption
    assert set(Message.objects.filter(device=device).values_list("wa_id", flat=True)) == set(ids)
    assert Message.objects.filter(device=device, from_me=True).count() == 15
    assert {c.jid: c.push_name for c in Contact.objects.filter(device=device)} == {
        peer["jid"]: peer["name"] for peer in peers
    }


@pytest.mark.django_db(transaction=True)
def test_the_inbox_and_the_numbers_page_show_the_imported_history(wa, org, owner_client):
    org.history_days = 90
    org.save()
    wa.sandbox.seed_phone_history(PHONE, peers=2)
    device = wa.linked_device(org, phone=PHONE)
    _synced(wa, device)
    peers = wa.sandbox.network_summary()["peers"][:2]
    inbox = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    for peer in peers:
        assert peer["name"] in inbox
    assert "A photo, 1 days ago" in inbox  # the chats' newest message, as their preview
    page = owner_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert 'data-history-state="finished"' in page
    assert "History imported: 2 chats, 12 messages." in page and "8 older messages were skipped." in page


@pytest.mark.django_db(transaction=True)
def test_imported_messages_fire_no_message_events_only_one_synced(wa, org):
    org.history_days = None
    org.save()
    wa.sandbox.seed_phone_history(PHONE, peers=1)
    device = wa.linked_device(org, phone=PHONE)
    _synced(wa, device)
    wa.worker and wa.run(wa.worker.settle())
    names = [name for name, dev, _ in wa.events if dev == device.pk]
    assert "message" not in names and names.count("history.synced") == 1
    assert "history.progress" in names


@pytest.mark.django_db(transaction=True)
def test_the_organizations_choice_cuts_older_messages(wa, org):
    org.history_days = 30
    org.save()
    wa.sandbox.seed_phone_history(PHONE, peers=2)  # 1, 10, 45, 200, 400 days ago
    device = wa.linked_device(org, phone=PHONE)
    synced = _synced(wa, device)
    assert synced["messages"] == 2 * 2 * 2 and synced["skipped"] == 2 * 2 * 3 and synced["days"] == 30
    oldest = Message.objects.filter(device=device).order_by("timestamp").first()
    assert oldest.timestamp > timezone.now() - timedelta(days=30)


@pytest.mark.django_db(transaction=True)
def test_none_imports_nothing_but_the_sync_still_finishes(wa, org):
    org.history_days = 0
    org.save()
    wa.sandbox.seed_phone_history(PHONE, peers=1)
    device = wa.linked_device(org, phone=PHONE)
    synced = _synced(wa, device)
    assert synced["messages"] == 0 and synced["skipped"] == 10
    assert not Chat.objects.filter(device=device).exists()


@pytest.mark.django_db(transaction=True)
def test_a_phone_without_history_sends_one_empty_final_chunk(wa, org):
    device = wa.linked_device(org)
    synced = _synced(wa, device)
    assert synced["messages"] == 0 and synced["chunks_received"] == 1
    assert HistorySync.objects.get(device=device).state == "finished"


@pytest.mark.django_db(transaction=True)
def test_a_message_sent_right_after_the_link_arrives_live_and_is_not_in_the_history(wa, org):
    # The phone sends what it held when linked, however late a busy machine gets to reading it.
    org.history_days = None
    org.save()
    ids = wa.sandbox.seed_phone_history(PHONE, peers=1)
    device = wa.linked_device(org, phone=PHONE)
    peer = wa.sandbox.network_summary()["peers"][0]["phone"]
    new = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="Just after the link")
    live = wa.wait_event("message", device=device, predicate=lambda d: d["id"] == new)
    synced = _synced(wa, device)
    assert live["text"] == "Just after the link"
    assert synced["messages"] == len(ids)  # the history's alone
    assert Message.objects.filter(device=device).count() == len(ids) + 1


# ---------------------------------------------------------------------------------------------- the service


def _conversation(jid: str, *messages: p.IncomingMessage, **fields) -> p.HistoryConversation:
    return p.HistoryConversation(jid=jid, messages=list(messages), **fields)


def _message(wa_id: str, chat: str, *, at: float, text: str = "hi", from_me: bool = False):
    return p.IncomingMessage(
        id=wa_id, chat=chat, sender=chat, sender_name="Ayşe", from_me=from_me, text=text, timestamp=at
    )


def _chunk(device, order: int, *conversations, final: bool = False) -> p.HistorySyncEvent:
    return p.HistorySyncEvent(
        device_id=device.pk,
        chunk_order=order,
        progress=100 if final else 50,
        final=final,
        conversations=list(conversations),
        push_names={PEER: "Ayşe"},
    )


PEER = "15550001111@s.whatsapp.net"


def _device(org):
    from messaging.models import Device

    return Device.objects.create(organization=org, name="Shop", jid="19990000001@s.whatsapp.net", wanted=True)


def _receive_and_import(event) -> list:
    outcomes = events.persist(event)
    while True:
        more_outcomes, more = history_import.import_next_chunk(event.device_id)
        outcomes += more_outcomes
        if not more:
            return outcomes


@pytest.mark.django_db
def test_the_same_chunk_twice_creates_no_duplicates(org):
    org.history_days = 30
    org.save()
    device = _device(org)
    now = timezone.now().timestamp()
    conversation = _conversation(
        PEER,
        _message("A0", PEER, at=now - 40 * 86_400),  # older than the cut
        _message("A1", PEER, at=now - 60),
        _message("A2", PEER, at=now - 30),
    )
    chunk = _chunk(device, 1, conversation)
    _receive_and_import(chunk)
    outcomes = _receive_and_import(chunk)  # the phone sent it again
    assert set(Message.objects.filter(device=device).values_list("wa_id", flat=True)) == {"A1", "A2"}
    assert Chat.objects.filter(device=device).count() == 1
    sync = HistorySync.objects.get(device=device)
    assert (sync.chunks_received, sync.chunks_imported, sync.messages_imported, sync.messages_skipped) == (
        1,
        1,
        2,
        1,
    )
    assert [o.name for o in outcomes] == ["history.progress", "history.progress"]


@pytest.mark.django_db
def test_live_messages_during_the_import_are_kept(org):
    org.history_days = None
    org.save()
    device = _device(org)
    now = timezone.now().timestamp()
    events.persist(
        _chunk(device, 1, _conversation(PEER, _message("OLD1", PEER, at=now - 3600, text="old")), final=True)
    )
    # A live message arrives after the chunk was received, before it is imported.
    live = p.IncomingMessage(
        id="LIVE1", chat=PEER, sender=PEER, sender_name="Ayşe Y.", timestamp=now, text="new"
    )
    events.persist(p.MessageEvent(device_id=device.pk, message=live))
    outcomes, _ = history_import.import_next_chunk(device.pk)
    chat = Chat.objects.get(device=device, jid=PEER)
    assert chat.last_message_preview == "new" and chat.last_message_at.timestamp() == pytest.approx(now)
    assert chat.unread_count == 1 and chat.name == "Ayşe Y."  # the live state, not the history's
    assert set(chat.messages.values_list("wa_id", flat=True)) == {"OLD1", "LIVE1"}
    assert [o.name for o in outcomes] == ["history.progress", "history.synced"]


@pytest.mark.django_db
def test_a_message_in_the_history_before_its_live_delivery_is_still_announced_once(org):
    # WhatsApp may put a message that arrives during the sync in the history too, and the import may store
    # it first: its live delivery must still reach the pages and the webhooks, and only once.
    org.history_days = None
    org.save()
    device = _device(org)
    now = timezone.now().timestamp()
    _receive_and_import(
        _chunk(device, 1, _conversation(PEER, _message("BOTH1", PEER, at=now, text="just now")), final=True)
    )
    live = p.MessageEvent(device_id=device.pk, message=_message("BOTH1", PEER, at=now, text="just now"))
    first = events.persist(live)
    again = events.persist(live)  # WhatsApp delivers it once more
    assert [(o.name, o.payload["id"], o.payload["text"]) for o in first] == [("message", "BOTH1", "just now")]
    assert again == []
    assert Message.objects.filter(device=device, wa_id="BOTH1").count() == 1


PEER_LID = "987654321012@lid"


@pytest.mark.django_db
def test_a_history_message_with_a_lid_and_a_number_teaches_the_map_and_merges_the_lid_chat(org):
    from messaging.models import LidMapping

    org.history_days = None
    org.save()
    device = _device(org)
    now = timezone.now().timestamp()
    # Live, WhatsApp named the person by their LID only: a chat under the LID.
    events.persist(
        p.MessageEvent(
            device_id=device.pk,
            message=p.IncomingMessage(id="LIVE1", chat=PEER_LID, sender=PEER_LID, text="live", timestamp=now),
        )
    )
    theirs = _message("H1", PEER, at=now - 60)
    theirs.chat_lid = theirs.sender_lid = PEER_LID
    mine = _message("H2", PEER, at=now - 30, from_me=True)
    mine.sender, mine.chat_lid = device.jid, PEER_LID
    outcomes = _receive_and_import(_chunk(device, 1, _conversation(PEER, theirs, mine), final=True))
    assert list(LidMapping.objects.filter(device=device).values_list("lid", "phone")) == [(PEER_LID, PEER)]
    [chat] = Chat.objects.filter(device=device)  # the LID chat became the number's, with the history in it
    assert (chat.jid, chat.lid) == (PEER, PEER_LID)
    assert set(chat.messages.values_list("wa_id", flat=True)) == {"LIVE1", "H1", "H2"}
    assert [o.name for o in outcomes if o.name == "chat.merged"] == ["chat.merged"]


@pytest.mark.django_db
def test_history_does_not_change_the_number_a_live_event_gave_a_lid(org):
    from messaging.models import LidMapping

    org.history_days = None
    org.save()
    device = _device(org)
    newer = "15550002222@s.whatsapp.net"
    LidMapping.objects.create(organization=org, device=device, lid=PEER_LID, phone=newer)
    old = _message("H1", PEER, at=timezone.now().timestamp() - 86_400)
    old.chat_lid = old.sender_lid = PEER_LID
    _receive_and_import(_chunk(device, 1, _conversation(PEER, old), final=True))
    assert list(LidMapping.objects.filter(device=device).values_list("lid", "phone")) == [(PEER_LID, newer)]


@pytest.mark.django_db
def test_unread_counts_only_move_forward(org):
    org.history_days = None
    org.save()
    device = _device(org)
    now = timezone.now().timestamp()
    chat = Chat.objects.create(organization=org, device=device, jid=PEER, unread_count=5)
    conversation = _conversation(PEER, _message("B1", PEER, at=now - 60), unread_count=2)
    _receive_and_import(_chunk(device, 1, conversation, final=True))
    chat.refresh_from_db()
    assert chat.unread_count == 5
    conversation.unread_count = 9
    _receive_and_import(_chunk(device, 2, conversation, final=True))
    chat.refresh_from_db()
    assert chat.unread_count == 9


@pytest.mark.django_db(transaction=True)
def test_the_numbers_page_is_told_the_progress_live(wa, org, owner):
    from tests.messaging.test_live import _open, _receive

    org.history_days = None
    org.save()
    wa.sandbox.seed_phone_history(PHONE, peers=3)
    device = devices.create_device(organization=org, name="Front desk", actor=owner)
    socket = _open(wa, owner, f"/ws/live/?device={device.pk}")
    device = devices.start_linking(organization=org, device=device, actor=owner)
    wa.sandbox.phone_scan(qr_code=device.qr_code, phone=PHONE)
    _synced(wa, device)
    seen = []
    while 'data-history-state="finished"' not in (html := _receive(wa, socket)):
        if f'id="device-{device.pk}-history"' in html:
            seen.append(html)
    assert "History imported: 3 chats, 30 messages." in html
    assert any('data-history-state="importing"' in h for h in seen)  # under way, before finished
    wa.run(socket.disconnect())


@pytest.mark.django_db(transaction=True)
def test_webhooks_get_one_history_synced_and_no_message_per_imported_message(wa, org):
    import json

    from messaging.models import WebhookDelivery, WebhookEndpoint

    org.history_days = None
    org.save()
    WebhookEndpoint.objects.create(
        organization=org, url="https://hooks.example.com/wa", events=["message", "history.synced"]
    )
    wa.sandbox.seed_phone_history(PHONE, peers=2)
    device = wa.linked_device(org, phone=PHONE)
    _synced(wa, device)
    wa.run(wa.worker.settle())
    deliveries = list(WebhookDelivery.objects.filter(device=device))
    assert [d.event for d in deliveries] == ["history.synced"]
    payload = json.loads(deliveries[0].body)["payload"]
    assert (payload["chats"], payload["messages"], payload["skipped"], payload["state"]) == (
        2,
        20,
        0,
        "finished",
    )


@pytest.mark.django_db
def test_a_long_chat_is_imported_over_several_batches(org, monkeypatch):
    monkeypatch.setattr(history_import, "BATCH_MESSAGES", 2)
    org.history_days = None
    org.save()
    device = _device(org)
    now = timezone.now().timestamp()
    messages = [_message(f"L{i}", PEER, at=now - 100 + i, text=f"m{i}") for i in range(5)]
    reaction = p.IncomingMessage(
        id="R1",
        chat=PEER,
        sender=PEER,
        kind=p.MessageKind.REACTION,
        target_id="L0",
        reaction="👍",
        timestamp=now,
    )
    _receive_and_import(
        _chunk(device, 1, _conversation(PEER, *messages, reaction, unread_count=1), final=True)
    )
    stored = list(Message.objects.filter(device=device).order_by("timestamp"))
    assert [m.wa_id for m in stored] == ["L0", "L1", "L2", "L3", "L4"]  # not the reaction: not a message
    assert [m.read_by_me_at is None for m in stored] == [False, False, False, False, True]
    chat = Chat.objects.get(device=device)
    assert (chat.unread_count, chat.last_message_preview) == (1, "m4")
    sync = HistorySync.objects.get(device=device)
    assert (sync.messages_imported, sync.messages_skipped, sync.chats_imported, sync.state) == (
        5,
        0,
        1,
        "finished",
    )
