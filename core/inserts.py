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

from django.db import models

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
