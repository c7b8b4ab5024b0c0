"""Several statements in one round trip to the database, and a model's INSERT, UPDATE and
SELECT compiled once.

``run_together`` sends its statements in one pipeline (one statement each, synced once), with
client-side or server-side binding alike. The server runs them one after the other, each as
it would alone: under READ COMMITTED each takes its own snapshot when it starts, so a
statement after a ``SELECT ... FOR UPDATE`` sees what the lock's previous holder committed.
The first that fails skips the rest: inside ``transaction.atomic`` it ends the transaction;
outside one the statements are one implicit transaction, and none of them is kept.

``RoundTrips`` counts the times the client waits for the server (transaction control
included), for tests and benchmarks.

For the statements a hot path sends on every call, the ORM's compilation costs more than the
round trip: ``select_compiled`` runs a queryset (``select_related`` and annotations included)
from its statement compiled once per process, ``update_statement`` and ``update_fields`` write
chosen fields of an object by its key, compiled once per model and field list, as
``insert_statement`` does for an INSERT.
"""

import contextlib
import functools
import itertools
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.query import get_related_populators
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import InsertQuery
from django.db.transaction import TransactionManagementError
from psycopg import pq

Statement = tuple[str, Sequence]


def run_together(statements: Sequence[Statement], *, using: str = DEFAULT_DB_ALIAS):
    """Run ``statements`` ((sql, params) with ``%s`` placeholders) in order, in one round
    trip; returns each one's rows, in the same order."""
    db = connections[using]
    cursors = [db.cursor() for _ in statements]  # connected (and health-checked) first
    try:
        with db.wrap_database_errors, db.connection.pipeline():
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)
        return [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


class RoundTrips:
    """Counts the round trips to the database of what runs inside ``with RoundTrips() as
    trips:`` on the connection ``using`` (``trips.count``), from the driver's protocol trace:
    one each time the client, having sent messages, reads the server's answer. Transaction
    control counts (the driver's own ``BEGIN`` and ``COMMIT`` too); the statements of one
    message, or of one pipeline, count once. ``trips.messages``: the trace, message by
    message ("F" from the client, "B" from the server)."""

    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.using = using
        self.count = 0
        self.messages: list[str] = []

    def __enter__(self) -> "RoundTrips":
        db = connections[self.using]
        db.ensure_connection()
        self._pgconn = db.connection.pgconn
        self._file = tempfile.TemporaryFile()
        self._pgconn.trace(self._file.fileno())
        self._pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return self

    def __exit__(self, *exc_info) -> None:
        self._pgconn.untrace()
        self._file.seek(0)
        # One line a message, but a statement's own line breaks are kept in its text.
        lines = self._file.read().decode(errors="replace").splitlines()
        self._file.close()
        self.messages = [line for line in lines if line[:2] in ("F\t", "B\t")]
        sender = "B"
        for message in self.messages:
            if message[0] == "B" and sender == "F":
                self.count += 1
            sender = message[0]


#: Per model and database: its INSERT when every value is a plain parameter (the common
#: case), compiled once; only the parameters change from one object to the next.
_PLAIN_INSERTS: dict[tuple[type[Model], str], str] = {}


def insert_statement(obj: Model, *, using: str = DEFAULT_DB_ALIAS) -> Statement:
    """The INSERT that ``obj.save()`` would send for this new object (fields' ``pre_save``
    applied, ``auto_now_add`` included), returning its primary key. ``inserted`` completes
    the object with the row it returns. For a model without parents and without signal
    receivers (no ``pre_save`` or ``post_save`` is sent).

    The statement is compiled once per model; a value that is an expression (``Now()``, a
    database default) has it compiled again, for that object."""
    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    sql = _PLAIN_INSERTS.get((type(obj), using))
    if sql is not None:
        values = [field.pre_save(obj, True) for field in fields]
        if not any(hasattr(value, "resolve_expression") for value in values):
            connection = connections[using]
            params = [
                field.get_db_prep_save(value, connection=connection)
                for field, value in zip(fields, values, strict=True)
            ]
            if not any(hasattr(param, "as_sql") for param in params):
                return sql, params
    query = InsertQuery(type(obj))
    query.insert_values(fields, [obj])
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = meta.db_returning_fields
    ((sql, params),) = compiler.as_sql()
    plain = len(params) == len(fields) and not any(
        hasattr(field, "get_placeholder") or hasattr(getattr(obj, field.attname), "as_sql")
        for field in fields
    )
    if plain:
        _PLAIN_INSERTS[(type(obj), using)] = sql
    return sql, params


def inserted(obj: Model, row: tuple, *, using: str = DEFAULT_DB_ALIAS) -> Model:
    """``obj`` as saved, from the row its ``insert_statement`` returned."""
    for value, field in zip(row, obj._meta.db_returning_fields, strict=True):
        setattr(obj, field.attname, value)
    obj._state.adding = False
    obj._state.db = using
    return obj


def loaded(model: type[Model], values: dict, *, using: str = DEFAULT_DB_ALIAS) -> Model:
    """An instance of ``model`` as loaded from ``using``, from the value of each of its
    concrete fields (by attname, every one given).

    ``Model.__init__`` sets each field through ``setattr`` and its descriptor, which costs a
    hot path more than the driver's work on a row; this fills the instance's ``__dict__`` as
    the descriptors would on a fresh instance. When a receiver of ``pre_init`` or
    ``post_init`` listens for ``model``, ``__init__`` runs instead, so that it hears it.
    """
    if (pre_init.receivers or post_init.receivers) and (
        pre_init.has_listeners(model) or post_init.has_listeners(model)
    ):
        obj = model(*[values[f.attname] for f in model._meta.concrete_fields])
    else:
        obj = model.__new__(model)
        obj._state = ModelState()
        obj.__dict__.update(values)
    obj._state.adding = False
    obj._state.db = using
    return obj


# --- prepared statements ---------------------------------------------------------------


class _PreparingCursor(psycopg.RawCursor):
    """Server-side binding of ``$n`` placeholders, every statement prepared once per
    connection."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


# Explicitly requested preparation only: nothing else on the connection starts preparing.
_PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


def preparing_cursor(db) -> psycopg.RawCursor:
    """A driver cursor on ``db``'s connection (connected, or connected again when the old one
    failed its health check) that binds ``$n`` placeholders server-side and prepares every
    statement it runs, once per connection. Nothing else on the connection is prepared."""
    db.close_if_health_check_failed()
    db.ensure_connection()
    raw = db.connection
    if raw.prepare_threshold is None:  # Django turns automatic preparation off
        raw.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        return _PreparingCursor(raw)


_PERCENT_S = re.compile(r"%s|%%")


@functools.cache
def _numbered(sql: str) -> str:
    """``sql`` with its ``%s`` placeholders as ``$1, $2, ...`` (and ``%%`` as ``%``)."""
    count = itertools.count(1)
    return _PERCENT_S.sub(lambda m: "%" if m.group() == "%%" else f"${next(count)}", sql)


@contextlib.contextmanager
def prepared_cursor(*, using: str = DEFAULT_DB_ALIAS):
    """A cursor for a statement sent on every call of a hot path, ``%s`` placeholders and
    all: bound server-side and prepared once per connection, so the server parses and plans
    it once, not on every execution. Inside Django's cursor wrapper (execute wrappers, errors,
    a broken transaction's check). With the queries logged (DEBUG, tests that count them) or
    ``CREDITS_PREPARED_STATEMENTS`` off (a transaction-pooling PgBouncer older than 1.21, see
    config/settings), Django's own cursor. Every parameter's type must be one the server can
    take from its value or its place (never a string where a cast would be needed)."""
    db = connections[using]
    if db.queries_logged or not getattr(settings, "CREDITS_PREPARED_STATEMENTS", True):
        with db.cursor() as cursor:
            yield cursor
        return
    with _Prepared(preparing_cursor(db), db) as cursor:
        yield cursor


class _Prepared(CursorWrapper):
    def execute(self, sql, params=None):
        return super().execute(_numbered(sql), params)


#: Per builder and database: a queryset's statement and what turns its rows into objects,
#: compiled once.
_SELECTS: dict[tuple[Callable, str], "_CompiledSelect"] = {}


@dataclass(frozen=True)
class _CompiledSelect:
    sql: str
    params: tuple
    places: tuple[int, ...]
    locks: bool
    model: type[Model]
    attnames: list[str]
    start: int
    end: int
    populators: list
    annotations: dict[str, int]
    converters: list[tuple[int, list, object]]


def select_compiled(build: Callable[..., QuerySet], *args, using: str = DEFAULT_DB_ALIAS):
    """The objects of the queryset ``build(*args)``, as iterating it would give them
    (``select_related`` and annotations included), with its statement compiled once per
    process instead of on every call.

    ``build`` is a module-level function whose queryset differs from call to call only in
    the values of its arguments (ints and strings, never None), each one a parameter of the
    statement, used once: the statement is compiled from stand-in values and each
    argument's place found among its parameters (constants of the queryset keep theirs). A
    locking read (``select_for_update``) needs a transaction, as the ORM's does.
    """
    compiled = _SELECTS.get((build, using))
    if compiled is None:
        compiled = _SELECTS[(build, using)] = _compile_select(build, args, using)
    params = list(compiled.params)
    for position, value in zip(compiled.places, args, strict=True):
        if not isinstance(value, int | str):
            raise TypeError(f"{build.__qualname__}: {value!r} is not an int or a string")
        params[position] = value
    connection = connections[using]
    if compiled.locks and connection.get_autocommit():
        raise TransactionManagementError(
            "select_for_update cannot be used outside of a transaction."
        )
    with prepared_cursor(using=using) as cursor:
        cursor.execute(compiled.sql, params)
        rows = cursor.fetchall()
    objects = []
    for row in rows:
        if compiled.converters:
            row = list(row)
            for position, converters, expression in compiled.converters:
                value = row[position]
                for convert in converters:
                    value = convert(value, expression, connection)
                row[position] = value
        obj = compiled.model.from_db(using, compiled.attnames, row[compiled.start : compiled.end])
        for populator in compiled.populators:
            populator.populate(row, obj)
        for name, position in compiled.annotations.items():
            setattr(obj, name, row[position])
        objects.append(obj)
    return objects


def get_compiled(build: Callable[..., QuerySet], *args, using: str = DEFAULT_DB_ALIAS) -> Model:
    """The one object of ``build(*args)`` (see ``select_compiled``); raises the model's
    DoesNotExist when there is none, as ``QuerySet.get`` does."""
    found = select_compiled(build, *args, using=using)
    if not found:
        model = _SELECTS[(build, using)].model
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
    return found[0]


def _stand_in(index: int, kind: type):
    """A value no statement holds as a constant, of the argument's type, within every
    integer field's range (a lookup out of range compiles to no statement at all)."""
    if kind is str:
        return f"\x00stand-in {index}\x00"
    return 2_000_000_000 + 7919 * index


