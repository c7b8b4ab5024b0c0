"""A movement behaves the same whichever way its statements reach the driver: inside the
caller's transaction or outside one, through Django's cursor wrapper (an execute wrapper or
the query log is listening) or straight on the driver's cursor (nothing is)."""

import contextlib

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext

from credits.exceptions import IdempotencyConflict
from credits.models import AuditLog, LedgerEntry, LedgerKind
from credits.services import credits_grant, credits_spend
from tests.credits.helpers import assert_ledger_clean, balance_of

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = ["driver", "execute wrapper", "query log", "inside a transaction"]


@contextlib.contextmanager
def path(name: str, seen: list):
    """Run the movements of the block by way of ``name``; ``seen`` collects what a listener saw."""
    if name == "execute wrapper":

        def wrapper(execute, sql, params, many, context):
            seen.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(wrapper):
            yield
    elif name == "query log":
        with CaptureQueriesContext(connection) as queries:
            yield
        seen.extend(q["sql"] for q in queries.captured_queries)
    elif name == "inside a transaction":
        with transaction.atomic():
            yield
    else:
        yield


def stored(entry: LedgerEntry) -> dict:
    row = LedgerEntry.objects.get(pk=entry.pk)
    return {f.attname: getattr(row, f.attname) for f in LedgerEntry._meta.concrete_fields}


@pytest.mark.parametrize("name", PATHS)
def test_the_entry_a_movement_returns_is_the_row_it_stored(make_user, name):
    user = make_user()
    seen = []
    with path(name, seen):
        grant = credits_grant(
            user=user, amount=10, kind=LedgerKind.BONUS, idempotency_key=f"{name}:grant"
        )
        spend = credits_spend(
            user=user, amount=3, idempotency_key=f"{name}:spend", metadata={"job": 7}
        )

    for entry in (grant, spend):
        assert entry.get_deferred_fields() == set()  # every field given, none loaded later
        returned = {f.attname: getattr(entry, f.attname) for f in LedgerEntry._meta.concrete_fields}
        assert returned == stored(entry)  # created_at to the microsecond included
        assert not entry._state.adding and entry._state.db == "default"
    assert spend.user == user and spend.amount == -3 and spend.metadata == {"job": 7}
    audit = AuditLog.objects.get(metadata__ledger_entry_id=spend.pk)
    assert {k: audit.metadata[k] for k in ("kind", "amount")} == {"kind": "SPEND", "amount": -3}
    assert balance_of(user) == 7
    if name in ("execute wrapper", "query log"):
        assert sum("UPDATE credits_creditbalance" in sql for sql in seen) == 2
    assert_ledger_clean()


@pytest.mark.parametrize("name", PATHS)
def test_a_reused_key_is_refused_the_same_way_on_every_path(make_user, name):
    user, other = make_user(credits=10), make_user(credits=10)
    credits_spend(user=user, amount=2, idempotency_key="once")

    with path(name, []):
        again = credits_spend(user=user, amount=2, idempotency_key="once")
        with pytest.raises(IdempotencyConflict):
            credits_spend(user=other, amount=2, idempotency_key="once")

    assert again.pk == LedgerEntry.objects.get(idempotency_key="once").pk
    assert (balance_of(user), balance_of(other)) == (8, 10)


def test_a_driver_error_outside_a_transaction_comes_out_as_djangos(make_user):
    """Straight on the driver's cursor, a failed statement still raises Django's exception
    (what the callers catch), and the connection is usable after it."""
    from credits.ledger_sql import DRAW, Movement, _run_locked, statement_for

    user = make_user(credits=5)
    credits_spend(user=user, amount=1, idempotency_key="taken")
    sql, params = statement_for(
        Movement(
            user_id=user.pk,
            delta=-1,
            kind=LedgerKind.SPEND,
            idempotency_key="taken",
            action="credits.spend",
        ),
        mode=DRAW,
    )
    with pytest.raises(IntegrityError):
        _run_locked(sql, params)

    credits_spend(user=user, amount=1, idempotency_key="after")
    assert balance_of(user) == 3


def test_a_listener_of_model_init_hears_the_returned_entry(make_user):
    heard = []

    def listener(sender, instance, **kwargs):
        heard.append(instance.idempotency_key)

    post_init.connect(listener, sender=LedgerEntry)
    try:
        entry = credits_grant(
            user=make_user(), amount=4, kind=LedgerKind.BONUS, idempotency_key="heard"
        )
    finally:
        post_init.disconnect(listener, sender=LedgerEntry)

    assert heard == ["heard"] and entry.amount == 4


def movement_plans() -> tuple[int, int]:
    """(generic, custom) plans this connection's prepared spend statement was run with."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT generic_plans, custom_plans FROM pg_prepared_statements
                WHERE statement LIKE '%%INSERT INTO credits_ledgerentry%%'
                  AND statement LIKE '%%draws AS MATERIALIZED%%'"""
        )
        [row] = cursor.fetchall()
    return row


@pytest.mark.parametrize("name", ["driver", "inside a transaction"])
def test_a_spend_statement_is_planned_once_per_connection_not_at_each_spend(make_user, name):
    """The server would plan each of a prepared statement's first five executions on a
    connection for the values given, right after the user's lock is granted; a movement uses
    the statement's generic plan from the first. On a new connection the statement is run
    once more, before the lock, for no user: that run parses and plans it, and writes
    nothing."""
    user = make_user(credits=10)
    connection.close()  # a new connection: nothing prepared on it yet
    entries, audit_rows = LedgerEntry.objects.count(), AuditLog.objects.count()
    with path(name, []):
        for number in range(7):
            credits_spend(user=user, amount=1, idempotency_key=f"{name}:planned:{number}")

    assert movement_plans() == (1 + 7, 0)
    assert balance_of(user) == 3
    assert LedgerEntry.objects.count() == entries + 7
    assert AuditLog.objects.count() == audit_rows + 7
    assert_ledger_clean()


def test_a_large_user_id_is_planned_before_the_lock_in_the_same_prepared_statement(make_user):
    """The driver sends a small integer as smallint, a larger one as integer: the run before
    the lock uses an id of the same type as the user's, or it would prepare a statement of
    its own and leave the user's to be parsed under the lock. 32768 is the first integer."""
    user = make_user(id=32768, credits=10)
    connection.close()
    for number in range(3):
        credits_spend(user=user, amount=1, idempotency_key=f"large:{number}")

    assert movement_plans() == (1 + 3, 0)  # one prepared statement, run four times
    assert balance_of(user) == 7


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


def test_the_callers_transaction_keeps_its_own_plan_cache_mode(make_user):
    user = make_user(credits=10)
    connection.close()  # the first movement on a connection sets it once more, before its lock
    with transaction.atomic():
        credits_spend(user=user, amount=1, idempotency_key="mode:default")
        assert plan_cache_mode() == "auto"
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        credits_spend(user=user, amount=1, idempotency_key="mode:custom")
        with pytest.raises(IdempotencyConflict):  # a failed movement puts it back too
            credits_spend(user=make_user(credits=5), amount=1, idempotency_key="mode:custom")
        assert plan_cache_mode() == "force_custom_plan"

    credits_spend(user=user, amount=1, idempotency_key="mode:alone")
    assert plan_cache_mode() == "auto"
    assert balance_of(user) == 7
