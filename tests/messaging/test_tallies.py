"""A deep offset into a chat's messages skips whole hours by their counts (messaging.tallies): the page and the
total are those of the plain walk, for every filter, and the counts stay right through every kind of write."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import history, tallies
from messaging.history import MessageFilter
from messaging.models import Message, MessageTally
from tests.pages.conftest import make_chat, make_device

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
KINDS = ("text", "image", "text", "video", "text", "document", "text")


def _build(chat, count, *, first=0, gap=timedelta(seconds=617)):
    """`count` messages about ten minutes apart (so a few per hour), of mixed kinds and senders, one in
    eleven deleted for me; inserted in one statement, as a history import does."""
    Message.objects.bulk_create(
        Message(
            organization=chat.organization,
            device=chat.device,
            chat=chat,
            wa_id=f"TALLY{chat.pk}-{n}",
            from_me=n % 3 == 0,
            sender_jid=chat.jid,
            kind=KINDS[n % len(KINDS)],
            text=f"message {n}",
            status="received",
            timestamp=START + n * gap,
            deleted_for_me_at=START if n % 11 == 5 else None,
        )
        for n in range(first, first + count)
    )


@pytest.fixture
def chat(org):
    chat = make_chat(make_device(org, status="connected"))
    _build(chat, 240)
    return chat


def _recount(chat) -> dict:
    """{hour: [visible, mine, media, media_mine]} from the messages themselves."""
    counts = {}
    for m in Message.objects.filter(chat=chat, deleted_for_me_at__isnull=True):
        media = m.kind in ("audio", "document", "image", "sticker", "video")
        c = counts.setdefault(int(m.timestamp.timestamp()) // 3600, [0, 0, 0, 0])
        for i, flag in enumerate((True, m.from_me, media, m.from_me and media)):
            c[i] += int(flag)
    return counts


def _stored(chat) -> dict:
    return {
        t.hour: [t.visible, t.mine, t.media, t.media_mine]
        for t in MessageTally.objects.filter(chat=chat)
        if t.visible or t.mine or t.media or t.media_mine
    }


def _page(chat, filters, offset, *, skip_from, monkeypatch, limit=25):
    monkeypatch.setattr(tallies, "SKIP_FROM", skip_from)
    found, total = history.chat_messages(chat, filters, offset=offset, limit=limit)
    return [m.wa_id for m in found], total


FILTERS = [
    MessageFilter(media_only=media, is_from_me=mine)
    for media, mine in itertools.product((False, True), (None, True, False))
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: f"media={f.media_only},mine={f.is_from_me}")
def test_every_offset_gives_the_page_and_total_of_the_plain_walk(chat, filters, monkeypatch):
    for offset in [*range(0, 260, 9), 10_000]:
        walked = _page(chat, filters, offset, skip_from=10**9, monkeypatch=monkeypatch)
        skipped = _page(chat, filters, offset, skip_from=0, monkeypatch=monkeypatch)
        assert skipped == walked, (offset, filters)


def test_time_filters_give_the_page_and_total_of_the_plain_walk(chat, monkeypatch):
    middle, early = START + timedelta(hours=20, minutes=13), START + timedelta(hours=7, minutes=31)
    for filters in (
        MessageFilter(end_time=middle),
        MessageFilter(start_time=early),
        MessageFilter(start_time=early, end_time=middle, media_only=True),
        MessageFilter(end_time=START + timedelta(hours=40)),  # on an hour's first second
    ):
        for offset in range(0, 240, 7):
            walked = _page(chat, filters, offset, skip_from=10**9, monkeypatch=monkeypatch)
            assert _page(chat, filters, offset, skip_from=0, monkeypatch=monkeypatch) == walked, (offset, filters)


def test_a_deep_offset_walks_one_hour_not_the_chat(chat, monkeypatch):
    monkeypatch.setattr(tallies, "SKIP_FROM", 0)
    with CaptureQueriesContext(connection) as queries:
        found, _total = history.chat_messages(chat, MessageFilter(), offset=200, limit=5)
    walk = next(q["sql"] for q in queries.captured_queries if "OFFSET" in q["sql"].upper())
    walked = int(walk.upper().split("OFFSET")[1].split()[0])
    assert walked < 10  # about six messages an hour: the rest were counted, not walked
    assert len(found) == 5


def test_the_counts_follow_every_kind_of_write(chat, org):
    other = make_chat(chat.device)
    messages = list(Message.objects.filter(chat=chat).order_by("id"))
    Message.objects.filter(pk=messages[0].pk).update(deleted_for_me_at=START)  # deleted for me
    Message.objects.filter(pk=messages[5].pk).update(deleted_for_me_at=None)  # and back
    Message.objects.filter(pk=messages[1].pk).update(kind="image", from_me=True)
    Message.objects.filter(pk=messages[2].pk).update(timestamp=START + timedelta(days=30))  # another hour
    m = messages[3]
    m.text, m.status = "edited", "read"  # a save of every column that changes nothing counted
    m.save()
    Message.objects.filter(pk__in=[x.pk for x in messages[10:40]]).update(chat=other)  # a chat merge moves them
    Message.objects.filter(pk__in=[x.pk for x in messages[40:50]]).delete()
    _build(other, 30, first=1000)
    assert _stored(chat) == _recount(chat)
    assert _stored(other) == _recount(other)
    other.delete()
    assert not MessageTally.objects.filter(chat_id=other.pk).exists()
    assert _stored(chat) == _recount(chat)


def test_triggers_lost_are_put_back_and_every_chat_counted_again(chat):
    with connection.cursor() as cursor:  # what a SQLite table remake does to triggers
        for name in tallies._definitions(connection.vendor):
            cursor.execute(
                f"DROP TRIGGER {name} ON messaging_message"
                if connection.vendor == "postgresql"
                else f"DROP TRIGGER {name}"
            )
    _build(chat, 20, first=5000)
    assert _stored(chat) != _recount(chat)
    assert tallies.ensure() is True
    assert _stored(chat) == _recount(chat)
    assert tallies.ensure() is False  # nothing left to do
    _build(chat, 5, first=6000)
    assert _stored(chat) == _recount(chat)
