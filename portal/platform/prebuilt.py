"""Queries on every request's path, built once per process from the models' metadata.

The ORM compiles a queryset anew on each call: for the token lookup (a join of three tables and a
subquery) that was 1.1 ms of CPU against 0.09 ms for the query on the bench VM, on every API
request. A `Prebuilt` query is written once as SQL over `{Model}` and `{Model.field}` names, which
become the quoted table and column; it selects every concrete field of the models it returns (so a
field added later is read without a change here), passes each value through the converters the ORM
would apply (JSON, and booleans and dates on SQLite), and builds the instances with `Model.from_db`,
as the ORM does. Only plain lookups belong here: anything the ORM's compiler would add (default
ordering, a custom manager's filters) has to be written into the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.db import connection, models

_NAME = re.compile(r"\{(\w+)(?:\.(\w+))?\}")

_Part = tuple[type[models.Model], list[str], list[list[tuple[Any, Any]]]]


def render(text: str, names: dict[str, type[models.Model]]) -> str:
    """`{Model}` and `{Model.field}` in `text` as this connection's quoted table and column names."""
    qn = connection.ops.quote_name

    def name(match: re.Match[str]) -> str:
        model = names[match[1]]
        if match[2] is None:
            return qn(model._meta.db_table)
        field = model._meta.get_field(match[2])
        assert isinstance(field, models.Field) and field.column
        return qn(field.column)

    return _NAME.sub(name, text)


# _NO_FLUSH: commits that need not wait for the disk (PostgreSQL). A commit waits until its WAL is flushed
# (synchronous_commit = on), several times longer than one that does not on a busy disk (figures in
# bench/RESULTS.md). A prediction commits three times, and only the last must be
# durable: the admission (its quota reserved, the prediction stored pending) and the worker's claim
# are followed by the finishing transaction (outputs, audit receipt, metering), whose durable commit
# flushes the WAL before it, theirs included, and nobody is answered before it. A crash before that
# loses a pending prediction that nobody was answered for, with its reservation; a lost claim leaves
# it pending, for the sweeper to fail. `set_config(..., true)` holds for the current transaction
# only, also the implicit one of a single statement (a Statement made with `no_flush`).
_NO_FLUSH = "SELECT set_config('synchronous_commit', 'off', true)"


