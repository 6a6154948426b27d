"""One new row INSERTed by a statement written once per model: for the rows every send writes (its message and
its audit entry).

`Model.save()` compiles the same INSERT on every call: about 0.3 ms of the interpreter for a Message, paid on
every message sent. `insert` writes the statement once per model and database vendor and fills it as `save()`
does (each field's `pre_save` and `get_db_prep_save`, the new primary key read back with RETURNING, which SQLite
and PostgreSQL both have). A model with its own `save()`, or with pre_save or post_save receivers, is saved by
`save()` as before: this sends no signals.
"""

from __future__ import annotations

from django.db import connections, router
from django.db.models import Model, signals

_statements: dict[tuple[type[Model], str], tuple[str, tuple]] = {}


def _statement(model: type[Model], connection) -> tuple[str, tuple]:
    key = (model, connection.vendor)
    if key in _statements:
        return _statements[key]
    quote = connection.ops.quote_name
    pk = model._meta.pk
    fields = tuple(f for f in model._meta.local_concrete_fields if not (f is pk and f.db_returning))
    columns = ", ".join(quote(f.column) for f in fields)
    _statements[key] = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))}) "
        f"RETURNING {quote(pk.column)}",
        fields,
    )
    return _statements[key]


def insert(obj: Model) -> Model:
    """Store `obj`, a new row (its primary key set by the database), as `obj.save()` would."""
    model = type(obj)
    if (
        model.save is not Model.save  # a model with its own save() keeps it
        or signals.pre_save.has_listeners(model)
        or signals.post_save.has_listeners(model)
        or model._meta.parents
        or not obj._state.adding
    ):
        obj.save()
        return obj
    alias = router.db_for_write(model, instance=obj)
    connection = connections[alias]
    sql, fields = _statement(model, connection)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = alias
    return obj
