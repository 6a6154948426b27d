"""Phone numbers behind WhatsApp's hidden user IDs (…@lid): a contact that arrives as a LID, is resolved later,
and whose two chats become one; shown and sent by number wherever it is known, by one number's map only."""

import pytest
from django.urls import reverse

from messaging import events, live
from messaging.models import Chat, LidMapping, Message
from messaging.services import lids
from messaging.templatetags.dashboard import phone
from messaging.whatsapp import protocol as p
from tests.api.conftest import ApiClient
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def _chats(api) -> dict[str, dict]:
    return {c["jid"]: c for c in api.get("/chats").json()["results"]["data"]}


def test_a_hidden_number_arrives_as_lid_then_resolves_and_its_chats_merge(wa, org, owner, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    peer = wa.sandbox.peer_phones("quiet")[0]
    number = f"{peer}@s.whatsapp.net"
    name = next(x["name"] for x in wa.sandbox.network_summary()["peers"] if x["phone"] == peer)
    # We wrote to the number before WhatsApp started hiding it: a chat under the number exists.
    assert api.post("/send/message", {"phone": peer, "message": "Siparişiniz hazır"}).json()["results"][
        "status"
    ] == ("sent")

    lid = wa.sandbox.peer_hide_phone(phone=peer)
    assert lid.endswith("@lid") and peer not in lid
    first = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="Kimim ben?")
    data = wa.wait_event("message", device=device, predicate=lambda d: d["id"] == first)
    # Only the LID is known: said as such, never as a number.
    assert (data["from"], data["from_lid"], data["chat_id"], data["chat_lid"]) == (lid, lid, lid, lid)
    assert data["from_name"] == name
    chats = _chats(api)
    assert set(chats) == {number, lid}
    assert (chats[lid]["phone"], chats[lid]["chat_lid"], chats[lid]["name"]) == ("", lid, name)
    assert chats[number]["phone"] == peer
    inbox = client_for(owner).get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    assert "Unknown number (LID)" in inbox and name in inbox
    lid_chat = Chat.objects.get(device=device, jid=lid)
    page = client_for(owner).get(reverse("messaging:conversation", args=[device.pk, lid_chat.pk]))
    assert "Unknown number (LID)" in page.content.decode()  # (reading it there leaves nothing unread)
    second = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="Cevap?")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == second)

    # A reply to the LID reaches the person (it is their chat until the number is known).
    reply = api.post("/send/message", {"phone": lid, "message": "Merhaba"}).json()["results"]
    assert reply["status"] == "sent"
    assert [m["text"] for m in wa.sandbox.sent_to(peer)][-1] == "Merhaba"

    wa.sandbox.peer_hide_phone(phone=peer, hidden=False)  # WhatsApp tells the device who the LID is
    merged = wa.wait_event("chat.merged", device=device)
    assert (merged["chat_id"], merged["chat_lid"]) == (number, lid)
    chats = _chats(api)
    assert set(chats) == {number}
    chat = chats[number]
    assert (chat["phone"], chat["chat_lid"], chat["unread_count"]) == (peer, lid, 1)
    assert chat["last_message"] == "Merhaba"  # the newest of both chats
    assert not Chat.objects.filter(device=device, jid=lid).exists()
    history = api.get(f"/chat/{number}/messages").json()["results"]["data"]
    assert [m["text"] for m in history] == ["Merhaba", "Cevap?", "Kimim ben?", "Siparişiniz hazır"]
    theirs = history[1]
    assert (theirs["from"], theirs["from_lid"], theirs["chat_id"], theirs["chat_lid"]) == (
        number,
        lid,
        number,
        lid,
    )
    # The LID still finds the chat, by the number it stands for.
    by_lid = api.get(f"/chat/{lid}/messages").json()["results"]
    assert by_lid["chat"]["jid"] == number and len(by_lid["data"]) == 4

    # The live push: the LID chat's row goes, the number's row comes up to date.
    fragments = "".join(live.render_event(event="chat.merged", device=device, data=merged))
    assert f"delete:#chat-{merged['removed_chat_pk']}-row" in fragments
    assert f'id="chat-{merged["chat_pk"]}-row"' in fragments and "Unknown number (LID)" not in fragments
    inbox = client_for(owner).get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    assert "Unknown number (LID)" not in inbox and "Merhaba" in inbox and phone(number) in inbox
    page = client_for(owner).get(reverse("messaging:conversation", args=[device.pk, merged["chat_pk"]]))
    assert phone(number) in page.content.decode() and "Cevap?" in page.content.decode()
    gone = client_for(owner).get(reverse("messaging:conversation", args=[device.pk, lid_chat.pk]))
    assert gone.status_code == 404

    # From now on their messages carry both: they go straight to the number's chat.
    later = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="Tamam")
    data = wa.wait_event("message", device=device, predicate=lambda d: d["id"] == later)
    assert (data["from"], data["from_lid"], data["chat_id"], data["chat_lid"]) == (number, lid, number, lid)
    # Sending to the LID now goes to the number's chat.
    sent = api.post("/send/message", {"phone": lid, "message": "Görüşürüz"}).json()["results"]
    assert sent["status"] == "sent"
    assert Message.objects.get(wa_id=sent["message_id"]).chat.jid == number
    assert Chat.objects.filter(device=device).count() == 1


