"""One INSERT that gives way to a row already stored under the same unique key.

``insert_unless_stored(obj, conflict)`` writes ``obj`` with ``INSERT ... ON CONFLICT
<conflict> DO NOTHING RETURNING id``: one round trip, no savepoint and no exception when the
key is taken (a duplicate webhook delivery, an email already queued for its event), so the
caller's transaction stays usable either way. A twin still uncommitted makes it wait for that
transaction, as a plain INSERT would: its commit means "stored already", its rollback lets
this row in.
"""

from django.db import connection, models


def insert_unless_stored(obj: models.Model, conflict: str) -> bool:
    """INSERT ``obj`` unless ``conflict`` (``(column)`` or ``ON CONSTRAINT name``) is taken;
    True (and ``obj.pk`` set) when it was stored, False when the key was already there."""
    meta = obj._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    # pre_save fills what the ORM fills on insert (auto_now_add and the like).
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT {conflict} DO NOTHING "
        f"RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    return True
