"""The conversation view a support team reads all day: pictures as thumbnails that open full size, players for
sound and film, locations on a map, polls with their votes, deleted messages without star or reactions, and
the chat's avatar. Messages are stored directly (no session worker), except where a peer acts live."""

import pytest
from django.urls import reverse

from messaging import live
from messaging.models import Contact, Message
from messaging.services import downloads
from tests.conftest import add_member, client_for
from tests.pages.conftest import make_chat, make_device, make_message

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\0" * 64
OGG = b"OggS" + b"\0" * 64


def _media(chat, kind, data, filename):
    message = make_message(
        chat, text="", kind=kind, media_filename=filename, media_mime="application/x-whatever"
    )
    downloads.store_media(message, data)
    message.refresh_from_db()
    return message


def _page(client, chat):
    response = client.get(reverse("messaging:conversation", args=[chat.device_id, chat.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _bubble(page: str, message) -> str:
    """What a message's bubble shows (up to its action menu or its download link)."""
    start = page.index(f'id="msg-{message.pk}"')
    ends = ('<details class="msg-actions', '<a class="msg-download"', 'id="msg-', "</section>")
    return page[start : min(e for e in (page.find(end, start + 1) for end in ends) if e > 0)]


def _download(message) -> str:
    return reverse("messaging:message_download", args=[message.device_id, message.chat_id, message.pk])


# ------------------------------------------------------------------ pictures, sound and film


def test_a_picture_is_a_thumbnail_that_opens_the_full_size_file(operator_client, device):
    chat = make_chat(device)
    picture = _media(chat, "image", PNG, "photo.png")
    bubble = _bubble(_page(operator_client, chat), picture)
    url = _download(picture)
    assert f'<a class="msg-thumb" href="{url}" target="_blank" rel="noopener"' in bubble
    assert f'<img class="msg-media" src="{url}"' in bubble and 'loading="lazy"' in bubble
    # The link opens the picture itself, shown inline (the download service's word).
    response = operator_client.get(url)
    assert response["Content-Type"] == "image/png" and not response["Content-Disposition"].startswith(
        "attachment"
    )


def test_sound_and_film_get_players_only_when_served_inline(operator_client, device):
    chat = make_chat(device)
    film, sound = _media(chat, "video", MP4, "clip.mp4"), _media(chat, "audio", OGG, "note.ogg")
    fake = _media(chat, "video", b"<html><script>alert(1)</script></html>", "clip.mp4")  # not a film
    page = _page(operator_client, chat)
    assert f'<video class="msg-media msg-video" controls preload="metadata" src="{_download(film)}"' in page
    assert f'<audio controls preload="none" src="{_download(sound)}"' in page
    assert "<video" not in _bubble(page, fake) and "clip.mp4" in _bubble(page, fake)
    assert operator_client.get(_download(fake))["Content-Disposition"].startswith("attachment")


def test_a_picture_whose_bytes_are_not_one_is_no_thumbnail(operator_client, device):
    chat = make_chat(device)
    fake = _media(chat, "image", b"just text, said to be a picture", "photo.png")
    bubble = _bubble(_page(operator_client, chat), fake)
    assert "<img" not in bubble and "photo.png" in bubble


# ------------------------------------------------------------------ locations


def test_a_location_links_to_openstreetmap_with_its_name(operator_client, device):
    chat = make_chat(device)
    named = make_message(
        chat, text="Galata Kulesi", kind="location", payload={"latitude": 41.025631, "longitude": 28.974153}
    )
    bare = make_message(chat, text="", kind="location", payload={"latitude": -33.8568, "longitude": 151.2153})
    broken = make_message(chat, text="", kind="location", payload={"latitude": "north", "longitude": None})
    page = _page(operator_client, chat)
    bubble = _bubble(page, named)
    assert (
        '<a href="https://www.openstreetmap.org/?mlat=41.025631&amp;mlon=28.974153#map=16/41.025631/28.974153"'
        in bubble
    )
    assert ">Galata Kulesi</a>" in bubble and 'target="_blank" rel="noopener noreferrer"' in bubble
    assert bubble.count("Galata Kulesi") == 1  # the name is the link, not repeated as a text
    assert "mlat=-33.856800&amp;mlon=151.215300#map=16/-33.856800/151.215300" in _bubble(page, bare)
    assert ">Location</a>" in _bubble(page, bare)
    assert "openstreetmap" not in _bubble(page, broken)


# ------------------------------------------------------------------ polls


def _poll(chat, votes):
    return make_message(
        chat,
        text="",
        kind="poll",
        payload={"poll_question": "Lunch?", "poll_options": ["Kebab", "Pide", "Salad"], "poll_votes": votes},
    )


def test_a_poll_shows_its_options_with_who_voted_by_name(operator_client, device, org):
    chat = make_chat(device, jid="905550000001@g.us", name="Team")
    ayse, mehmet = "905551110001@s.whatsapp.net", "905551110002@s.whatsapp.net"
    Contact.objects.create(organization=org, device=device, jid=ayse, name="Ayşe")
    poll = _poll(chat, {ayse: ["Pide", "Salad"], mehmet: ["Pide"]})
    bubble = _bubble(_page(operator_client, chat), poll)
    assert "Lunch?" in bubble and 'data-voters="2"' in bubble
    pide = bubble[
        bubble.index('data-option="Pide"') : bubble.index("</li>", bubble.index('data-option="Pide"'))
    ]
    assert 'data-votes="2"' in pide and "Ayşe" in pide and "+90 555 111 00 02" in pide
    assert "@s.whatsapp.net" not in bubble
    assert 'data-option="Kebab" data-votes="0"' in bubble
    assert "2 people voted" in bubble


def test_a_conversation_page_looks_names_up_once_however_many_polls(
    operator_client, device, django_assert_max_num_queries
):
    chat = make_chat(device, jid="905550000002@g.us", name="Big team")
    for i in range(3):
        _poll(chat, {f"90555222{j:04d}@s.whatsapp.net": ["Kebab"] for j in range(i * 5, i * 5 + 5)})
    _page(operator_client, chat)
    with django_assert_max_num_queries(20) as first:
        _page(operator_client, chat)
    for i in range(10):
        _poll(chat, {f"90555333{i:04d}@s.whatsapp.net": ["Salad"]})
    with django_assert_max_num_queries(len(first.captured_queries)):
        _page(operator_client, chat)


@pytest.mark.django_db(transaction=True)
def test_a_peer_votes_and_the_open_conversation_updates_live(wa, org):
    from tests.pages.test_pages_live import _next_frame, _socket

    device = wa.linked_device(org)
    peer = wa.peers[0]
    poll_id = wa.sandbox.peer_send(
        from_phone=peer,
        to_jid=device.jid,
        kind="poll",
        poll_question="Lunch?",
        poll_options=["Kebab", "Pide"],
    )
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == poll_id)
    poll = Message.objects.get(device=device, wa_id=poll_id)
    member = add_member(org, "operator")
    assert "Lunch?" in _page(client_for(member), poll.chat)
    tab = _socket(wa, member)

    wa.sandbox.peer_vote(from_phone=peer, chat=device.jid, message_id=poll_id, options=["Pide"])
    data = wa.wait_event("message.poll_vote", device=device)
    assert data["message_pk"] == poll.pk and data["poll_selected"] == ["Pide"]
    html = _next_frame(wa, tab, f'id="msg-{poll.pk}" hx-swap-oob="true"')
    assert 'data-option="Pide" data-votes="1"' in html and 'data-option="Kebab" data-votes="0"' in html
    poll.refresh_from_db()
    assert poll.payload["poll_votes"] == {f"{peer}@s.whatsapp.net": ["Pide"]}

    # A changed mind replaces the vote.
    wa.sandbox.peer_vote(from_phone=peer, chat=device.jid, message_id=poll_id, options=["Kebab"])
    html = _next_frame(wa, tab, 'data-option="Kebab" data-votes="1"')
    assert 'data-option="Pide" data-votes="0"' in html
    wa.run(tab.disconnect())


def test_a_poll_vote_is_a_live_and_a_webhook_event():
    from messaging import webhooks
    from messaging.models import WEBHOOK_EVENTS

    assert "message.poll_vote" in live.CHANGED_MESSAGE_EVENTS
    assert webhooks.EVENT_NAMES["message.poll_vote"] == "message.poll_vote"
    assert "message.poll_vote" in WEBHOOK_EVENTS  # an endpoint can subscribe to it


# ------------------------------------------------------------------ deleted for everyone


def test_a_deleted_message_shows_no_star_or_reactions(operator_client, device):
    chat = make_chat(device)
    gone = make_message(chat, text="oops", starred=True, reactions={chat.jid: "👍"})
    Message.objects.filter(pk=gone.pk).update(revoked_at=gone.timestamp)
    bubble = _bubble(_page(operator_client, chat), gone)
    assert "This message was deleted." in bubble
    assert "msg-star" not in bubble and "msg-reactions" not in bubble and "👍" not in bubble


@pytest.mark.parametrize(
    ("action", "data", "problem"),
    [
        ("star", {}, "cannot be starred"),
        ("react", {"emoji": "👍"}, "cannot be reacted to"),
    ],
)
def test_a_deleted_message_cannot_be_starred_or_reacted_to(operator_client, device, action, data, problem):
    chat = make_chat(device)
    gone = make_message(chat, text="oops")
    Message.objects.filter(pk=gone.pk).update(revoked_at=gone.timestamp)
    url = reverse("messaging:message_action", args=[device.pk, chat.pk, gone.pk, action])
    body = operator_client.post(url, data, HTTP_HX_REQUEST="true").content.decode()
    assert 'class="field-error" role="alert"' in body and problem in body
    gone.refresh_from_db()
    assert not gone.starred and not gone.reactions


def test_the_api_shows_no_star_or_reactions_on_a_deleted_message(device):
    from messaging.selectors import message_row

    chat = make_chat(device)
    gone = make_message(chat, text="oops", starred=True, reactions={chat.jid: "👍"})
    Message.objects.filter(pk=gone.pk).update(revoked_at=gone.timestamp)
    gone.refresh_from_db()
    row = message_row(gone)
    assert (row["revoked"], row["starred"], row["reactions"]) == (True, False, {})


@pytest.mark.django_db(transaction=True)
def test_deleting_for_everyone_drops_star_and_reactions_from_the_stored_message(wa, org):
    from messaging.services import messages

    device = wa.linked_device(org)
    peer = wa.sandbox.peer_phones("quiet")[0]
    theirs_id = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="never mind")
    wa.wait_event("message", device=device, predicate=lambda d: d["id"] == theirs_id)
    kwargs = {
        "organization": org,
        "device": device,
        "chat": f"{peer}@s.whatsapp.net",
        "message_id": theirs_id,
    }
    messages.star_message(**kwargs)
    messages.react_message(**kwargs, emoji="❤️")
    wa.sandbox.peer_react(from_phone=peer, chat=device.jid, message_id=theirs_id, emoji="👍")
    wa.wait_event("message.reaction", device=device, predicate=lambda d: d["reacted_message_id"] == theirs_id)
    theirs = Message.objects.get(device=device, wa_id=theirs_id)
    assert theirs.starred and len(theirs.reactions) == 2

    wa.sandbox.peer_revoke(from_phone=peer, chat=device.jid, message_id=theirs_id)
    wa.wait_event("message.revoked", device=device, predicate=lambda d: d["target_id"] == theirs_id)
    theirs.refresh_from_db()
    assert theirs.revoked_at and not theirs.starred and theirs.reactions == {}


# ------------------------------------------------------------------ avatars


def test_the_conversation_header_has_the_chats_avatar_over_its_initials(operator_client, device):
    chat = make_chat(device, jid="905551110003@s.whatsapp.net", name="Ayşe Yılmaz")
    page = _page(operator_client, chat)
    head = page[
        page.index('class="conversation-head"') : page.index("</header>", page.index("conversation-head"))
    ]
    url = reverse("messaging:avatar", args=[device.pk, chat.jid])
    assert '<span class="avatar-badge" aria-hidden="true"><span>AY</span>' in head
    assert f'<img src="{url}" alt="" loading="lazy"' in head


@pytest.mark.parametrize("status", ["connected", "disconnected"])
def test_an_avatar_that_cannot_be_had_is_a_transparent_pixel(operator_client, device, status):
    # No session worker holds the number, or it is not connected: the initials beneath show, nothing looks
    # broken.
    device.status = status
    device.save(update_fields=["status"])
    response = operator_client.get(
        reverse("messaging:avatar", args=[device.pk, "905551110003@s.whatsapp.net"])
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")


def test_another_organizations_avatar_route_is_not_found(outsider_client, device):
    url = reverse("messaging:avatar", args=[device.pk, "905551110003@s.whatsapp.net"])
    assert outsider_client.get(url).status_code == 404
    assert outsider_client.get(reverse("messaging:avatar", args=[device.pk, "not a jid"])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_peers_picture_is_served_and_group_participants_have_avatars(wa, org):
    device = wa.linked_device(org)
    member = client_for(add_member(org, "operator"))
    a, b = wa.peers[0], wa.peers[1]
    picture = member.get(reverse("messaging:avatar", args=[device.pk, f"{a}@s.whatsapp.net"]))
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    assert picture["X-Content-Type-Options"] == "nosniff"

    response = member.post(
        reverse("groups:create", args=[device.pk]), {"name": "Pictured team", "participants": f"{a}, {b}"}
    )
    page = member.get(response["Location"]).content.decode()
    row = page[page.index(f'data-participant="{a}@s.whatsapp.net"') :]
    row = row[: row.index("</tr>")]
    assert 'class="avatar-badge"' in row
    assert reverse("messaging:avatar", args=[device.pk, f"{a}@s.whatsapp.net"]) in row


def test_initials_of_names():
    from messaging.templatetags.dashboard import initials

    assert initials("Ayşe Yılmaz") == "AY"
    assert initials("Kitchen") == "K"
    assert initials("+90 555 111 00 02") == "#"
    assert initials("") == "#"


@pytest.mark.parametrize("action", ["download", "menu", "react", "star", "revoke"])
def test_a_messages_action_urls_are_those_the_url_conf_gives(action, org):
    from django.urls import set_script_prefix

    from messaging.templatetags.dashboard import conversation_url, message_url

    message = make_message(make_chat(make_device(org, status="connected")))
    name = {"download": "messaging:message_download", "menu": "messaging:message_menu"}.get(
        action, "messaging:message_action"
    )
    args = [message.device_id, message.chat_id, message.pk] + (
        [] if action in ("download", "menu") else [action]
    )
    chat_args = [message.device_id, message.chat_id]
    assert message_url(message, action) == reverse(name, args=args)
    assert conversation_url(message.chat) == reverse("messaging:conversation", args=chat_args)
    set_script_prefix("/mounted/")  # behind a proxy that mounts the app under a path
    try:
        assert message_url(message, action) == reverse(name, args=args)
        assert message_url(message, action).startswith("/mounted/")
        assert conversation_url(message.chat) == reverse("messaging:conversation", args=chat_args)
    finally:
        set_script_prefix("/")


# ------------------------------------------------------------------ the ⋯ menu, fetched when opened


def _menu_url(message) -> str:
    return reverse("messaging:message_menu", args=[message.device_id, message.chat_id, message.pk])


def test_the_menu_is_fetched_when_opened_with_the_actions_that_fit_the_message(operator_client, device):
    chat = make_chat(device)
    mine = make_message(chat, from_me=True, text="my words", starred=True)
    theirs = make_message(chat, from_me=False, text="their words")
    page = _page(operator_client, chat)
    # On the page, each message has only the ⋯ that loads its menu (the page was a fifth menus before).
    assert page.count('class="msg-actions write-only"') == 2 and "Delete for everyone" not in page
    assert f'hx-get="{_menu_url(mine)}" hx-trigger="toggle once"' in page

    menu = operator_client.get(_menu_url(mine)).content.decode()
    action = lambda name: reverse("messaging:message_action", args=[device.pk, chat.pk, mine.pk, name])  # noqa: E731
    assert f'hx-post="{action("revoke")}"' in menu and f'hx-post="{action("unstar")}"' in menu
    assert 'value="my words"' in menu and 'data-reply-to="' in menu and 'value="👍"' in menu
    assert "Mark read" not in menu and f'hx-post="{action("star")}"' not in menu

    theirs_menu = operator_client.get(_menu_url(theirs)).content.decode()
    assert (
        "Mark read" in theirs_menu
        and "Delete for everyone" not in theirs_menu
        and 'name="text"' not in theirs_menu
    )


def test_the_menu_is_refused_to_viewers_and_to_other_organizations(
    viewer_client, owner_client, device, other_device
):
    message = make_message(make_chat(device), from_me=True)
    theirs = make_message(make_chat(other_device), from_me=True)
    assert viewer_client.get(_menu_url(message)).status_code == 403
    assert owner_client.get(_menu_url(theirs)).status_code == 404
    # their message under our number's URL is not found either
    wrong = reverse("messaging:message_menu", args=[device.pk, theirs.chat_id, theirs.pk])
    assert owner_client.get(wrong).status_code == 404
    assert owner_client.post(_menu_url(message)).status_code == 405


@pytest.mark.parametrize(
    "jid",
    [
        "905551112233@s.whatsapp.net",
        "120363025246125486@g.us",
        "123456789@lid",
        "a b%?#&é@weird",
        "x/y@s.whatsapp.net",
    ],
)
def test_an_avatars_url_is_the_one_the_url_conf_gives_for_any_jid(jid):
    from django.urls import NoReverseMatch

    from messaging.templatetags.dashboard import avatar

    try:
        expected = reverse("messaging:avatar", args=[7, jid])
    except NoReverseMatch:  # (a "/" no JID has: refused as reverse() refuses it)
        with pytest.raises(NoReverseMatch):
            avatar(7, jid, "Name")
        return
    assert f'src="{expected}"' in avatar(7, jid, "Name").replace("&amp;", "&")
