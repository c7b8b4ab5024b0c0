"""Migrating to (source_type, source_id): every entry keeps its order or job, no row is lost,
and the ledger still checks out."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from credits.ledger_check import ledger_check
from credits.models import LedgerEntry
from credits.references import Source
from generations.models import GenerationJob
from payments.models import CreditPackage, Order

BEFORE = [("credits", "0009_ledger_forfeit")]

INSERT = """
INSERT INTO credits_ledgerentry (user_id, amount, kind, balance_before, balance_after, description, metadata,
                                 idempotency_key, order_id, job_id, created_at)
VALUES (%s, %s, %s, %s, %s, '', '{}'::jsonb, %s, %s, %s, now())
RETURNING id
"""


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_order_and_job_links_become_the_source_pair(make_user):
    user = make_user(verified=False)
    assert not LedgerEntry.objects.exists()
    package = CreditPackage.objects.create(name="Small", credits=50, price=Decimal("5.00"))
    order = Order.objects.create(
        user=user,
        package=package,
        amount=Decimal("5.00"),
        currency="USD",
        credits=50,
        provider=Order.Provider.SANDBOX,
    )
    job = GenerationJob.objects.create(
        user=user,
        operation="image",
        model="svg-procedural",
        prompt="a lighthouse",
        estimated_credits=3,
        credits_charged=3,
        status=GenerationJob.Status.COMPLETED,
    )
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    _migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            rows = []
            for amount, kind, before, key, order_id, job_id in [
                (50, "PURCHASE", 0, "m:purchase", order.pk, None),
                (-3, "SPEND", 50, "m:spend", None, job.pk),
                (5, "BONUS", 47, "m:bonus", None, None),
            ]:
                cursor.execute(
                    INSERT, [user.pk, amount, kind, before, before + amount, key, order_id, job_id]
                )
                rows.append(cursor.fetchone()[0])
            cursor.execute(
                "INSERT INTO credits_creditbalance (user_id, balance, lifetime_earned, lifetime_spent,"
                " spend_holds, version, updated_at) VALUES (%s, 52, 55, 3, 0, 3, now())"
                " ON CONFLICT (user_id) DO UPDATE SET balance = 52, lifetime_earned = 55,"
                " lifetime_spent = 3",
                [user.pk],
            )
    finally:
        _migrate(latest)

    stored = {
        e.pk: (e.idempotency_key, e.source, e.amount) for e in LedgerEntry.objects.filter(user=user)
    }
    assert stored == {
        rows[0]: ("m:purchase", Source("payments.order", order.pk), 50),
        rows[1]: ("m:spend", Source("generations.job", job.pk), -3),
        rows[2]: ("m:bonus", None, 5),
    }
    report = ledger_check()
    assert report.clean and report.entries == 3, report.drift
    call_command("check_ledger", stdout=io.StringIO())  # exits non-zero on any drift
