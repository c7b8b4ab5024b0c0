"""One INSERT that gives way to a row already stored under the same unique key.

``insert_unless_stored(obj, conflict)`` writes ``obj`` with the INSERT ``obj.save()`` would
send (``core.db.insert_statement``, compiled once per model) and ``ON CONFLICT <conflict> DO
NOTHING``: one round trip, no savepoint and no exception when the key is taken (a duplicate
webhook delivery, an email already queued for its event), so the caller's transaction stays
usable either way. A twin still uncommitted makes it wait for that transaction, as a plain
INSERT would: its commit means "stored already", its rollback lets this row in.

The statement is prepared once per connection (``core.db.prepared_cursor``): the values
travel as parameters instead of being quoted into its text, and the server plans it once.
"""

from collections.abc import Sequence

from django.db import connection, models

from core.db import insert_statement, inserted, prepared_cursor


def insert_unless_stored(obj: models.Model, conflict: str) -> bool:
    """INSERT ``obj`` unless ``conflict`` (``(column)`` or ``ON CONSTRAINT name``) is taken;
    True (and ``obj`` completed with its primary key) when it was stored, False when the key
    was already there."""
    sql, params = insert_statement(obj)
    values, returning = sql.rsplit(" RETURNING ", 1)
    with prepared_cursor() as cursor:
        cursor.execute(f"{values} ON CONFLICT {conflict} DO NOTHING RETURNING {returning}", params)
        row = cursor.fetchone()
    if row is None:
        return False
    inserted(obj, row)
    return True


def insert_many_unless_stored(
    objs: Sequence[models.Model], conflict: str, key: Sequence[str]
) -> list[bool]:
    """``insert_unless_stored`` for several new objects of one model in one INSERT (one round
    trip, one commit outside a transaction). ``key``: the attribute names of the unique key
    ``conflict`` names, by which the rows stored are matched back to their objects. Returns,
    in order, whether each object was stored (and completed with its primary key); of two
    objects with the same key, the first is stored and the second is not."""
    if len(objs) < 2:
        return [insert_unless_stored(obj, conflict) for obj in objs]
    statements = [insert_statement(obj) for obj in objs]
    sql = statements[0][0]
    if any(other != sql for other, _ in statements):
        # Values that are expressions (compiled per object): one at a time.
        return [insert_unless_stored(obj, conflict) for obj in objs]
    head, returning = sql.rsplit(" RETURNING ", 1)
    insert, values = head.split(" VALUES ", 1)
    meta = objs[0]._meta
    table = connection.ops.quote_name(meta.db_table)
    columns = [meta.get_field(name).column for name in key]
    key_returning = ", ".join(f"{table}.{connection.ops.quote_name(c)}" for c in columns)
    params = [param for _, obj_params in statements for param in obj_params]
    with prepared_cursor() as cursor:
        cursor.execute(
            f"{insert} VALUES {', '.join([values] * len(objs))} ON CONFLICT {conflict} "
            f"DO NOTHING RETURNING {returning}, {key_returning}",
            params,
        )
        rows = cursor.fetchall()
    width = len(meta.db_returning_fields)
    stored_rows = {tuple(row[width:]): row[:width] for row in rows}
    stored = []
    for obj in objs:
        row = stored_rows.pop(tuple(getattr(obj, name) for name in key), None)
        if row is not None:
            inserted(obj, row)
        stored.append(row is not None)
    return stored
