"""Reading stored history at scale: the peer API's offset pages of chats and messages, filters, search, totals.

A client of the peer API pages with `limit`/`offset` and expects a `total`. On a chat with a million messages
the naive `ORDER BY ... OFFSET n` plus `COUNT(*)` reads every row twice per request. Here instead:

- a page is a *deferred join*: the ids are chosen with OFFSET on a narrow index that holds exactly what the
  filter and the order need (messaging/models/chat.py: one partial index per filter), an index-only walk that
  never touches the rows; then only the page's rows are fetched by primary key. A deep offset still walks the
  index up to it (a B-tree cannot skip), but it walks ids, not rows; and a deep offset of a chat's messages
  (unless searched) first skips whole hours by their counts (messaging.tallies), walking one hour's ids;
- the same ids query reads up to TOTAL_LOOKAHEAD ids past the page, so `total` comes with it: exact when the
  history ends within that many rows after the page, otherwise the lower bound `offset + limit +
  TOTAL_LOOKAHEAD` (a client that pages `while offset < total` still reaches the end: the bound moves with it).
  No COUNT(*) over the whole chat, ever; only a page past the end (no ids) counts, up to the offset;
- search is PostgreSQL full-text (the GIN index on SEARCH_VECTOR): messages holding every word of the term,
  whole words, any case; on SQLite a case-insensitive substring match over text and caption, through an FTS5
  trigram index for a rare term (messaging.sqlite_fts), by LIKE for a common or short one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from messaging import sqlite_fts, tallies
from messaging.models import Chat, Message
from messaging.models.chat import MEDIA_KIND_NAMES, SEARCH_VECTOR, VISIBLE
from messaging.models.lookups import LiteralIn

# Ids read past the page to tell the total without counting a whole chat (see the module docstring).
TOTAL_LOOKAHEAD = 1000
WORD = re.compile(r"\w+")
# The media condition with the kinds written into the SQL, word for word that of the msg_chat_media partial
# index: SQLite uses a partial index only when the query repeats its condition, and a Django `kind__in` sends
# the kinds as bound parameters, which SQLite cannot match (it then walked every visible message's row: 70 ms
# at 1M).
HAS_MEDIA_SQL = LiteralIn(F("kind"), MEDIA_KIND_NAMES)


@dataclass(frozen=True)
class MessageFilter:
    """The peer's filters of GET /chat/{jid}/messages."""

    search: str = ""
    media_only: bool = False
    is_from_me: bool | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


def offset_page(rows: QuerySet, order: tuple[str, ...], *, offset: int, limit: int) -> tuple[list, int]:
    """One page of `rows` in `order` at `offset`, and the (capped) total; two queries, three past the end."""
    ids = list(rows.order_by(*order).values_list("pk", flat=True)[offset : offset + limit + TOTAL_LOOKAHEAD])
    if ids:
        total = offset + len(ids)
    else:  # past the end (or nothing at all): how far the rows do go, counting no further than the offset
        total = rows.order_by()[:offset].count() if offset else 0
    page_ids = ids[:limit]
    found = rows.model.objects.in_bulk(page_ids) if page_ids else {}
    return [found[pk] for pk in page_ids if pk in found], total


def search_messages(rows: QuerySet, term: str) -> QuerySet:
    words = WORD.findall(term)
    if connection.vendor == "postgresql" and words:
        from django.contrib.postgres.search import SearchQuery

        # Every word, whole: the planner estimates a word from the index's statistics (a rare one is read from
        # the GIN index, a common one by walking the chat newest first), where a prefix (`word:*`) gets a
        # guess that sent a rare word down the walk of all 1M messages (1.7 s). \w+ tokens carry no operators.
        query = SearchQuery(" & ".join(words), config="simple", search_type="raw")
        return rows.annotate(document=SEARCH_VECTOR).filter(document=query)
    if sqlite_fts.MESSAGES.usable(term, using=rows.db):
        return rows.filter(sqlite_fts.MESSAGES.matching(term))
    return rows.filter(Q(text__icontains=term) | Q(caption__icontains=term))


def chat_messages(
    chat: Chat, filters: MessageFilter, *, offset: int, limit: int
) -> tuple[list[Message], int]:
    """The chat's messages, newest first, filtered; each filter served by its own index."""
    rows = Message.objects.filter(VISIBLE, chat=chat)
    if filters.media_only:
        rows = rows.filter(HAS_MEDIA_SQL)
    if filters.is_from_me is not None:
        rows = rows.filter(from_me=filters.is_from_me)
    if filters.start_time is not None:
        rows = rows.filter(timestamp__gte=filters.start_time)
    if filters.end_time is not None:
        rows = rows.filter(timestamp__lte=filters.end_time)
    if filters.search.strip():
        rows = search_messages(rows, filters.search.strip())
        skipped = None
    else:
        skipped = tallies.skip(
            rows,
            chat.pk,
            offset=offset,
            media_only=filters.media_only,
            is_from_me=filters.is_from_me,
            start_time=filters.start_time,
            end_time=filters.end_time,
        )
    if skipped is None:
        messages, total = offset_page(rows, ("-timestamp", "-id"), offset=offset, limit=limit)
    elif skipped.before is None:  # past the last message
        return [], skipped.total
    else:
        messages, total = offset_page(
            rows.filter(timestamp__lt=skipped.before),
            ("-timestamp", "-id"),
            offset=skipped.offset,
            limit=limit,
        )
        total += skipped.skipped
    for message in messages:
        message.chat = chat
    return messages, total


def device_chats(
    device,
    *,
    search: str = "",
    archived: bool | None = None,
    has_media: bool = False,
    offset: int,
    limit: int,
) -> tuple[list[Chat], int]:
    """The device's chats, most recent first (the (device, -last_message_at, -id) index); `archived` (None:
    both), `has_media`: only chats with a media message."""
    rows = Chat.objects.filter(device=device)
    if archived is not None:
        rows = rows.filter(archived=archived)
    if has_media:
        rows = rows.filter(Exists(Message.objects.filter(chat=OuterRef("pk"), kind__in=MEDIA_KIND_NAMES)))
    if search.strip():
        term = search.strip()
        if sqlite_fts.CHATS.usable(term, using=rows.db):
            rows = rows.filter(sqlite_fts.CHATS.matching(term))
        else:
            rows = rows.filter(Q(name__icontains=term) | Q(jid__icontains=term))
    return offset_page(rows, ("-last_message_at", "-id"), offset=offset, limit=limit)