def _compile_select(build: Callable[..., QuerySet], args: tuple, using: str) -> _CompiledSelect:
    stand_ins = [_stand_in(i, str if isinstance(arg, str) else int) for i, arg in enumerate(args)]
    queryset = build(*stand_ins)
    compiler = queryset.query.get_compiler(using=using)
    sql, params = compiler.as_sql()
    places = []
    for stand_in in stand_ins:
        # Equal, whatever the driver's wrapper (psycopg's Int4 is an int).
        found = [i for i, param in enumerate(params) if param == stand_in]
        if len(found) != 1:
            raise ValueError(
                f"{build.__qualname__}: each argument must be one parameter of the statement, "
                f"used once ({stand_in!r} is {len(found)} of {params!r})"
            )
        places.append(found[0])
    select, klass_info = compiler.select, compiler.klass_info
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    converters = compiler.get_converters([column for column, *_ in select[: compiler.col_count]])
    return _CompiledSelect(
        sql=sql,
        params=tuple(params),
        places=tuple(places),
        locks=queryset.query.select_for_update,
        model=klass_info["model"],
        attnames=[column.target.attname for column, *_ in select[start:end]],
        start=start,
        end=end,
        populators=get_related_populators(klass_info, select, using),
        annotations=dict(compiler.annotation_col_map or {}),
        converters=[
            (position, found, expression) for position, (found, expression) in converters.items()
        ],
    )


