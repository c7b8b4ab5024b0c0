"""Migrating balances to lots: what each user still holds becomes lots of the right kind and
cost basis, taken in burn order, and the ledger checks out before and after."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from credits.ledger_check import ledger_check
from credits.models import CreditLot
from payments.models import CreditPackage, Order

BEFORE = [("credits", "0012_lots")]

INSERT_ENTRY = """
INSERT INTO credits_ledgerentry (user_id, amount, kind, balance_before, balance_after, description, metadata,
                                 idempotency_key, source_type, source_id, reverses_id, created_at)
VALUES (%s, %s, %s, %s, %s, '', '{}'::jsonb, %s, %s, %s, %s, now() - %s * interval '1 hour')
RETURNING id
"""
SET_BALANCE = """
UPDATE credits_creditbalance b
   SET balance = s.total, lifetime_earned = s.earned, lifetime_spent = s.spent
  FROM (SELECT user_id, sum(amount) AS total,
               coalesce(sum(amount) FILTER (WHERE kind NOT IN ('SPEND', 'REFUND')), 0) AS earned,
               coalesce(-sum(amount) FILTER (WHERE kind IN ('SPEND', 'REFUND')), 0) AS spent
          FROM credits_ledgerentry GROUP BY user_id) s
 WHERE b.user_id = s.user_id
"""


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _history(user, steps):
    """Write ``steps`` (kind, amount, source or None, reverses step index or None) as a chain."""
    ids, balance = [], 0
    with connection.cursor() as cursor:
        for n, (kind, amount, source, reverses) in enumerate(steps):
            source_type, source_id = source or (None, None)
            cursor.execute(
                INSERT_ENTRY,
                [
                    user.pk,
                    amount,
                    kind,
                    balance,
                    balance + amount,
                    f"legacy:{user.pk}:{n}",
                    source_type,
                    source_id,
                    None if reverses is None else ids[reverses],
                    len(steps) - n,
                ],
            )
            ids.append(cursor.fetchone()[0])
            balance += amount
    return ids


def _order(user, *, credits, amount, currency):
    package = CreditPackage.objects.create(
        name=f"{credits}", credits=credits, price=amount, currency=currency
    )
    return Order.objects.create(
        user=user,
        package=package,
        amount=amount,
        currency=currency,
        credits=credits,
        provider=Order.Provider.SANDBOX,
        status=Order.Status.COMPLETED,
    )


@pytest.mark.django_db(transaction=True)
def test_balances_become_lots_in_burn_order_and_the_ledger_checks_out(make_user):
    buyer, free, spent_all, unsourced = (make_user(verified=False) for _ in range(4))
    first = _order(buyer, credits=100, amount=Decimal("10.00"), currency="USD")
    second = _order(buyer, credits=50, amount=Decimal("7.50"), currency="eur")
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    _migrate(BEFORE)
    try:
        buyer_ids = _history(
            buyer,
            [
                ("TRIAL_GRANT", 10, None, None),
                ("PURCHASE", 100, ("payments.order", first.pk), None),
                ("SPEND", -30, ("generations.job", 1), None),
                ("REFUND", 5, ("generations.job", 1), 2),
                ("BONUS", 4, None, None),
                ("PURCHASE", 50, ("payments.order", second.pk), None),
                ("SPEND", -20, None, None),
                ("ADJUSTMENT", -2, None, None),
            ],
        )
        _history(
            free,
            [
                ("TRIAL_GRANT", 10, None, None),
                ("SPEND", -4, None, None),
                ("REGENERATION", 3, None, None),
                ("SPEND", -7, None, None),
                ("REGENERATION", 5, None, None),
            ],
        )
        _history(spent_all, [("TRIAL_GRANT", 10, None, None), ("SPEND", -10, None, None)])
        unsourced_ids = _history(
            unsourced,
            [
                ("PURCHASE", 40, None, None),
                ("SUBSCRIPTION_GRANT", 30, None, None),
                ("ADJUSTMENT", 6, None, None),
                ("SPEND", -50, None, None),
            ],
        )
        with connection.cursor() as cursor:
            cursor.execute(SET_BALANCE)
        before = ledger_check()
        assert before.clean and not before.lots_checked, before.drift
    finally:
        _migrate(latest)

    after = ledger_check()
    assert after.clean and after.lots_checked, after.drift

    def lots_of(user):
        return list(
            CreditLot.objects.filter(user=user)
            .order_by("id")
            .values_list(
                "grant_entry_id",
                "category",
                "source",
                "original",
                "remaining",
                "cost_basis",
                "currency",
                "expires_at",
            )
        )

    # The buyer used 30 - 5 + 20 + 2 = 47 of 164: the trial (10) and the bonus (4) went first
    # (promotional), then 33 of the oldest purchase; 117 are left.
    assert lots_of(buyer) == [
        (buyer_ids[1], "paid", "purchase", 67, 67, Decimal("0.100000"), "USD", None),
        (buyer_ids[5], "paid", "purchase", 50, 50, Decimal("0.150000"), "EUR", None),
    ]
    first_lot = CreditLot.objects.get(grant_entry_id=buyer_ids[1])
    assert (first_lot.source_type, first_lot.source_id) == ("payments.order", first.pk)
    # 11 used of 18, promotional, oldest first: the trial and 1 of the first regeneration.
    assert [(source, remaining) for _, _, source, _, remaining, *_ in lots_of(free)] == [
        ("regeneration", 2),
        ("regeneration", 5),
    ]
    assert lots_of(spent_all) == []
    # Nothing bought through an order: the adjustment (promotional) goes first, then the
    # purchase and the subscription, paid at an unknown cost basis.
    assert lots_of(unsourced) == [
        (unsourced_ids[1], "paid", "opening", 26, 26, Decimal("0"), "", None),
    ]
