"""Several statements in one round trip to the database, and a model's INSERT as one of them.

``run_together`` sends its statements as one message (PostgreSQL's simple query protocol
takes several statements separated by semicolons; Django binds parameters on the client by
default). The server runs them one after the other, each as it would alone: under READ
COMMITTED each takes its own snapshot when it starts, so a statement after a
``SELECT ... FOR UPDATE`` sees what the lock's previous holder committed. The first that
fails ends the message (and, inside ``transaction.atomic``, the transaction). With
server-side binding (``OPTIONS["server_side_binding"]``), which takes one statement per
message, they run one by one.

``RoundTrips`` counts the times the client waits for the server (transaction control
included), for tests and benchmarks.
"""

import tempfile
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.db.models.sql import InsertQuery
from psycopg import pq

Statement = tuple[str, Sequence]


def run_together(statements: Sequence[Statement], *, using: str = DEFAULT_DB_ALIAS):
    """Run ``statements`` ((sql, params) with ``%s`` placeholders) in order, in one round
    trip; returns each one's rows, in the same order."""
    db = connections[using]
    with db.cursor() as cursor:
        if db.settings_dict["OPTIONS"].get("server_side_binding"):
            results = []
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall())
            return results
        sql = ";\n".join(sql for sql, _ in statements)
        params = [value for _, params in statements for value in params]
        cursor.execute(sql, params)
        results = [cursor.fetchall()]
        while cursor.nextset():
            results.append(cursor.fetchall())
        return results


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
