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
    assert sqlite_fts.usable("needle")
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
    assert not sqlite_fts.usable("ha")
    assert _found(chat, "ha") == ["Dünya'ya merhaba", "Needle in a haystack", "hay again", "just hay"]
    monkeypatch.setattr(sqlite_fts, "COMMON_MATCHES", 2)
    assert not sqlite_fts.usable("hay")
    assert _found(chat, "hay") == ["Needle in a haystack", "hay again", "just hay"]


def test_triggers_lost_to_a_table_remake_are_put_back_and_the_index_rebuilt(chat):
    with connection.cursor() as cursor:  # what a SQLite ALTER through a table remake does to triggers
        for name in sqlite_fts._TRIGGERS:
            cursor.execute(f"DROP TRIGGER {name}")
    make_message(chat, text="written while the triggers were gone")
    assert sqlite_fts.ensure() is True
    assert _found(chat, "triggers were gone") == ["written while the triggers were gone"]
    assert sqlite_fts.ensure() is False  # nothing left to do
