"""The pages against a running session worker on the sandbox (the `wa` fixture): linking, sending, receiving,
message actions, groups and profile, as an operator does them, and the fragments the socket pushes."""

import re

import pytest
from django.urls import reverse

from messaging import live
from messaging.models import Chat, Device, Message
from tests.conftest import add_member, client_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def op(org):
    return client_for(add_member(org, "operator"))


def test_link_a_number_by_qr_and_the_simulated_phone(wa, org, op):
    response = op.post(reverse("messaging:device_create"), {"name": "Sales"})
    assert response.status_code == 302
    device = org.devices.get(name="Sales")
    linked = op.post(reverse("messaging:device_link", args=[device.pk]), HTTP_HX_REQUEST="true")
    assert linked.status_code == 200
    device.refresh_from_db()
    assert device.status == "qr_waiting" and device.qr_code
    assert f'data-qr="{device.qr_code}"' in linked.content.decode()

    # What the socket pushes for a new QR: the page's own partials, swapped by id.
    pushed = "".join(live.render_event(event="device.qr", device=device, data={}))
    assert (
        f'id="device-{device.pk}-link" class="device-link" hx-swap-oob="true"' in pushed and "<svg" in pushed
    )

    scan = op.post(reverse("messaging:sandbox_scan", args=[device.pk]), {"phone": ""})
    assert scan.status_code == 302
    wa.wait_event("device.connected", device=device, since_start=True)
    device.refresh_from_db()
    assert device.status == "connected"
    pushed = "".join(live.render_event(event="device.connected", device=device, data={}))
    assert 'data-status="connected"' in pushed and "data-connected" in pushed
    page = op.get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert 'data-status="connected"' in page and "Held by" not in page


