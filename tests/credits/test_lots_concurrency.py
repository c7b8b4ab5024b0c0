"""Lots under concurrent callers on real PostgreSQL: spends against lots of different expiry
and category while the expiry task and grants run: exactly the right spends succeed, nothing
lapsed is ever drawn, every invariant holds."""

import random
from datetime import timedelta

import pytest

from credits.exceptions import InsufficientCredits
from credits.models import CreditLot, LedgerEntry, LedgerKind
from credits.services import credits_grant, credits_spend
from credits.tasks import expire_lots
from tests.credits.helpers import assert_ledger_clean, balance_of, run_concurrently
from tests.credits.lots_helpers import (
    assert_lot_invariants,
    db_now,
    lapse,
    live_credits_of,
    lot_of,
    remaining,
)

pytestmark = pytest.mark.django_db(transaction=True)

#: Threads (and so database connections) at once: the server is shared.
WORKERS = 10


def grant(user, amount, kind, key, **terms):
    return lot_of(credits_grant(user=user, amount=amount, kind=kind, idempotency_key=key, **terms))


def lots_of(user, prefix):
    """Live lots of every kind and two lots that have lapsed with credits left (not written)."""
    soon, later = db_now() + timedelta(days=1), db_now() + timedelta(days=2)
    live = [
        grant(user, 4, LedgerKind.PURCHASE, f"{prefix}-purchase"),
        grant(user, 5, LedgerKind.VOUCHER, f"{prefix}-voucher", expires_at=later),
        grant(user, 3, LedgerKind.SUBSCRIPTION_GRANT, f"{prefix}-sub", expires_at=soon),
    ]
    lapsed = [
        grant(user, 6, LedgerKind.BONUS, f"{prefix}-bonus", expires_at=soon),
        grant(user, 4, LedgerKind.SUBSCRIPTION_GRANT, f"{prefix}-old-sub", expires_at=soon),
    ]
    lapse(*lapsed)
    return live, lapsed


def test_fifty_spends_against_mixed_lots_with_expiry_and_grants_running(make_user):
    exact, granted_to, bystander = make_user(), make_user(), make_user()
    _, exact_lapsed = lots_of(exact, "exact")  # 12 live credits, 10 lapsed
    _, granted_lapsed = lots_of(granted_to, "granted")  # 12 live, 10 lapsed
    _, bystander_lapsed = lots_of(bystander, "bystander")
    assert live_credits_of(exact) == live_credits_of(granted_to) == 12

    calls = [
        lambda u=user, i=i: credits_spend(user=u, amount=1, idempotency_key=f"{u.pk}-spend-{i}")
        for user in (exact, granted_to)
        for i in range(25)
    ]
    later = db_now() + timedelta(days=3)
    calls += [
        expire_lots,
        expire_lots,
        lambda: credits_grant(
            user=granted_to, amount=4, kind=LedgerKind.PURCHASE, idempotency_key="g-purchase"
        ),
        lambda: credits_grant(
            user=granted_to,
            amount=3,
            kind=LedgerKind.VOUCHER,
            idempotency_key="g-voucher",
            expires_at=later,
        ),
        lambda: credits_grant(
            user=bystander, amount=5, kind=LedgerKind.BONUS, idempotency_key="g-bystander"
        ),
    ]
    random.Random(12).shuffle(calls)

    outcomes = run_concurrently(calls, workers=WORKERS)

    errors = [o.error for o in outcomes if o.error is not None]
    assert all(isinstance(e, InsufficientCredits) for e in errors), errors[:3]

    def spends(user):
        return LedgerEntry.objects.filter(user=user, kind=LedgerKind.SPEND)

    # Exactly the live credits were spent, one at a time, each against the balance the one
    # before left (the lapsed credits expired first, whoever wrote them).
    assert spends(exact).count() == 12
    assert sorted(spends(exact).values_list("balance_before", flat=True)) == list(range(1, 13))
    assert balance_of(exact) == 0
    # Where grants raced the spends, what was spent and what is left add up to what was live.
    assert spends(granted_to).count() + balance_of(granted_to) == 12 + 4 + 3
    assert balance_of(granted_to) == live_credits_of(granted_to)
    assert balance_of(bystander) == 12 + 5
    # Every lapsed lot expired exactly once, with all it held, and was never drawn.
    for lot in exact_lapsed + granted_lapsed + bystander_lapsed:
        [expiry] = LedgerEntry.objects.filter(idempotency_key=f"expire:{lot.pk}")
        assert expiry.amount == -lot.original
        assert not lot.movements.exclude(entry__kind=LedgerKind.EXPIRY).exists()
    assert remaining(*exact_lapsed, *granted_lapsed, *bystander_lapsed) == [0] * 6
    assert not CreditLot.objects.filter(remaining__gt=0, expires_at__lte=db_now()).exists()
    assert_lot_invariants()
    assert_ledger_clean()


def test_the_expiry_task_run_twice_at_once_expires_each_lot_once(make_user):
    users = [make_user() for _ in range(4)]
    lapsed = [lot for n, user in enumerate(users) for lot in lots_of(user, f"u{n}")[1]]

    outcomes = run_concurrently([expire_lots, expire_lots, expire_lots])

    assert [o.error for o in outcomes] == [None, None, None]
    # Each user was caught up by one run or another; no lot twice.
    assert sum(o.value for o in outcomes) >= len(users)
    for lot in lapsed:
        assert LedgerEntry.objects.filter(idempotency_key=f"expire:{lot.pk}").count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerKind.EXPIRY).count() == len(lapsed)
    assert [balance_of(user) for user in users] == [12] * len(users)
    assert expire_lots() == 0
    assert_lot_invariants()
    assert_ledger_clean()
