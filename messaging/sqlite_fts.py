"""Search on SQLite: FTS5 trigram indexes over messages (text, caption) and chats (name, JID), kept by
triggers.

PostgreSQL searches messages with its GIN full-text index (messaging.history), and its ILIKE over a hundred
thousand chats takes it ~10 ms. SQLite had only LIKE '%term%', which walks rows newest first until it has a
page: instant for a common word, but a rare one walked all of a million-message chat (818 ms), or all 100,000
chats of a number (17 ms of the database's time for each GET /chats?search=). A trigram index
answers any substring of three or more characters, in any case, as LIKE did, so the results stay the same; a
shorter term still uses LIKE.

Each index is an external-content FTS5 table on its model's table, filled by triggers. Django remakes a SQLite
table to alter it (create, copy, drop, rename), which drops its triggers: `ensure` (run after every migrate)
puts missing triggers back and rebuilds the index, so a later migration can never leave search stale. A term
found in very many rows is looked up by the LIKE walk instead (COMMON_MATCHES): the walk finds a page of a
common term at once, where the index would hand over every match first.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Q
from django.db.models.expressions import RawSQL

MIN_TERM = 3  # a trigram index needs three characters
COMMON_MATCHES = 2000  # more matches than this: the LIKE walk is the faster way to a page


class TrigramIndex:
    """The FTS5 trigram index `<source>_fts` over `columns` of the table `source`, and its three triggers."""

    def __init__(self, source: str, columns: tuple[str, ...]) -> None:
        self.source, self.columns = source, columns
        self.table = f"{source}_fts"
        t, cols = self.table, ", ".join(columns)
        new = ", ".join(f"new.{c}" for c in columns)
        old = ", ".join(f"old.{c}" for c in columns)
        delete = f"INSERT INTO {t}({t}, rowid, {cols}) VALUES ('delete', old.id, {old});"
        insert = f"INSERT INTO {t}(rowid, {cols}) VALUES (new.id, {new});"
        self.triggers = {
            f"{t}_ai": f"CREATE TRIGGER {t}_ai AFTER INSERT ON {source} BEGIN {insert} END",
            f"{t}_ad": f"CREATE TRIGGER {t}_ad AFTER DELETE ON {source} BEGIN {delete} END",
            # Only when an indexed column changes: a status or a counter update touches no index.
            f"{t}_au": f"CREATE TRIGGER {t}_au AFTER UPDATE OF {cols} ON {source} BEGIN {delete} {insert} END",
        }

    def ensure(self, using: str = "default") -> bool:
        """Create the index and its triggers where missing (rebuilding the index then); True if anything was
        made. Does nothing on a database other than SQLite, or before the source table exists."""
        connection = connections[using]
        if connection.vendor != "sqlite":
            return False
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT type, name FROM sqlite_master WHERE name = %s OR name LIKE %s",
                [self.source, f"{self.table}%"],
            )
            present = {name for _type, name in cursor.fetchall()}
            if self.source not in present:
                return False
            missing = [name for name in self.triggers if name not in present]
            if self.table in present and not missing:
                return False
            if self.table not in present:
                cursor.execute(
                    f"CREATE VIRTUAL TABLE {self.table} USING fts5({', '.join(self.columns)}, "
                    f"content='{self.source}', content_rowid='id', tokenize='trigram')"
                )
            for name in missing:
                cursor.execute(self.triggers[name])
            cursor.execute(f"INSERT INTO {self.table}({self.table}) VALUES ('rebuild')")
        return True

    def _phrase(self, term: str) -> str:
        return '"' + term.replace('"', '""') + '"'  # quotes are part of the term, not syntax

    def is_common(self, term: str, using: str = "default") -> bool:
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {self.table} WHERE {self.table} MATCH %s LIMIT %s)",
                [self._phrase(term), COMMON_MATCHES + 1],
            )
            return cursor.fetchone()[0] > COMMON_MATCHES

    def matching(self, term: str) -> Q:
        """Rows one of whose indexed columns holds `term`, in any case, found through the index."""
        return Q(
            pk__in=RawSQL(f"SELECT rowid FROM {self.table} WHERE {self.table} MATCH %s", [self._phrase(term)])
        )

    def usable(self, term: str, using: str = "default") -> bool:
        """Whether `term` is looked up through the index: SQLite, three characters or more, not common."""
        return (
            connections[using].vendor == "sqlite"
            and len(term) >= MIN_TERM
            and not self.is_common(term, using)
        )


MESSAGES = TrigramIndex("messaging_message", ("text", "caption"))
# A chat's name and number only, which seldom change. Not its last message's preview, which every message
# rewrites: with it in the index, a chat's update took p50 0.20 ms instead of 0.08, p99 6.9 instead of 0.5 and
# up to 45 ms (FTS5 merging its segments), inside SQLite's one write lock (an hour's soak with it: a send's
# per-minute p99 had a median of 263 ms, 118 in the soak before). The inbox's search, which also looks in the
# previews, walks with LIKE as before.
CHATS = TrigramIndex("messaging_chat", ("name", "jid"))
INDEXES = (MESSAGES, CHATS)


def ensure(using: str = "default") -> bool:
    """Every index and its triggers where missing; True if anything was made (see TrigramIndex.ensure)."""
    made = [index.ensure(using) for index in INDEXES]
    return any(made)


def ensure_after_migrate(sender, using="default", **kwargs) -> None:
    ensure(using)
