"""Inbox and conversation: roles, tenancy, search, unread counts, keyset pagination, bounded queries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging.models import Message
from tests.pages.conftest import make_chat, make_history, make_message

ROLES = ["owner_client", "operator_client", "viewer_client"]


@pytest.mark.parametrize("who", ROLES)
def test_inbox_and_conversation_render_for_each_role(request, who, device):
    client = request.getfixturevalue(who)
    chat = make_chat(device, name="Ayşe", unread=3)
    make_message(chat, text="merhaba")
    inbox = client.get(reverse("messaging:inbox", args=[device.pk]))
    assert inbox.status_code == 200
    body = inbox.content.decode()
    assert "Ayşe" in body and 'data-unread="3"' in body
    conv = client.get(reverse("messaging:conversation", args=[device.pk, chat.pk]))
    assert conv.status_code == 200
    body = conv.content.decode()
    assert "merhaba" in body
    assert ('id="send-form"' in body) == (who != "viewer_client")


def test_other_organizations_inbox_and_chats_are_404(owner_client, other_device):
    chat = make_chat(other_device)
    message = make_message(chat)
    assert owner_client.get(reverse("messaging:inbox", args=[other_device.pk])).status_code == 404
    assert (
        owner_client.get(reverse("messaging:conversation", args=[other_device.pk, chat.pk])).status_code
        == 404
    )
    url = reverse("messaging:message_action", args=[other_device.pk, chat.pk, message.pk, "star"])
    assert owner_client.post(url).status_code == 404
    assert (
        owner_client.get(
            reverse("messaging:message_download", args=[other_device.pk, chat.pk, message.pk])
        ).status_code
        == 404
    )


def test_a_chat_of_another_device_is_404_even_in_the_same_url_shape(owner_client, device, other_device):
    theirs = make_chat(other_device)
    assert owner_client.get(reverse("messaging:conversation", args=[device.pk, theirs.pk])).status_code == 404


@pytest.mark.parametrize("action", ["react", "edit", "revoke", "delete", "read", "star", "unstar"])
def test_viewer_cannot_act_on_messages(viewer_client, device, action):
    chat = make_chat(device)
    message = make_message(chat, from_me=True, text="original")
    url = reverse("messaging:message_action", args=[device.pk, chat.pk, message.pk, action])
    assert viewer_client.post(url, {"emoji": "👍", "text": "changed"}).status_code == 403
    message.refresh_from_db()
    assert (
        message.text == "original"
        and not message.starred
        and message.revoked_at is None
        and not message.reactions
    )


def test_viewer_cannot_send_from_the_conversation(viewer_client, device):
    chat = make_chat(device)
    response = viewer_client.post(
        reverse("messaging:chat_send", args=[device.pk, chat.pk]), {"text": "hello"}
    )
    assert response.status_code == 403
    assert not Message.objects.filter(chat=chat).exists()


def test_search_finds_chats_by_name_and_number(owner_client, device):
    make_chat(device, name="Mehmet")
    make_chat(device, name="Zeynep", jid="905557778899@s.whatsapp.net")
    body = owner_client.get(reverse("messaging:inbox", args=[device.pk]), {"q": "meh"}).content.decode()
    assert "Mehmet" in body and "Zeynep" not in body
    body = owner_client.get(reverse("messaging:inbox", args=[device.pk]), {"q": "7778"}).content.decode()
    assert "Zeynep" in body and "Mehmet" not in body


def test_chats_page_by_keyset_with_no_repeats(owner_client, device):
    from messaging.views.inbox import CHATS_PER_PAGE as N

    now = timezone.now()
    chats = [make_chat(device, name=f"Chat {i:02d}", when=now - timedelta(minutes=i)) for i in range(N + 15)]
    first = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    assert "Chat 00" in first and f"Chat {N - 1:02d}" in first and f"Chat {N:02d}" not in first
    assert 'hx-trigger="click, intersect once"' in first  # the next page loads as the list is scrolled to it
    cursor = first.split("?after=")[1].split("&")[0]
    from urllib.parse import unquote

    second = owner_client.get(
        reverse("messaging:inbox", args=[device.pk]), {"after": unquote(cursor)}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert f"Chat {N:02d}" in second and f"Chat {N + 14:02d}" in second and f"Chat {N - 1:02d}" not in second
    assert "More chats" not in second
    assert len(chats) == N + 15


def test_conversation_opens_on_the_newest_page_and_pages_back(owner_client, device):
    from messaging.views.inbox import MESSAGES_PER_PAGE as N

    chat = make_chat(device)
    make_history(chat, 100)
    body = owner_client.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    first, second = 100 - N, 100 - 2 * N  # the oldest message of each page
    assert "message number 99" in body and f"message number {first}<" in body
    assert f"message number {first - 1}<" not in body
    assert body.index(f"message number {first}<") < body.index("message number 99")  # oldest first on screen
    cursor = body.split("?before=")[1].split('"')[0]
    from urllib.parse import unquote

    older = owner_client.get(
        reverse("messaging:conversation", args=[device.pk, chat.pk]),
        {"before": unquote(cursor)},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert f"message number {first - 1}<" in older and f"message number {second}<" in older
    assert f"message number {second - 1}<" not in older and f"message number {first}<" not in older
    assert "Older messages" in older


def test_conversation_queries_do_not_grow_with_history(owner_client, device, django_assert_max_num_queries):
    chat = make_chat(device)
    make_history(chat, 300)
    # 12, and 4 for the organisation bar and the list's chips: the number's labels, the chat's, the members,
    # the listed chats' labels (messaging.views.labels.state_context).
    with django_assert_max_num_queries(16):
        response = owner_client.get(reverse("messaging:conversation", args=[device.pk, chat.pk]))
    assert response.status_code == 200


def test_inbox_queries_do_not_grow_with_chats(owner_client, device, django_assert_max_num_queries):
    for i in range(40):
        make_chat(device, name=f"c{i}", unread=i)
    with django_assert_max_num_queries(12):
        assert owner_client.get(reverse("messaging:inbox", args=[device.pk])).status_code == 200


def test_ticks_show_each_status(owner_client, device):
    chat = make_chat(device)
    for status in ("queued", "sent", "delivered", "read", "failed"):
        make_message(chat, from_me=True, status=status, text=f"s-{status}")
    body = owner_client.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    for status in ("queued", "sent", "delivered", "read", "failed"):
        assert f'data-status="{status}"' in body


def test_deleted_for_me_messages_are_hidden(owner_client, device):
    chat = make_chat(device)
    make_message(chat, text="keep me")
    make_message(chat, text="gone for me", deleted_for_me_at=timezone.now())
    body = owner_client.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    assert "keep me" in body and "gone for me" not in body


def test_an_action_on_an_unconnected_number_is_refused_next_to_the_message(operator_client, device):
    chat = make_chat(device)
    message = make_message(chat)
    url = reverse("messaging:message_action", args=[device.pk, chat.pk, message.pk, "star"])
    response = operator_client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="msg-{message.pk}"' in body and "field-error" in body
    message.refresh_from_db()
    assert not message.starred


def test_download_serves_stored_media(owner_client, viewer_client, device):
    from django.core.files.base import ContentFile

    chat = make_chat(device)
    message = make_message(
        chat, text="", kind="document", media_filename="report.pdf", media_mime="application/pdf"
    )
    message.media.save("report.pdf", ContentFile(b"%PDF-1.4 test"), save=True)
    response = viewer_client.get(reverse("messaging:message_download", args=[device.pk, chat.pk, message.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 test"


def test_the_conversation_shows_no_stray_flash(owner_client, device):
    chat = make_chat(device)
    make_message(chat, text="plain")
    body = owner_client.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    assert 'class="flash' not in body


def _queries(client, url, params=None) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params or {}).status_code == 200
    return len(captured.captured_queries)


def test_conversation_query_count_is_the_same_for_a_short_and_a_long_history(owner_client, device):
    short, long = make_chat(device), make_chat(device)
    make_history(short, 10)
    make_history(long, 2000)
    url = lambda chat: reverse("messaging:conversation", args=[device.pk, chat.pk])  # noqa: E731
    _queries(owner_client, url(short))  # warm the session
    deep = Message.objects.filter(chat=long).order_by("-timestamp", "-id")[1500]
    from messaging.views.inbox import encode_cursor

    counts = {
        _queries(owner_client, url(short)),
        _queries(owner_client, url(long)),
        _queries(owner_client, url(long), {"before": encode_cursor(deep.timestamp, deep.pk)}),
    }
    assert len(counts) == 1, counts


def test_deep_older_page_is_the_right_one(owner_client, device):
    chat = make_chat(device)
    make_history(chat, 500)
    deep = Message.objects.filter(chat=chat).order_by("-timestamp", "-id")[300]  # message number 199
    from messaging.views.inbox import encode_cursor

    older = owner_client.get(
        reverse("messaging:conversation", args=[device.pk, chat.pk]),
        {"before": encode_cursor(deep.timestamp, deep.pk)},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    from messaging.views.inbox import MESSAGES_PER_PAGE as N

    oldest = 199 - N  # the page holds the N messages before number 199
    assert "message number 198<" in older and f"message number {oldest}<" in older
    assert "message number 199<" not in older and f"message number {oldest - 1}<" not in older


def test_inbox_query_count_is_the_same_for_few_and_many_chats(owner_client, device):
    url = reverse("messaging:inbox", args=[device.pk])
    for i in range(5):
        make_chat(device, name=f"c{i}")
    _queries(owner_client, url)  # warm the session
    few = _queries(owner_client, url)
    for i in range(200):
        make_chat(device, name=f"more {i}")
    chats = list(device.chats.order_by("-last_message_at", "-id"))
    from messaging.views.inbox import encode_cursor

    after = encode_cursor(chats[150].last_message_at, chats[150].pk)
    assert _queries(owner_client, url) == few
    assert _queries(owner_client, url, {"after": after}) == few


def test_opening_a_chat_clears_its_unread_count_and_its_row(owner_client, device):
    chat = make_chat(device, name="Ayşe", unread=4)
    make_message(chat, text="merhaba")
    url = reverse("messaging:conversation", args=[device.pk, chat.pk])
    pane = owner_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="conversation-pane").content.decode()
    chat.refresh_from_db()
    assert chat.unread_count == 0
    # The pane alone (the list stays), with the chat's row swapped in place without its badge.
    assert 'id="conversation-pane"' in pane and 'id="chat-list-body"' not in pane
    row = pane.split(f'id="chat-{chat.pk}-row"')[1].split("</a>")[0]
    assert 'hx-swap-oob="true"' in row and "data-unread" not in row
    # Already read: no row to swap the next time.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        again = owner_client.get(
            url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="conversation-pane"
        ).content.decode()
    assert "hx-swap-oob" not in again
    # Nor a write: on SQLite it would wait for the one write lock behind whatever is being stored.
    assert not [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "messaging_chat" in q["sql"]]


def test_a_conversation_opens_beside_the_chat_list(owner_client, device):
    open_chat = make_chat(device, name="Open one")
    make_chat(device, name="Another one")
    body = owner_client.get(
        reverse("messaging:conversation", args=[device.pk, open_chat.pk])
    ).content.decode()
    assert 'id="chat-list-body"' in body and "Another one" in body
    assert f'data-chat="{open_chat.pk}"' in body and "data-enter-sends" in body
    assert 'class="inbox has-chat"' in body
    inbox = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    assert "pane-empty" in inbox and "Choose a chat" in inbox


def test_filters_show_unread_chats_or_groups(owner_client, device):
    make_chat(device, name="Quiet person")
    make_chat(device, name="Loud person", unread=2)
    make_chat(device, name="Team group", jid="120363000000000001@g.us")
    from messaging.models import Chat

    Chat.objects.filter(name="Team group").update(is_group=True)
    url = reverse("messaging:inbox", args=[device.pk])
    unread = owner_client.get(url, {"filter": "unread"}).content.decode()
    assert "Loud person" in unread and "Quiet person" not in unread and "Team group" not in unread
    groups = owner_client.get(
        url, {"filter": "groups"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="chat-list-body"
    )
    body = groups.content.decode()
    assert "Team group" in body and "Loud person" not in body and 'data-filter="groups"' in body
    # Filter and search together; an unknown filter is no filter.
    assert "Loud person" not in owner_client.get(url, {"filter": "unread", "q": "quiet"}).content.decode()
    assert "Quiet person" in owner_client.get(url, {"filter": "bogus"}).content.decode()


def test_a_failed_reply_keeps_the_text_and_shows_an_error(operator_client, device, monkeypatch):
    from django.core.exceptions import ValidationError

    def refuse(**kwargs):
        raise ValidationError({"text": "too long for WhatsApp."})

    monkeypatch.setattr("messaging.services.outbox.queue_message", refuse)
    chat = make_chat(device)
    response = operator_client.post(
        reverse("messaging:chat_send", args=[device.pk, chat.pk]),
        {"text": "line one\nline two"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert "too long for WhatsApp." in body and 'role="alert"' in body
    assert ">line one\nline two</textarea>" in body


def test_chats_show_names_and_formatted_numbers_never_raw_jids(owner_client, device):
    from messaging.models import Contact

    named = make_chat(device, jid="905551112233@s.whatsapp.net")
    Contact.objects.create(organization=device.organization, device=device, jid=named.jid, push_name="Elif")
    unnamed = make_chat(device, jid="905554445566@s.whatsapp.net")
    inbox = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    assert "Elif" in inbox and "+90 555 444 55 66" in inbox
    assert ">905554445566@s.whatsapp.net<" not in inbox
    conv = owner_client.get(reverse("messaging:conversation", args=[device.pk, named.pk])).content.decode()
    assert "<h2>Elif</h2>" in conv and "+90 555 111 22 33" in conv
    assert unnamed.pk


def test_a_reply_refused_at_once_is_an_error_and_keeps_the_text(operator_client, device, monkeypatch):
    chat = make_chat(device)
    failed = make_message(chat, from_me=True, status="failed", text="x", error="number is banned")
    monkeypatch.setattr("messaging.services.outbox.queue_message", lambda **kwargs: failed)
    body = operator_client.post(
        reverse("messaging:chat_send", args=[device.pk, chat.pk]), {"text": "keep me"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'role="alert">number is banned' in body and ">keep me</textarea>" in body


def test_a_message_seen_in_the_open_conversation_clears_the_count(
    viewer_client, owner_client, device, other_device
):
    chat = make_chat(device, name="Open", unread=2)
    row = viewer_client.post(
        reverse("messaging:chat_seen", args=[device.pk, chat.pk]), HTTP_HX_REQUEST="true"
    )
    assert row.status_code == 200 and f'id="chat-{chat.pk}-row"' in row.content.decode()
    assert "data-unread" not in row.content.decode()
    chat.refresh_from_db()
    assert chat.unread_count == 0
    theirs = make_chat(other_device, unread=3)
    assert (
        owner_client.post(reverse("messaging:chat_seen", args=[other_device.pk, theirs.pk])).status_code
        == 404
    )
    theirs.refresh_from_db()
    assert theirs.unread_count == 3


def test_a_pushed_row_of_an_existing_chat_goes_to_the_top_with_its_name_count_and_preview(device):
    from messaging import live
    from messaging.models import Contact

    chat = make_chat(device, jid="905553334455@s.whatsapp.net", unread=1)
    Contact.objects.create(organization=device.organization, device=device, jid=chat.jid, name="Deniz")
    message = make_message(chat, text="newest words")
    chat.unread_count, chat.last_message_preview = 2, "newest words"
    chat.save()
    pushed = "".join(
        live.render_event(event="message", device=device, data={"message_pk": message.pk, "chat_pk": chat.pk})
    )
    row = pushed.split(f'hx-swap-oob="afterbegin:#chat-list-{device.pk}">')[1]
    assert row.lstrip().startswith(f'<a id="chat-{chat.pk}-row"')
    assert "Deniz" in row and 'data-unread="2"' in row and "newest words" in row


def test_a_group_message_with_no_push_name_shows_the_senders_number(owner_client, device):
    from messaging.models import Chat

    group = make_chat(device, name="Team", jid="120363000000000077@g.us")
    Chat.objects.filter(pk=group.pk).update(is_group=True)
    message = make_message(group, text="from a stranger")
    Message.objects.filter(pk=message.pk).update(sender_jid="905556667788@s.whatsapp.net", sender_name="")
    body = owner_client.get(reverse("messaging:conversation", args=[device.pk, group.pk])).content.decode()
    assert '<small class="msg-sender">+90 555 666 77 88</small>' in body


def test_inbox_rows_show_the_chats_picture_over_its_initials_without_asking_whatsapp(
    owner_client, device, monkeypatch
):
    from messaging import gateway

    def no_call(*args, **kwargs):  # a picture is fetched by the browser, lazily, never while the list renders
        raise AssertionError("the inbox asked WhatsApp while rendering")

    monkeypatch.setattr(gateway, "call", no_call)
    person = make_chat(device, jid="905551112233@s.whatsapp.net", name="Ayşe Yılmaz")
    group = make_chat(device, jid="120363000000000001@g.us", name="Destek ekibi")
    body = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    for chat, letters in ((person, "AY"), (group, "DE")):
        row = body.split(f'id="chat-{chat.pk}-row"')[1].split("</a>")[0]
        url = reverse("messaging:avatar", args=[device.pk, chat.jid])
        assert f'<img src="{url}" alt="" loading="lazy"' in row
        assert f"<span>{letters}</span>" in row  # the initials beneath, shown where there is no picture
    # The conversation's title has the same picture.
    pane = owner_client.get(reverse("messaging:conversation", args=[device.pk, person.pk])).content.decode()
    header = pane.split('class="conversation-head"')[1].split("</header>")[0]
    assert reverse("messaging:avatar", args=[device.pk, person.jid]) in header


def test_an_inbox_row_says_when_in_little_room(owner_client, device):
    now = timezone.localtime()
    today = make_chat(device, name="Today", when=now.replace(hour=9, minute=5, second=0))
    yesterday = make_chat(device, name="Yesterday", when=now - timedelta(days=1))
    long_ago = make_chat(device, name="Long ago", when=now.replace(year=now.year - 2, month=3, day=7))
    body = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()

    def when(chat):
        return body.split(f'id="chat-{chat.pk}-row"')[1].split('class="chat-when">')[1].split("</small>")[0]

    assert ">09:05</time>" in when(today)
    assert ">Yesterday</time>" in when(yesterday)
    from django.conf import settings

    owner_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "tr"
    turkish = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    assert ">Dün</time>" in turkish.split(f'id="chat-{yesterday.pk}-row"')[1].split("</small>")[0]
    del owner_client.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert f">03/07/{now.year - 2}</time>" in when(long_ago)
    # The full moment is one hover away.
    assert f'title="03/07/{now.year - 2}' in when(long_ago)
    earlier = now - timedelta(days=2)
    chat = make_chat(device, name="Earlier", when=earlier)
    body = owner_client.get(reverse("messaging:inbox", args=[device.pk])).content.decode()
    if earlier.year == now.year:  # earlier this year: the day and the month only
        assert f">{earlier.day} {earlier.strftime('%b')}</time>" in when(chat)
    else:
        assert f">{earlier.strftime('%m/%d/%Y')}</time>" in when(chat)