def test_a_lid_only_chat_becomes_the_numbers_chat_when_there_was_none(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    peer = wa.sandbox.peer_phones("quiet")[0]
    lid = wa.sandbox.peer_hide_phone(phone=peer)
    first = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="ilk")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == first)
    lid_chat = Chat.objects.get(device=device, jid=lid)
    wa.sandbox.peer_react(from_phone=peer, chat=device.jid, message_id=first, emoji="👍")
    wa.wait_event("message.reaction", device=device, predicate=lambda d: d["reacted_message_id"] == first)
    assert Message.objects.get(wa_id=first).reactions == {lid: "👍"}

    wa.sandbox.peer_hide_phone(phone=peer, hidden=False)
    merged = wa.wait_event("chat.merged", device=device)
    assert merged["removed_chat_pk"] is None and merged["chat_pk"] == lid_chat.pk
    chat = _chats(api)[f"{peer}@s.whatsapp.net"]
    assert (chat["chat_lid"], chat["unread_count"], chat["last_message"]) == (lid, 1, "ilk")
    assert Message.objects.get(wa_id=first).reactions == {f"{peer}@s.whatsapp.net": "👍"}
    # A conversation open on it is fetched again: it has a number to show now.
    fragments = "".join(live.render_event(event="chat.merged", device=device, data=merged))
    url = reverse("messaging:conversation", args=[device.pk, lid_chat.pk])
    assert f'id="chat-{lid_chat.pk}-follow" hidden hx-swap-oob="true" hx-get="{url}"' in fragments


def test_another_organization_never_sees_or_uses_this_numbers_map(wa, org, other_org, api_key):
    ours = wa.linked_device(org, "Ours")
    theirs = wa.linked_device(other_org, "Theirs")
    peer = wa.sandbox.peer_phones("quiet")[0]
    lid = wa.sandbox.peer_hide_phone(phone=peer)
    mine = wa.sandbox.peer_send(from_phone=peer, to_jid=ours.jid, text="size")
    wa.wait_event("message", device=ours, predicate=lambda d: d["id"] == mine)
    wa.sandbox.peer_hide_phone(phone=peer, hidden=False)
    wa.wait_event("chat.merged", device=ours)
    assert LidMapping.objects.filter(device=ours, lid=lid).exists()
    assert not LidMapping.objects.filter(organization=other_org).exists()

    # Their number gets a message that names the person by LID only (as WhatsApp may for them): it stays so.
    message = p.IncomingMessage(id="THEIRS1", chat=lid, sender=lid, sender_name="?", timestamp=1_700_000_000)
    (outcome,) = events.persist(p.MessageEvent(device_id=theirs.pk, message=message))
    assert (outcome.payload["from"], outcome.payload["chat_id"]) == (lid, lid)
    assert lids.phone_for(theirs, lid) == lid
    # A send of theirs to the LID is not turned into our number's contact.
    from messaging.services.outbox import queue_message

    sent = queue_message(organization=other_org, device=theirs, outgoing={"to": lid, "text": "merhaba"})
    assert sent.chat.jid == lid
    assert not Chat.objects.filter(device=theirs, jid=f"{peer}@s.whatsapp.net").exists()


def test_a_conversation_open_on_the_lid_chat_follows_it_into_the_numbers_chat_live(wa, org, owner, api_key):
    from tests.messaging.test_live import _open, _receive

    device = wa.linked_device(org)
    api = ApiClient(api_key)
    peer = wa.sandbox.peer_phones("quiet")[0]
    number = f"{peer}@s.whatsapp.net"
    assert api.post("/send/message", {"phone": peer, "message": "Kargonuz yolda"}).json()["results"][
        "status"
    ] == ("sent")
    lid = wa.sandbox.peer_hide_phone(phone=peer)
    first = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="Hangi kargo?")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == first)
    lid_chat = Chat.objects.get(device=device, jid=lid)
    number_chat = Chat.objects.get(device=device, jid=number)
    member = client_for(owner)
    # A teammate has the LID chat open: its pane carries the place a merge's push lands in.
    opened = member.get(reverse("messaging:conversation", args=[device.pk, lid_chat.pk])).content.decode()
    assert f'id="chat-{lid_chat.pk}-follow" hidden>' in opened and "Unknown number (LID)" in opened
    socket = _open(wa, owner, f"/ws/live/?device={device.pk}")

    wa.sandbox.peer_hide_phone(phone=peer, hidden=False)
    merged = wa.wait_event("chat.merged", device=device)
    assert (merged["removed_chat_pk"], merged["chat_pk"]) == (lid_chat.pk, number_chat.pk)
    frame = ""
    for _ in range(20):  # the merge's frame, among whatever else the socket carries (each waits for a frame)
        frame = _receive(wa, socket)
        if "-follow" in frame:
            break
    url = reverse("messaging:conversation", args=[device.pk, number_chat.pk])
    # The LID chat's row goes, and the pane open on it loads the number's conversation in its place, its URL
    # pushed (a reload then opens the number's chat, not a 404). A pane open on the number's chat reloads too
    # (it lacks the messages moved into it).
    assert f'hx-swap-oob="delete:#chat-{lid_chat.pk}-row"' in frame
    for shown in (lid_chat.pk, number_chat.pk):
        follow = frame.split(f'id="chat-{shown}-follow"')[1].split(">")[0]
        assert f'hx-get="{url}"' in follow and 'hx-trigger="load"' in follow
        assert 'hx-target="#conversation-pane"' in follow and 'hx-swap="outerHTML"' in follow
        assert 'hx-push-url="true"' in follow and "data-carry-draft" in follow
    # What it loads: both chats' messages, under the number.
    pane = member.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="conversation-pane").content.decode()
    assert pane.startswith('<section id="conversation-pane"') and f'data-chat="{number_chat.pk}"' in pane
    assert "Hangi kargo?" in pane and "Kargonuz yolda" in pane
    assert phone(number) in pane and "Unknown number (LID)" not in pane
    wa.run(socket.disconnect())