def commit_without_flush() -> None:
    """The current transaction's commit will not wait for the disk (on PostgreSQL; see _NO_FLUSH)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_NO_FLUSH)


class Statement:
    """A write on every request's path (an UPDATE with `%s` parameters), built once per process.

    `no_flush`: run alone (autocommit), its commit does not wait for the disk on PostgreSQL (see
    _NO_FLUSH): the setting rides in a CTE the UPDATE joins, so it stays one statement.
    """

    def __init__(self, text: str, *, names: Sequence[type[models.Model]], no_flush: bool = False) -> None:
        self.text, self.names, self.no_flush = text, {m.__name__: m for m in names}, no_flush
        self._built: dict[str, str] = {}

    def _build(self) -> str:
        text = render(self.text, self.names)
        if self.no_flush and connection.vendor == "postgresql":
            head, where, tail = text.partition(" WHERE ")
            assert head.startswith("UPDATE ") and where, "no_flush takes an UPDATE ... WHERE"
            text = f"WITH no_flush AS ({_NO_FLUSH}) {head} FROM no_flush WHERE {tail}"
        return text

    def execute(self, params: Sequence[Any]) -> int:
        """Runs it in the current transaction; the rows it changed."""
        if connection.vendor not in self._built:
            self._built[connection.vendor] = self._build()
        with connection.cursor() as cursor:
            cursor.execute(self._built[connection.vendor], list(params))
            return int(cursor.rowcount)


class Prebuilt:
    """`SELECT <every field of each model>, <extra> <tail>`, with `%s` parameters in the tail.

    `returns`: the models and the table alias each is read from, in order, and optionally the fields
    to read (the primary key always; the others are deferred, as with the ORM's `only`). `names`:
    the models the SQL's `{Model}` and `{Model.field}` refer to (those in `returns` need not be repeated).
    """

    def __init__(self, returns: Sequence[tuple[type[models.Model], str] | tuple[type[models.Model], str, Sequence[str]]],
                 tail: str, *, extra: Sequence[str] = (), names: Sequence[type[models.Model]] = ()) -> None:
        self.returns = [(r[0], r[1], tuple(r[2]) if len(r) > 2 else None) for r in returns]  # type: ignore[misc]
        self.tail, self.extra = tail, list(extra)
        self.names = {m.__name__: m for m in [*(r[0] for r in self.returns), *names]}
        self._built: dict[str, tuple[str, list[_Part]]] = {}

    def _build(self) -> tuple[str, list[_Part]]:
        qn = connection.ops.quote_name
        select: list[str] = []
        parts: list[_Part] = []
        for model, alias, only in self.returns:
            fields = [f for f in model._meta.concrete_fields
                      if only is None or f.primary_key or f.name in only or f.attname in only]
            converters = []
            for field in fields:
                assert field.column
                select.append(f"{alias}.{qn(field.column)}")
                col = field.get_col(alias)
                converters.append([(convert, col) for convert in
                                   connection.ops.get_db_converters(col) + col.get_db_converters(connection)])
            parts.append((model, [f.attname for f in fields], converters))
        columns = ", ".join(select + [render(e, self.names) for e in self.extra])
        return f"SELECT {columns} {render(self.tail, self.names)}", parts

    def _prepared(self) -> tuple[str, list[_Part]]:
        if connection.vendor not in self._built:
            self._built[connection.vendor] = self._build()
        return self._built[connection.vendor]

    def fetch_one(self, params: Sequence[Any]) -> tuple[list[models.Model], tuple[Any, ...]] | None:
        """The instances of the first row (one per model in `returns`) and its extra values; None if no row."""
        sql, parts = self._prepared()
        with connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            row = cursor.fetchone()
        if row is None:
            return None
        made: list[models.Model] = []
        at = 0
        for model, attnames, converters in parts:
            values = []
            for value, chain in zip(row[at : at + len(attnames)], converters, strict=True):
                for convert, expression in chain:
                    value = convert(value, expression, connection)
                values.append(value)
            made.append(model.from_db(connection.alias, attnames, values))
            at += len(attnames)
        return made, tuple(row[at:])


class Insert:
    """`INSERT INTO <table> (<every concrete field but the automatic key>) VALUES (...)`, built once.

    `save(instance)` stores a new instance as the ORM's `save()` does for a model with no signal
    receivers and no `save()` of its own: each field's `pre_save` (so `auto_now_add` is set), its
    `get_db_prep_save`, the INSERT, then the key it was given (RETURNING where the database has
    it, else the cursor's last row id) and the instance's state. The ORM compiled the INSERT of a
    prediction anew on every request: 1.3 ms of the admission's 12 under the profiler.
    """

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
        self.columns = [str(f.column) for f in self.fields]
        self.key_column = str(model._meta.pk.column)
        self._built: dict[str, tuple[str, bool]] = {}

    def _prepared(self) -> tuple[str, bool]:
        if connection.vendor not in self._built:
            qn = connection.ops.quote_name
            meta = self.model._meta
            returning = bool(connection.features.can_return_columns_from_insert)
            columns = ", ".join(qn(c) for c in self.columns)
            placeholders = ", ".join(["%s"] * len(self.fields))
            tail = f" RETURNING {qn(self.key_column)}" if returning else ""
            sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({placeholders}){tail}"  # noqa: S608 (quoted names from the model)
            self._built[connection.vendor] = (sql, returning)
        return self._built[connection.vendor]

    def save(self, instance: models.Model) -> None:
        """Inserts `instance` (new: no key yet) in the current transaction and gives it its key."""
        if instance.pk is not None or not isinstance(instance, self.model):
            raise ValueError(f"Insert({self.model.__name__}) takes a new {self.model.__name__}")
        sql, returning = self._prepared()
        params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in self.fields]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            key = (cursor.fetchone()[0] if returning
                   else connection.ops.last_insert_id(cursor, self.model._meta.db_table, self.key_column))
        instance.pk = key
        instance._state.adding = False
        instance._state.db = connection.alias
