"""A deep `offset` into a chat's history, skipped to through counts by hour (messaging.models.MessageTally).

A client of the peer API pages GET /chat/{jid}/messages with `offset`. A B-tree cannot skip to its 900,000th
entry: walking the index there took 141 ms on PostgreSQL in a chat of a million messages. With the chat's
messages counted by hour, the hours newer than the one holding the offset are summed instead (one small row
per hour that has messages), and only that one hour's messages are walked.

The counts are kept by triggers on messaging_message, on SQLite and on PostgreSQL, so every write keeps them
right: the ORM's, a bulk insert, an UPDATE that moves messages to a merged chat, a cascade delete. They count
visible messages (not deleted for me) in total and by the filters of the API (mine, media, both). `ensure`
(after every migrate) creates triggers that are missing and then counts everything again: SQLite drops a
table's triggers when Django remakes the table to alter it. The trigger names carry a version, so a changed
definition replaces the old one the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone

from messaging.models.chat import MEDIA_KIND_NAMES

TABLE = "messaging_messagetally"
PREFIX = "msg_tally_"
VERSION = "v1"
HOUR = 3600
# Offsets under this walk the index as before: a few milliseconds, and one query fewer.
SKIP_FROM = 5_000

# The count that matches the filters (media_only, is_from_me).
COUNTS = {
    (False, None): "visible",
    (True, None): "media",
    (False, True): "mine",
    (True, True): "media_mine",
    (False, False): "visible - mine",
    (True, False): "media - media_mine",
}
_MEDIA = "(" + ", ".join(f"'{kind}'" for kind in MEDIA_KIND_NAMES) + ")"
_WATCHED = ("chat_id", '"timestamp"', "deleted_for_me_at", "kind", "from_me")


def _hour_sql(vendor: str, row: str) -> str:
    if vendor == "postgresql":
        return f'floor(extract(epoch FROM {row}."timestamp") / {HOUR})::bigint'
    return f"(CAST(strftime('%s', {row}.\"timestamp\") AS INTEGER) / {HOUR})"


def _flags(vendor: str, row: str) -> tuple[str, str, str]:
    """SQL 0/1 of (mine, media, media and mine) for `row`."""
    mine, media = f"{row}.from_me", f"{row}.kind IN {_MEDIA}"
    both = f"({mine} AND {media})"
    if vendor == "postgresql":
        return f"{mine}::int", f"({media})::int", f"{both}::int"
    return mine, f"({media})", both


_UPSERT_SET = "ON CONFLICT (chat_id, hour) DO UPDATE SET " + ", ".join(
    f"{c} = {TABLE}.{c} + excluded.{c}" for c in ("visible", "mine", "media", "media_mine")
)


def _add_row(vendor: str, row: str) -> str:
    mine, media, both = _flags(vendor, row)
    return (
        f"INSERT INTO {TABLE} (chat_id, hour, visible, mine, media, media_mine) "
        f"SELECT {row}.chat_id, {_hour_sql(vendor, row)}, 1, {mine}, {media}, {both} "
        f"WHERE {row}.deleted_for_me_at IS NULL {_UPSERT_SET}"
    )


def _remove_row(vendor: str, row: str) -> str:
    mine, media, both = _flags(vendor, row)
    return (
        f"UPDATE {TABLE} SET visible = visible - 1, mine = mine - {mine}, media = media - {media}, "
        f"media_mine = media_mine - {both} "
        f"WHERE chat_id = {row}.chat_id AND hour = {_hour_sql(vendor, row)} AND {row}.deleted_for_me_at IS NULL"
    )


def _grouped(vendor: str, source: str) -> str:
    """SELECT chat_id, hour and the four counts of the visible messages of `source`, grouped (in one order, so
    two writers lock the same count rows in the same order)."""
    mine, media, both = _flags(vendor, "m")
    return (
        f"SELECT m.chat_id, {_hour_sql(vendor, 'm')} AS hour, count(*) AS visible, sum({mine}) AS mine, "
        f"sum({media}) AS media, sum({both}) AS media_mine FROM {source} m "
        "WHERE m.deleted_for_me_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2"
    )


def _changed(vendor: str) -> str:
    differ = "IS DISTINCT FROM" if vendor == "postgresql" else "IS NOT"
    return " OR ".join(
        [f"OLD.{c} {differ} NEW.{c}" for c in _WATCHED if c != "deleted_for_me_at"]
        + [f"(OLD.deleted_for_me_at IS NULL) {differ} (NEW.deleted_for_me_at IS NULL)"]
    )


def _definitions(vendor: str) -> dict[str, list[str]]:
    """{trigger name: the statements that create it}."""
    name = f"{PREFIX}{VERSION}"
    watched = ", ".join(_WATCHED)
    if vendor == "postgresql":
        # Inserts and deletes come in bulk (a history import, a chat deleted): counted a statement at a time.
        # Updates come one by one and mostly touch nothing counted: a row trigger with a WHEN costs nothing then.
        return {
            f"{name}_ai": [
                f"""CREATE OR REPLACE FUNCTION {name}_added() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO {TABLE} (chat_id, hour, visible, mine, media, media_mine)
                    {_grouped(vendor, "new_rows")} {_UPSERT_SET};
                    RETURN NULL;
                END $$""",
                f"CREATE TRIGGER {name}_ai AFTER INSERT ON messaging_message REFERENCING NEW TABLE AS new_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_added()",
            ],
            f"{name}_ad": [
                f"""CREATE OR REPLACE FUNCTION {name}_removed() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE {TABLE} t SET visible = t.visible - g.visible, mine = t.mine - g.mine,
                        media = t.media - g.media, media_mine = t.media_mine - g.media_mine
                    FROM ({_grouped(vendor, "old_rows")}) g WHERE t.chat_id = g.chat_id AND t.hour = g.hour;
                    RETURN NULL;
                END $$""",
                f"CREATE TRIGGER {name}_ad AFTER DELETE ON messaging_message REFERENCING OLD TABLE AS old_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_removed()",
            ],
            f"{name}_au": [
                f"""CREATE OR REPLACE FUNCTION {name}_moved() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    {_remove_row(vendor, "OLD")};
                    {_add_row(vendor, "NEW")};
                    RETURN NULL;
                END $$""",
                f"CREATE TRIGGER {name}_au AFTER UPDATE OF {watched} ON messaging_message FOR EACH ROW "
                f"WHEN ({_changed(vendor)}) EXECUTE FUNCTION {name}_moved()",
            ],
        }
    return {
        f"{name}_ai": [
            f"CREATE TRIGGER {name}_ai AFTER INSERT ON messaging_message BEGIN {_add_row(vendor, 'NEW')}; END"
        ],
        f"{name}_ad": [
            f"CREATE TRIGGER {name}_ad AFTER DELETE ON messaging_message BEGIN {_remove_row(vendor, 'OLD')}; END"
        ],
        f"{name}_au": [
            f"CREATE TRIGGER {name}_au AFTER UPDATE OF {watched} ON messaging_message WHEN {_changed(vendor)} "
            f"BEGIN {_remove_row(vendor, 'OLD')}; {_add_row(vendor, 'NEW')}; END"
        ],
    }


def _present(cursor, vendor: str) -> tuple[set[str], set[str]]:
    """(the tables of the two that exist, our triggers that exist)."""
    if vendor == "postgresql":
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename IN (%s, %s)",
            ["messaging_message", TABLE],
        )
        tables = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname = 'messaging_message' AND c.relnamespace = current_schema()::regnamespace "
            "AND t.tgname LIKE %s",
            [PREFIX + "%"],
        )
    else:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (%s, %s)",
            ["messaging_message", TABLE],
        )
        tables = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s", [PREFIX + "%"]
        )
    return tables, {row[0] for row in cursor.fetchall()}


def ensure(using: str = "default") -> bool:
    """Create the triggers where missing (dropping those of another version) and count every chat again; True
    if anything was made. Does nothing before both tables exist."""
    connection = connections[using]
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        return False
    definitions = _definitions(vendor)
    with connection.cursor() as cursor:
        tables, triggers = _present(cursor, vendor)
        if len(tables) < 2 or triggers == set(definitions):
            return False
        for name in triggers - set(definitions):
            cursor.execute(
                f"DROP TRIGGER {name} ON messaging_message"
                if vendor == "postgresql"
                else f"DROP TRIGGER {name}"
            )
        for name, statements in definitions.items():
            if name not in triggers:
                for statement in statements:
                    cursor.execute(statement)
        cursor.execute(f"DELETE FROM {TABLE}")
        cursor.execute(
            f"INSERT INTO {TABLE} (chat_id, hour, visible, mine, media, media_mine) "
            + _grouped(vendor, "messaging_message")
        )
    return True


def ensure_after_migrate(sender, using="default", **kwargs) -> None:
    ensure(using)


@dataclass(frozen=True)
class Skip:
    """Where a deep offset lands: walk `offset` rows from the newest one older than `before` (None: the offset is
    past the last message and `total` is the whole count); `skipped` rows were counted, not walked."""

    before: datetime | None
    offset: int
    skipped: int
    total: int = 0


def _hour(moment: datetime) -> int:
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) // HOUR


def _start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR, tz=UTC)


def skip(
    rows: QuerySet,
    chat_id: int,
    *,
    offset: int,
    media_only: bool = False,
    is_from_me: bool | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
) -> Skip | None:
    """Where `offset` (newest first) lands in `rows`: the chat's visible messages filtered as the arguments say
    (search aside: that is no count). None when the index walk is as short (a small offset) or the counts cannot
    tell (the offset past the start time)."""
    if offset < SKIP_FROM:
        return None
    count = COUNTS[(media_only, is_from_me)]
    counted = 0
    top = None
    if end_time is not None:  # the end time's own hour is counted row by row, up to the end time
        top = _hour(end_time)
        newest = rows.filter(timestamp__gte=_start(top)).count()
        if offset < newest:
            return None
        offset, counted, top = offset - newest, newest, top - 1
    upto, params = ("AND hour <= %s", [chat_id, top]) if top is not None else ("", [chat_id])
    with connections[rows.db].cursor() as cursor:
        cursor.execute(
            "SELECT hour, newer FROM (SELECT hour, n, COALESCE(SUM(n) OVER (ORDER BY hour DESC ROWS BETWEEN "
            "UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS newer "
            f"FROM (SELECT hour, {count} AS n FROM {TABLE} WHERE chat_id = %s {upto}) c) w "
            "WHERE newer + n > %s ORDER BY hour DESC LIMIT 1",
            [*params, offset],
        )
        found = cursor.fetchone()
        if found is None:
            if start_time is not None:
                return None  # the total would count messages before the start time: let the walk count
            cursor.execute(f"SELECT COALESCE(SUM({count}), 0) FROM {TABLE} WHERE chat_id = %s {upto}", params)
            return Skip(before=None, offset=0, skipped=counted, total=counted + cursor.fetchone()[0])
    hour, newer = found
    if start_time is not None and hour < _hour(start_time):
        return None
    return Skip(before=_start(hour + 1), offset=offset - newer, skipped=counted + newer)
