"""Emptying the test database after a transactional test, quickly.

Django's teardown of a transactional test (``flush``) truncates every table and then recreates
the content types and permissions through ``post_migrate``: over a second on a busy machine,
for each of the suite's two hundred transactional tests, although a test writes to a handful of
tables. Here the teardown leaves the database in exactly the state that flush leaves it in, by
doing only the work the test made necessary:

- the first teardown of the run is Django's own flush; what it leaves (the content types, the
  permissions, the site) is recorded, row for row;
- later teardowns find the tables holding rows (one query) and empty those: ``DELETE`` under
  deferred constraints, or ``TRUNCATE`` where a trigger refuses deletes (the append-only ledger
  and its lots), together with every table whose foreign keys point at them, as flush would;
- when a test changed what flush leaves behind, Django's flush runs instead.
"""

from django.core.management import call_command
from django.db import connections, transaction
from django.test import TransactionTestCase

#: Rows of each table that Django's flush leaves in place, by database alias (None: not known).
_baseline: dict[str, dict[str, str]] = {}
_schema: dict[str, tuple[list[str], set[str], dict[str, set[str]]]] = {}


def _schema_of(connection) -> tuple[list[str], set[str], dict[str, set[str]]]:
    """(the model tables, those whose rows a trigger guards against DELETE, who refers to whom)."""
    if connection.alias not in _schema:
        tables = sorted(
            connection.introspection.django_table_names(only_existing=True, include_views=False)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger "
                "WHERE NOT tgisinternal AND (tgtype & 8) <> 0"  # row or statement, ON DELETE
            )
            guarded = {name for (name,) in cursor.fetchall()}
            cursor.execute(
                "SELECT confrelid::regclass::text, conrelid::regclass::text FROM pg_constraint "
                "WHERE contype = 'f'"
            )
            referrers: dict[str, set[str]] = {}
            for target, source in cursor.fetchall():
                referrers.setdefault(target, set()).add(source)
        _schema[connection.alias] = (tables, guarded & set(tables), referrers)
    return _schema[connection.alias]


def _fingerprints(connection, tables) -> dict[str, str]:
    """A digest of every row of each of ``tables``."""
    if not tables:
        return {}
    qn = connection.ops.quote_name
    sql = " UNION ALL ".join(
        f"SELECT %s, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {qn(name)} t"
        for name in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(tables))
        return dict(cursor.fetchall())


def _tables_with_rows(connection, tables) -> list[str]:
    qn = connection.ops.quote_name
    sql = " UNION ALL ".join(f"SELECT %s WHERE EXISTS (SELECT FROM {qn(name)})" for name in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql, list(tables))
        return [name for (name,) in cursor.fetchall()]


def _empty(connection) -> bool:
    """Empty the tables the test wrote to; False when a full flush is needed instead."""
    tables, guarded, referrers = _schema_of(connection)
    baseline = _baseline[connection.alias]
    written = _tables_with_rows(connection, tables)
    kept = [name for name in written if name in baseline]
    if _fingerprints(connection, kept) != {name: baseline[name] for name in kept}:
        return False
    if len(kept) != len(baseline):  # a test removed rows flush would have recreated
        return False
    to_clear = [name for name in written if name not in baseline]
    # TRUNCATE needs every table referring to a truncated one in the same statement.
    truncate = {name for name in to_clear if name in guarded}
    pending = list(truncate)
    while pending:
        for source in referrers.get(pending.pop(), ()):
            if source not in truncate:
                truncate.add(source)
                pending.append(source)
    if truncate & set(baseline):
        return False
    qn = connection.ops.quote_name
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        if truncate:
            cursor.execute(f"TRUNCATE {', '.join(qn(name) for name in sorted(truncate))}")
        for name in to_clear:
            if name not in truncate:
                cursor.execute(f"DELETE FROM {qn(name)}")
    return True


_django_fixture_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown(self):
    if self.available_apps is not None or self.serialized_rollback or self.reset_sequences:
        return _django_fixture_teardown(self)
    for alias in self._databases_names(include_mirrors=False):
        connection = connections[alias]
        if alias in _baseline and _empty(connection):
            continue
        call_command("flush", verbosity=0, interactive=False, database=alias, reset_sequences=False)
        tables = _schema_of(connection)[0]
        _baseline[alias] = _fingerprints(connection, _tables_with_rows(connection, tables))


def install() -> None:
    TransactionTestCase._fixture_teardown = _fixture_teardown
