"""Message search on SQLite: an FTS5 trigram index over messages' text and caption, kept by triggers.

PostgreSQL searches with its GIN full-text index (messaging.history). SQLite had only LIKE '%term%', which
walks a chat newest first until it has a page: instant for a common word, but a rare one walked all of a
million-message chat (818 ms). A trigram index answers any substring of three or more characters, in any case,
as LIKE did, so the results stay the same; a shorter term still uses LIKE.

The index is an external-content FTS5 table on messaging_message, filled by triggers. Django remakes a SQLite
table to alter it (create, copy, drop, rename), which drops its triggers: `ensure` (run after every migrate)
puts missing triggers back and rebuilds the index, so a later migration of Message can never leave search stale.
A term found in very many messages is looked up by the LIKE walk instead (COMMON_MATCHES): the walk finds a
page of a common term at once, where the index would hand over every match first.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Q
from django.db.models.expressions import RawSQL

TABLE = "messaging_message_fts"
MIN_TERM = 3  # a trigram index needs three characters
COMMON_MATCHES = 2000  # more matches than this: the LIKE walk is the faster way to a page

_TRIGGERS = {
    f"{TABLE}_ai": f"""
        CREATE TRIGGER {TABLE}_ai AFTER INSERT ON messaging_message BEGIN
            INSERT INTO {TABLE}(rowid, text, caption) VALUES (new.id, new.text, new.caption);
        END""",
    f"{TABLE}_ad": f"""
        CREATE TRIGGER {TABLE}_ad AFTER DELETE ON messaging_message BEGIN
            INSERT INTO {TABLE}({TABLE}, rowid, text, caption) VALUES ('delete', old.id, old.text, old.caption);
        END""",
    f"{TABLE}_au": f"""
        CREATE TRIGGER {TABLE}_au AFTER UPDATE OF text, caption ON messaging_message BEGIN
            INSERT INTO {TABLE}({TABLE}, rowid, text, caption) VALUES ('delete', old.id, old.text, old.caption);
            INSERT INTO {TABLE}(rowid, text, caption) VALUES (new.id, new.text, new.caption);
        END""",
}


def ensure(using: str = "default") -> bool:
    """Create the index and its triggers where missing (rebuilding the index then); True if anything was made.
    Does nothing on a database other than SQLite, or before messaging_message exists."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, name FROM sqlite_master WHERE name = 'messaging_message' OR name LIKE ?",
            [f"{TABLE}%"],
        )
        present = {name for _type, name in cursor.fetchall()}
        if "messaging_message" not in present:
            return False
        missing = [name for name in _TRIGGERS if name not in present]
        if TABLE in present and not missing:
            return False
        if TABLE not in present:
            cursor.execute(
                f"CREATE VIRTUAL TABLE {TABLE} USING fts5(text, caption, content='messaging_message', "
                "content_rowid='id', tokenize='trigram')"
            )
        for name in missing:
            cursor.execute(_TRIGGERS[name])
        cursor.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")
    return True


def ensure_after_migrate(sender, using="default", **kwargs) -> None:
    ensure(using)


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def is_common(term: str, using: str = "default") -> bool:
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE {TABLE} MATCH %s LIMIT %s)",
            [_phrase(term), COMMON_MATCHES + 1],
        )
        return cursor.fetchone()[0] > COMMON_MATCHES


def matching(term: str) -> Q:
    """Messages whose text or caption holds `term` (any case), found through the index."""
    return Q(pk__in=RawSQL(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s", [_phrase(term)]))


def usable(term: str, using: str = "default") -> bool:
    """Whether `term` is looked up through the index: SQLite, three characters or more, not a common term."""
    return connections[using].vendor == "sqlite" and len(term) >= MIN_TERM and not is_common(term, using)
