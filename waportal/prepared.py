"""A read made on every API request, its SQL compiled once: the key check and the choice of device.

The ORM compiles a queryset's SQL anew each time it runs. For the API key with its organization and for the
device with its lease that is most of what the read costs (about 0.5 ms of the interpreter each, against tens
of microseconds in the database), and every API request pays it twice. `Prepared` builds its queryset once per
database, with stand-in values for the parameters, and keeps the SQL, the places of the stand-ins among its
parameters, and what turns a row into objects (the fields' converters, the select_related populators). A call
then runs only the statement, with the real values where the stand-ins were.

The queryset must be the same SQL for any value: a filter on an equality (`field=value`) of a str or int, not an
`__in` list whose length varies. Parameters are passed as the database gets them, so a value needing
conversion (a date, a JSON field) is not a kind this takes. The objects come back as the queryset would give
them, with their select_related objects; known related objects (`organization.devices` setting each device's
organization) are the caller's to set.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

_stand_in_numbers = itertools.count(1)


def _stand_in(kind: type, number: int):
    if kind is str:
        return f"\x00prepared stand-in {number}\x00"
    if kind is int:
        return -7_340_000_000_000 - number  # no row has such an ID or number
    raise TypeError(f"Prepared takes str and int parameters, not {kind.__name__}")


class _Compiled:
    __slots__ = (
        "sql",
        "params",
        "slots",
        "converters",
        "start",
        "end",
        "init_list",
        "model",
        "populators",
        "fetch_mode",
    )

    def __init__(self, queryset: QuerySet, alias: str, stand_ins: list) -> None:
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        params = list(params)
        self.slots = []
        for stand_in in stand_ins:
            places = [i for i, p in enumerate(params) if type(p) is type(stand_in) and p == stand_in]
            if len(places) != 1:
                raise ValueError(
                    f"a prepared parameter must appear once in the SQL, not {len(places)} times: {sql}"
                )
            self.slots.append(places[0])
        self.sql, self.params = sql, params
        if compiler.annotation_col_map or queryset._known_related_objects:
            raise ValueError("Prepared runs plain model querysets (no annotations, no known related objects)")
        select, klass_info = compiler.select, compiler.klass_info
        fields = [s[0] for s in select[: compiler.col_count]]
        self.converters = list(compiler.get_converters(fields).items())
        self.model = klass_info["model"]
        if self.model.from_db.__func__ is not Model.from_db.__func__:
            raise ValueError(f"{self.model.__name__} has its own from_db(): prepare it with the ORM")
        self.start, self.end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        self.init_list = [f[0].target.attname for f in select[self.start : self.end]]
        self.fetch_mode = queryset._fetch_mode
        self.populators = get_related_populators(klass_info, select, alias, self.fetch_mode)


class Prepared:
    """`Prepared(lambda key_hash: ApiKey.objects.filter(key_hash=key_hash)[:1], str)(value)`: the rows of
    the queryset built with `value`, as a list of model objects, from SQL compiled once per database."""

    def __init__(self, build: Callable[..., QuerySet], *kinds: type) -> None:
        self.build, self.kinds = build, kinds
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, alias: str, vendor: str) -> _Compiled:
        key = (alias, vendor)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    stand_ins = [_stand_in(kind, next(_stand_in_numbers)) for kind in self.kinds]
                    compiled = _Compiled(self.build(*stand_ins).using(alias), alias, stand_ins)
                    self._compiled[key] = compiled
        return compiled

    def __call__(self, *values, using: str = "default") -> list:
        if len(values) != len(self.kinds):
            raise TypeError(f"expected {len(self.kinds)} values, got {len(values)}")
        for value, kind in zip(values, self.kinds, strict=True):
            if type(value) is not kind:  # (a bool is not an int here, nor a str subclass a str)
                raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        connection = connections[using]
        compiled = self._for(using, connection.vendor)
        params = list(compiled.params)
        for slot, value in zip(compiled.slots, values, strict=True):
            params[slot] = value
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        objects = []
        for row in rows:
            if compiled.converters:
                row = list(row)
                for position, (converters, expression) in compiled.converters:
                    value = row[position]
                    for converter in converters:
                        value = converter(value, expression, connection)
                    row[position] = value
            obj = compiled.model.from_db(
                using, compiled.init_list, row[compiled.start : compiled.end], fetch_mode=compiled.fetch_mode
            )
            for populator in compiled.populators:
                populator.populate(row, obj)
            objects.append(obj)
        return objects
