"""Several statements in one round trip to the database, and a model's INSERT as one of them;
a statement that may run twice, without the connection check before it.

``run_together`` sends its statements as one message (PostgreSQL's simple query protocol
takes several statements separated by semicolons; Django binds parameters on the client by
default). The server runs them one after the other, each as it would alone: under READ
COMMITTED each takes its own snapshot when it starts, so a statement after a
``SELECT ... FOR UPDATE`` sees what the lock's previous holder committed. The first that
fails ends the message (and, inside ``transaction.atomic``, the transaction). With
server-side binding (``OPTIONS["server_side_binding"]``), which takes one statement per
message, they run one by one.
"""

from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db.models import Model
from django.db.models.sql import InsertQuery

Statement = tuple[str, Sequence]
T = TypeVar("T")


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
        cursor.execute(
            ";\n".join(sql for sql, _ in statements),
            [value for _, params in statements for value in params],
        )
        results = [cursor.fetchall()]
        while cursor.nextset():
            results.append(cursor.fetchall())
        return results


def insert_statement(obj: Model, *, using: str = DEFAULT_DB_ALIAS) -> Statement:
    """The INSERT that ``obj.save()`` would send for this new object (fields' ``pre_save``
    applied, ``auto_now_add`` included), returning its primary key. ``inserted`` completes
    the object with the row it returns. For a model without parents and without signal
    receivers (no ``pre_save`` or ``post_save`` is sent)."""
    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    query = InsertQuery(type(obj))
    query.insert_values(fields, [obj])
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = meta.db_returning_fields
    ((sql, params),) = compiler.as_sql()
    return sql, params


def inserted(obj: Model, row: tuple, *, using: str = DEFAULT_DB_ALIAS) -> Model:
    """``obj`` as saved, from the row its ``insert_statement`` returned."""
    for value, field in zip(row, obj._meta.db_returning_fields, strict=True):
        setattr(obj, field.attname, value)
    obj._state.adding = False
    obj._state.db = using
    return obj


def run_repeatable(run: Callable[[], T], *, using: str = DEFAULT_DB_ALIAS) -> T:
    """``run()``, one statement committed on its own that may safely run twice (an INSERT ...
    ON CONFLICT DO NOTHING), without the check ``CONN_HEALTH_CHECKS`` makes of a kept
    connection before a request's first query (a round trip of its own). A kept connection
    that turns out to be dead (the server restarted, a proxy dropped it) fails the statement
    instead: it is closed and ``run()`` runs once more on a new one. Inside a transaction the
    check is made as usual (the statement could not be run again alone)."""
    db = connections[using]
    if db.in_atomic_block:
        return run()
    db.health_check_done = True
    try:
        return run()
    except (OperationalError, InterfaceError):
        db.close()
        return run()
