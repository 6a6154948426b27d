"""Message search on SQLite goes through the FTS5 trigram index, stays right as messages change, and survives a
migration that remakes the messages table (PostgreSQL has its own full-text index: tests/api/test_chat_api.py)."""

import pytest
from django.db import connection

from messaging import history, sqlite_fts
from messaging.models import Message
from tests.pages.conftest import make_chat, make_device, make_message

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the FTS5 index is SQLite's"),
]


def _found(chat, term):
    return sorted(m.text for m in history.search_messages(Message.objects.filter(chat=chat), term))


@pytest.fixture
def chat(org):
    chat = make_chat(make_device(org, status="connected"))
    for text in ("Needle in a haystack", "just hay", "Dünya'ya merhaba", "hay again"):
        make_message(chat, text=text)
    return chat


def test_a_rare_term_is_found_through_the_index_in_any_case(chat):
    assert sqlite_fts.MESSAGES.usable("needle")
    assert _found(chat, "NEEDLE in") == ["Needle in a haystack"]
    assert _found(chat, "eedl") == ["Needle in a haystack"]  # any part of a word, as LIKE found it
    assert _found(chat, "DÜNYA") == ["Dünya'ya merhaba"]  # and any case beyond ASCII
    assert _found(chat, 'say "hi"') == []  # quotes are part of the term, not syntax


def test_an_edited_or_deleted_message_is_found_by_its_new_text_only(chat):
    message = chat.messages.get(text="just hay")
    Message.objects.filter(pk=message.pk).update(text="just straw")
    assert _found(chat, "straw") == ["just straw"] and _found(chat, "just hay") == []
    chat.messages.filter(text="just straw").delete()
    assert _found(chat, "straw") == []


def test_short_and_common_terms_take_the_like_walk_with_the_same_answer(chat, monkeypatch):
    assert not sqlite_fts.MESSAGES.usable("ha")
    assert _found(chat, "ha") == ["Dünya'ya merhaba", "Needle in a haystack", "hay again", "just hay"]
    monkeypatch.setattr(sqlite_fts, "COMMON_MATCHES", 2)
    assert not sqlite_fts.MESSAGES.usable("hay")
    assert _found(chat, "hay") == ["Needle in a haystack", "hay again", "just hay"]


def test_triggers_lost_to_a_table_remake_are_put_back_and_the_index_rebuilt(chat):
    with connection.cursor() as cursor:  # what a SQLite ALTER through a table remake does to triggers
        for name in sqlite_fts.MESSAGES.triggers:
            cursor.execute(f"DROP TRIGGER {name}")
    make_message(chat, text="written while the triggers were gone")
    assert sqlite_fts.ensure() is True
    assert _found(chat, "triggers were gone") == ["written while the triggers were gone"]
    assert sqlite_fts.ensure() is False  # nothing left to do


# ------------------------------------------------------------------ chats (the inbox search, GET /chats?search=)


@pytest.fixture
def chats(org):
    from messaging.models import Chat

    device = make_device(org, status="connected")
    made = [
        ("Ayşe Yılmaz", "905551110001@s.whatsapp.net", "see you tomorrow"),
        ("Kitchen", "905551110002@s.whatsapp.net", "the oven is broken"),
        ("Mehmet", "905551119999@s.whatsapp.net", "Broken glass, again"),
    ]
    for name, jid, preview in made:
        Chat.objects.create(organization=org, device=device, name=name, jid=jid, last_message_preview=preview)
    return device


def _inbox(device, term):
    from messaging.views.inbox import chats_page

    return sorted(chat.name for chat in chats_page(device, search=term)[0])


def _api(device, term):
    return sorted(chat.name for chat in history.device_chats(device, search=term, offset=0, limit=25)[0])


def test_a_rare_chat_term_is_found_through_the_index_by_name_and_number(chats):
    assert sqlite_fts.CHATS.usable("kitchen")
    assert _api(chats, "KITCHEN") == _inbox(chats, "KITCHEN") == ["Kitchen"]
    assert _api(chats, "AYŞE") == ["Ayşe Yılmaz"]  # any case beyond ASCII (LIKE folds ASCII only)
    assert _api(chats, "5551119999") == _inbox(chats, "5551119999") == ["Mehmet"]  # part of the number
    # The inbox also looks in the last message (by LIKE: previews are not indexed); GET /chats, as the
    # peer's, only in the name and number.
    assert _inbox(chats, "broken") == ["Kitchen", "Mehmet"] and _api(chats, "broken") == []
    assert _api(chats, '"Kitchen"') == []  # quotes are part of the term


def test_a_renamed_chat_is_found_by_its_new_name_only(chats):
    chat = chats.chats.get(name="Kitchen")
    chat.name, chat.last_message_preview = "Cafeteria", "lunch is served"
    chat.save()
    assert _api(chats, "kitchen") == [] and _inbox(chats, "oven") == []
    assert _api(chats, "cafeteria") == _inbox(chats, "lunch is") == ["Cafeteria"]
    chat.delete()
    assert _api(chats, "cafeteria") == []


def test_short_and_common_chat_terms_take_the_like_walk_with_the_same_answer(chats, monkeypatch):
    assert not sqlite_fts.CHATS.usable("me")
    assert _inbox(chats, "me") == ["Mehmet"]
    monkeypatch.setattr(sqlite_fts, "COMMON_MATCHES", 1)
    assert not sqlite_fts.CHATS.usable("555111")
    assert _api(chats, "555111") == ["Ayşe Yılmaz", "Kitchen", "Mehmet"]


def test_lost_chat_triggers_are_put_back_and_the_chat_index_rebuilt(chats):
    from messaging.models import Chat

    with connection.cursor() as cursor:
        for name in sqlite_fts.CHATS.triggers:
            cursor.execute(f"DROP TRIGGER {name}")
    Chat.objects.create(organization=chats.organization, device=chats, name="Night shift", jid="1@g.us")
    assert sqlite_fts.ensure() is True
    assert sqlite_fts.CHATS.usable("night shift")
    assert _api(chats, "night shift") == ["Night shift"]
    assert sqlite_fts.ensure() is False