#: Per model, fields and database: the UPDATE of those fields by primary key.
_UPDATES: dict[tuple[type[Model], tuple[str, ...], str], tuple[str, list]] = {}


def update_statement(
    obj: Model, fields: Sequence[str], *, using: str = DEFAULT_DB_ALIAS
) -> Statement:
    """The UPDATE that ``obj.save(update_fields=fields)`` would send (fields' ``pre_save``
    applied: an ``auto_now`` field named here takes the time now), compiled once per model
    and field list. For a model without parents and without signal receivers; every value
    a plain one (no expression)."""
    key = (type(obj), tuple(fields), using)
    compiled = _UPDATES.get(key)
    connection = connections[using]
    if compiled is None:
        meta = obj._meta
        targets = [meta.get_field(name) for name in fields]
        quote = connection.ops.quote_name
        columns = ", ".join(f"{quote(field.column)} = %s" for field in targets)
        sql = f"UPDATE {quote(meta.db_table)} SET {columns} WHERE {quote(meta.pk.column)} = %s"
        compiled = _UPDATES[key] = (sql, targets)
    sql, targets = compiled
    params = []
    for field in targets:
        value = field.pre_save(obj, False)
        if hasattr(value, "resolve_expression"):
            raise ValueError(f"{field.name}: an expression, not a value")
        params.append(field.get_db_prep_save(value, connection=connection))
    params.append(obj._meta.pk.get_db_prep_value(obj.pk, connection))
    return sql, params


def update_fields(obj: Model, fields: Sequence[str], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Write ``fields`` of ``obj`` as ``obj.save(update_fields=fields)`` does, with the
    statement of ``update_statement``; a row that is gone raises DatabaseError, as there."""
    sql, params = update_statement(obj, fields, using=using)
    with prepared_cursor(using=using) as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")