def test_pairing_code_and_entering_it_on_the_simulated_phone(wa, org, op):
    from messaging.services import devices

    device = devices.create_device(organization=org, name="Paired")
    phone = wa.sandbox.fresh_phone()
    response = op.post(
        reverse("messaging:device_pair", args=[device.pk]), {"phone": phone}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    device.refresh_from_db()
    assert device.pair_code and f'data-pair-code="{device.pair_code}"' in body
    op.post(reverse("messaging:sandbox_code", args=[device.pk]), {"phone": phone, "code": device.pair_code})
    wa.wait_event("device.connected", device=device, since_start=True)
    device.refresh_from_db()
    assert device.status == "connected" and device.phone == phone


def test_compose_a_text_then_receipts_move_its_ticks_to_read(wa, org, op):
    device = wa.linked_device(org)
    peer = wa.sandbox.peer_phones("echo")[0]
    response = op.post(
        reverse("messaging:compose", args=[device.pk]),
        {"kind": "text", "to": peer, "text": "Merhaba!"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert "sent-result" in body, body
    message = Message.objects.get(device=device, text="Merhaba!")
    wa.wait_event(
        "message.receipt",
        device=device,
        predicate=lambda d: d["id"] == message.wa_id and d["status"] == "read",
        since_start=True,
    )
    page = op.get(reverse("messaging:conversation", args=[device.pk, message.chat_id])).content.decode()
    assert f'id="msg-{message.pk}"' in page
    assert 'data-status="read"' in page
    pushed = "".join(
        live.render_event(
            event="message.receipt",
            device=device,
            data={"message_pk": message.pk, "chat_pk": message.chat_id},
        )
    )
    assert f'id="msg-{message.pk}" hx-swap-oob="true"' in pushed and 'data-status="read"' in pushed


def test_a_peer_writes_and_the_message_is_pushed_into_its_conversation(wa, org, op):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="Selam, nasılsın?")
    data = wa.wait_event("message", device=device, predicate=lambda d: d["text"] == "Selam, nasılsın?")
    pushed = "".join(live.render_event(event="message", device=device, data=data))
    assert (
        f'hx-swap-oob="beforeend:#chat-{data["chat_pk"]}-messages"' in pushed and "Selam, nasılsın?" in pushed
    )
    assert f'hx-swap-oob="afterbegin:#chat-list-{device.pk}"' in pushed
    assert (
        f'id="chat-{data["chat_pk"]}-typing" class="typing" hx-swap-oob="true"></small>' in pushed
    )  # typing ends
    inbox = op.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    assert 'data-unread="1"' in inbox and "Selam" in inbox


def test_message_actions_from_the_conversation(wa, org, op):
    device = wa.linked_device(org)
    peer = wa.sandbox.peer_phones("quiet")[0]
    op.post(
        reverse("messaging:compose", args=[device.pk]), {"kind": "text", "to": peer, "text": "first words"}
    )
    message = Message.objects.get(device=device, text="first words")
    wa.wait_event(
        "message.sent", device=device, predicate=lambda d: d["id"] == message.wa_id, since_start=True
    )

    def act(action, **data):
        url = reverse("messaging:message_action", args=[device.pk, message.chat_id, message.pk, action])
        response = op.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert "field-error" not in response.content.decode(), response.content.decode()
        message.refresh_from_db()
        return response.content.decode()

    assert "★" in act("star") and message.starred
    act("unstar")
    assert not message.starred
    assert "👍" in act("react", emoji="👍")
    assert "better words" in act("edit", text="better words") and message.edited_at
    act("star")
    revoked = act("revoke")
    assert "This message was deleted" in revoked and message.revoked_at
    # Deleted for everyone: its star and reactions go, stored and shown.
    assert not message.starred and message.reactions == {} and "★" not in revoked and "👍" not in revoked


def test_reply_from_the_conversation_quotes_the_message(wa, org, op):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="question?")
    data = wa.wait_event("message", device=device, predicate=lambda d: d["text"] == "question?")
    chat = Chat.objects.get(pk=data["chat_pk"])
    response = op.post(
        reverse("messaging:chat_send", args=[device.pk, chat.pk]),
        {"text": "answer!", "reply_to_id": data["id"]},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert "answer!" in body and "question?" in body  # the quote is shown on the new message
    assert Message.objects.get(device=device, text="answer!").reply_to_id == data["id"]


def test_compose_every_kind(wa, org, op):
    from django.core.files.uploadedfile import SimpleUploadedFile

    device = wa.linked_device(org)
    peer = wa.sandbox.peer_phones("quiet")[0]
    url = reverse("messaging:compose", args=[device.pk])
    png = wa.sandbox.identicon("x")
    cases = [
        {"kind": "text", "text": "hi", "is_forwarded": "on"},
        {
            "kind": "image",
            "file": SimpleUploadedFile("a.png", png, "image/png"),
            "caption": "pic",
            "view_once": "on",
        },
        {"kind": "audio", "file": SimpleUploadedFile("a.ogg", b"OggS" + b"\0" * 100, "audio/ogg")},
        {
            "kind": "document",
            "file": SimpleUploadedFile("a.pdf", b"%PDF-1.4", "application/pdf"),
            "caption": "doc",
        },
        {
            "kind": "video",
            "file": SimpleUploadedFile("a.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 100, "video/mp4"),
            "view_once": "on",
            "caption": "clip",
        },
        {"kind": "contact", "contact_name": "Ali", "contact_phone": "905551234567"},
        {"kind": "link", "link": "https://example.com/page", "caption": "read this"},
        {"kind": "location", "latitude": "41.01", "longitude": "28.97"},
        {"kind": "poll", "question": "Tea or coffee?", "options": "Tea\nCoffee", "max_answer": "1"},
        {"kind": "sticker", "file": SimpleUploadedFile("s.webp", b"RIFF\0\0\0\0WEBPVP8 ", "image/webp")},
    ]
    for case in cases:
        response = op.post(url, {"to": peer, **case}, HTTP_HX_REQUEST="true")
        body = response.content.decode()
        assert "sent-result" in body, (
            case["kind"],
            body[body.find("field-error") - 200 : body.find("field-error") + 300],
        )
    kinds = set(Message.objects.filter(device=device).values_list("kind", flat=True))
    assert kinds >= {
        "text",
        "image",
        "audio",
        "document",
        "video",
        "contact",
        "link",
        "location",
        "poll",
        "sticker",
    }
    video = Message.objects.get(device=device, kind="video")
    assert video.view_once and video.caption == "clip"


def test_groups_create_then_promote_a_member(wa, org, op):
    device = wa.linked_device(org)
    a, b = wa.peers[0], wa.peers[1]
    response = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Dashboard team", "participants": f"{a}, {b}"}
    )
    assert response.status_code == 302
    detail_url = response["Location"]
    page = op.get(detail_url).content.decode()
    assert "Dashboard team" in page and f'data-participant="{a}@s.whatsapp.net"' in page
    group_jid = detail_url.rstrip("/").split("/")[-1]
    op.post(
        reverse("groups:participants", args=[device.pk, group_jid]),
        {"action": "promote", "participants": f"{a}@s.whatsapp.net"},
    )
    page = op.get(detail_url).content.decode()
    row = page[page.index(f'data-participant="{a}@s.whatsapp.net"') :]
    assert 'data-role="admin"' in row[: row.index("</tr>")]
    listing = op.get(reverse("groups:list", args=[device.pk])).content.decode()
    assert "Dashboard team" in listing
    # Settings, invite link and leave.
    op.post(reverse("groups:settings", args=[device.pk, group_jid, "announce"]), {"value": "on"})
    assert "data-announce" in op.get(detail_url).content.decode()
    invite = op.post(
        reverse("groups:invite", args=[device.pk, group_jid]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "https://chat.whatsapp.com/" in invite
    pushed = "".join(live.render_event(event="group.settings", device=device, data={"group_id": group_jid}))
    assert 'hx-trigger="load"' in pushed


def test_join_a_group_by_invite_link(wa, org, op):
    device = wa.linked_device(org)
    group = next(g for g in wa.sandbox.network_summary()["groups"] if not g["join_approval"])
    response = op.post(reverse("groups:join", args=[device.pk]), {"link": group["invite_link"]})
    assert response.status_code == 302
    assert group["name"] in op.get(response["Location"]).content.decode()


def test_profile_sections_and_lookup(wa, org, op):
    device = wa.linked_device(org)
    for section in ("avatar", "privacy", "contacts", "newsletters"):
        body = op.get(reverse("messaging:profile_section", args=[device.pk, section])).content.decode()
        assert "field-error" not in body, (section, body)
    peer = wa.peers[0]
    body = op.get(reverse("messaging:profile_lookup", args=[device.pk]), {"phone": peer}).content.decode()
    assert 'data-on-whatsapp="yes"' in body
    body = op.get(
        reverse("messaging:profile_lookup", args=[device.pk]), {"phone": wa.sandbox.unregistered_phone()}
    ).content.decode()
    assert 'data-on-whatsapp="no"' in body
    response = op.post(reverse("messaging:profile_push_name", args=[device.pk]), {"push_name": "Destek"})
    assert response.status_code == 302
    assert Device.objects.get(pk=device.pk).push_name == "Destek"


def test_join_requests_are_listed_and_approved(wa, org, op):
    device = wa.linked_device(org)
    a, b, c = wa.peers[0], wa.peers[1], wa.peers[2]
    response = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Approvals", "participants": f"{a}, {b}"}
    )
    detail_url = response["Location"]
    group_jid = detail_url.rstrip("/").split("/")[-1]
    wa.sandbox.set_join_approval(group=group_jid, approval=True)
    wa.sandbox.peer_join_request(from_phone=c, group=group_jid)
    wa.wait_event("group.join_request", device=device, since_start=True)
    page = op.get(detail_url).content.decode()
    assert 'id="join-requests"' in page and f"{c}@s.whatsapp.net" in page
    op.post(
        reverse("groups:requests", args=[device.pk, group_jid]),
        {"answer": "approve", "participants": f"{c}@s.whatsapp.net"},
    )
    page = op.get(detail_url).content.decode()
    assert f'data-participant="{c}@s.whatsapp.net"' in page and 'id="join-requests"' not in page


def test_leave_a_group(wa, org, op):
    device = wa.linked_device(org)
    response = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Short lived", "participants": wa.peers[0]}
    )
    group_jid = response["Location"].rstrip("/").split("/")[-1]
    response = op.post(reverse("groups:leave", args=[device.pk, group_jid]))
    assert response["Location"] == reverse("groups:list", args=[device.pk])
    assert "Short lived" not in op.get(reverse("groups:list", args=[device.pk])).content.decode()


def test_newsletters_are_listed_and_unfollowed(wa, org, op):
    device = wa.linked_device(org)
    newsletter = wa.sandbox.network_summary()["newsletters"][0]
    wa.sandbox.follow_newsletter(phone=device.phone, jid=newsletter["jid"])
    url = reverse("messaging:profile_section", args=[device.pk, "newsletters"])
    assert newsletter["name"] in op.get(url).content.decode()
    op.post(reverse("messaging:profile_unfollow", args=[device.pk]), {"newsletter_id": newsletter["jid"]})
    assert newsletter["name"] not in op.get(url).content.decode()


def test_change_the_avatar(wa, org, op):
    from django.core.files.uploadedfile import SimpleUploadedFile

    device = wa.linked_device(org)
    image = SimpleUploadedFile("me.png", wa.sandbox.identicon("me"), "image/png")
    response = op.post(reverse("messaging:profile_avatar", args=[device.pk]), {"avatar": image}, follow=True)
    assert "Avatar changed" in response.content.decode()
    body = op.get(reverse("messaging:profile_section", args=[device.pk, "avatar"])).content.decode()
    assert "<img" in body


def test_rename_reconnect_log_out_and_remove(wa, org, op):
    device = wa.linked_device(org)
    op.post(reverse("messaging:device_rename", args=[device.pk]), {"name": "Renamed line"})
    device.refresh_from_db()
    assert device.name == "Renamed line"
    response = op.post(reverse("messaging:device_reconnect", args=[device.pk]), follow=True)
    assert "field-error" not in response.content.decode()
    wa.wait_event("device.connected", device=device)
    # Logging out and removing are for owners and admins (messaging.services.devices).
    assert op.post(reverse("messaging:device_logout", args=[device.pk])).status_code == 403
    admin = client_for(add_member(org, "admin"))
    admin.post(reverse("messaging:device_logout", args=[device.pk]), HTTP_HX_REQUEST="true")
    wa.wait_event("device.logged_out", device=device, since_start=True)
    device.refresh_from_db()
    assert device.status == "logged_out"
    response = admin.post(reverse("messaging:device_remove", args=[device.pk]), HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("messaging:devices")
    assert not org.devices.filter(pk=device.pk).exists()


def test_typing_is_pushed_and_mark_all_read_clears_the_unread_count(wa, org, op):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    for text in ("one", "two"):
        wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text=text)
        data = wa.wait_event("message", device=device, predicate=lambda d, t=text: d["text"] == t)
    chat = Chat.objects.get(pk=data["chat_pk"])
    assert chat.unread_count == 2
    wa.sandbox.peer_typing(from_phone=peer, chat=device.jid)
    typing = wa.wait_event("chat.presence", device=device)
    pushed = "".join(live.render_event(event="chat.presence", device=device, data=typing))
    assert f'id="chat-{chat.pk}-typing"' in pushed and "typing…" in pushed
    page = op.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    assert 'id="mark-chat-read"' in page
    latest = Message.objects.get(device=device, text="two")
    op.post(reverse("messaging:message_action", args=[device.pk, chat.pk, latest.pk, "read"]))
    chat.refresh_from_db()
    assert chat.unread_count == 0
    assert (
        'id="mark-chat-read"'
        not in op.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    )


def test_received_media_is_shown_and_downloaded(wa, org, op):
    device = wa.linked_device(org)
    peer = wa.sandbox.peer_phones("media")[0]
    op.post(
        reverse("messaging:compose", args=[device.pk]),
        {"kind": "text", "to": peer, "text": "send me a picture"},
    )
    data = wa.wait_event("message", device=device, predicate=lambda d: d["kind"] == "image", timeout=15)
    message = Message.objects.get(pk=data["message_pk"])
    download = reverse("messaging:message_download", args=[device.pk, message.chat_id, message.pk])
    page = op.get(reverse("messaging:conversation", args=[device.pk, message.chat_id])).content.decode()
    assert f'src="{download}"' in page or f'href="{download}"' in page
    response = op.get(download)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body[:4] == b"\x89PNG" or len(body) > 0


def test_group_name_topic_photo_and_locked(wa, org, op):
    from django.core.files.uploadedfile import SimpleUploadedFile

    device = wa.linked_device(org)
    response = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Settings", "participants": wa.peers[0]}
    )
    detail_url = response["Location"]
    jid = detail_url.rstrip("/").split("/")[-1]
    op.post(reverse("groups:settings", args=[device.pk, jid, "name"]), {"name": "Settings renamed"})
    op.post(reverse("groups:settings", args=[device.pk, jid, "topic"]), {"topic": "All about settings"})
    op.post(reverse("groups:settings", args=[device.pk, jid, "locked"]), {"value": "on"})
    photo = SimpleUploadedFile("g.png", wa.sandbox.identicon("g"), "image/png")
    response = op.post(reverse("groups:photo", args=[device.pk, jid]), {"photo": photo}, follow=True)
    assert "Photo changed" in response.content.decode()
    page = op.get(detail_url).content.decode()
    assert "Settings renamed" in page and "All about settings" in page and "data-locked" in page
    op.post(reverse("groups:settings", args=[device.pk, jid, "locked"]), {"value": "off"})
    assert "data-locked" not in op.get(detail_url).content.decode()


# ------------------------------------------------------------------ the Devices page of other tabs, live


def _socket(wa, user, *, language=""):
    """A browser tab's live socket (/ws/live/, as the Devices page opens it), signed in as `user`."""
    from channels.testing import WebsocketCommunicator

    from waportal.asgi import application

    headers = [
        (b"origin", b"http://localhost"),
        (b"cookie", f"sessionid={client_for(user).cookies['sessionid'].value}".encode()),
    ]
    if language:
        headers.append((b"accept-language", language.encode()))

    async def connect():
        communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        return communicator

    return wa.run(connect())


def _next_frame(wa, socket, wanted: str) -> str:
    """The first pushed frame containing `wanted` (others, e.g. linking progress, are skipped)."""
    while True:
        html = wa.run(socket.receive_from(timeout=10), timeout=15)
        if wanted in html:
            return html


def test_a_number_added_in_another_tab_appears_on_the_devices_page(wa, org, op):
    viewer = add_member(org, "viewer")
    operator_tab, viewer_tab = _socket(wa, add_member(org, "operator")), _socket(wa, viewer)
    page = client_for(viewer).get(reverse("messaging:devices")).content.decode()
    assert 'id="device-rows"' in page and 'id="devices-empty"' in page  # where the push lands

    response = op.post(reverse("messaging:device_create"), {"name": "Added elsewhere"})
    assert response.status_code == 302
    device = org.devices.get(name="Added elsewhere")
    row = f'id="device-{device.pk}-row"'
    html = _next_frame(wa, operator_tab, row)
    assert '<tbody hx-swap-oob="beforeend:#device-rows">' in html and "Added elsewhere" in html
    assert 'hx-swap-oob="delete:#devices-empty"' in html
    assert reverse("messaging:compose", args=[device.pk]) in html  # an operator may compose
    # The pushed row is the page's own row partial: what a reload shows (but for the status, which has moved on
    # meanwhile: adding a number starts linking it).
    reloaded = op.get(reverse("messaging:devices")).content.decode()
    reloaded = reloaded[reloaded.index(f"<tr {row}") :]

    def but_status(tr: str) -> str:
        tr = tr[: tr.index("</tr>") + 5]
        return re.sub(r'<span id="device-\d+-(status|meta)".*?</span>', "", tr, flags=re.S)

    assert but_status(html[html.index(f"<tr {row}") :]) == but_status(reloaded)
    html = _next_frame(wa, viewer_tab, row)
    assert (
        "Added elsewhere" in html and reverse("messaging:compose", args=[device.pk]) not in html
    )  # viewers cannot

    client_for(add_member(org, "owner")).post(reverse("messaging:device_remove", args=[device.pk]))
    html = _next_frame(wa, viewer_tab, f"delete:#device-{device.pk}-row")
    assert f'id="device-{device.pk}-link"' in html and "data-removed" in html  # its own page says so
    assert 'id="devices-empty"' in html  # it was the last: "No numbers yet." comes back
    for socket in (operator_tab, viewer_tab):
        wa.run(socket.disconnect())


def test_another_organizations_new_number_is_not_pushed(wa, org, other_org, outsider, op):
    theirs_tab = _socket(wa, outsider)
    op.post(reverse("messaging:device_create"), {"name": "Ours only"})
    theirs = client_for(outsider).post(reverse("messaging:device_create"), {"name": "Theirs"})
    assert theirs.status_code == 302
    # The first frame the other organization's tab gets is about its own number, never ours.
    html = _next_frame(wa, theirs_tab, "hx-swap-oob")
    assert "Theirs" in html and "Ours only" not in html
    wa.run(theirs_tab.disconnect())


def test_a_pushed_row_speaks_the_language_of_the_tab(wa, org, op):
    tab = _socket(wa, add_member(org, "operator"), language="tr")
    op.post(reverse("messaging:device_create"), {"name": "Yeni hat"})
    html = _next_frame(wa, tab, "Yeni hat")
    assert "Gelen kutusu" in html and "Inbox" not in html
    wa.run(tab.disconnect())


def test_group_participants_show_names_and_formatted_numbers_not_jids(wa, org, op):
    from messaging.models import Contact
    from messaging.templatetags.dashboard import phone

    device = wa.linked_device(org)
    a, b = wa.peers[0], wa.peers[1]
    Contact.objects.create(organization=org, device=device, jid=f"{a}@s.whatsapp.net", name="Saved Name")
    response = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Named team", "participants": f"{a}, {b}"}
    )
    page = op.get(response["Location"]).content.decode()
    row = page[page.index(f'data-participant="{a}@s.whatsapp.net"') :]
    row = row[: row.index("</tr>")]
    assert "Saved Name" in row and phone(a) in row and f">{a}@s.whatsapp.net" not in row
    other = page[page.index(f'data-participant="{b}@s.whatsapp.net"') :]
    assert phone(b) in other[: other.index("</tr>")]
