"""Query conditions the ORM has no way of writing: see LiteralIn."""

from django.db.models import Lookup

__all__ = ["LiteralIn"]


class LiteralIn(Lookup):
    """`expression IN ('a', 'b')` with the values written into the SQL, not sent as parameters: SQLite uses a
    partial index only when the query repeats the index's condition, and it cannot match parameters
    (webhook.UNFINISHED, history.HAS_MEDIA_SQL). A lookup, so that a filter takes it as the condition itself (an
    expression would be compared to true), and its column is named with whatever alias the query gives its
    table, a subquery's too."""

    lookup_name = "literal_in"
    prepare_rhs = False

    def __init__(self, lhs, values: tuple[str, ...]):
        if not all(isinstance(v, str) and v.isidentifier() for v in values):
            raise ValueError("LiteralIn takes plain words only: they are written into the SQL")
        super().__init__(lhs, tuple(values))

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} IN ({', '.join(f"'{v}'" for v in self.rhs)})", params
