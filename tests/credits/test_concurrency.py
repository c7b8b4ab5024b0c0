"""Many callers at once against real PostgreSQL: no overdraft, nothing lost, nothing doubled."""

import random

import pytest

from credits.exceptions import InsufficientCredits, RefundNotAllowed
from credits.models import CreditBalance, LedgerEntry, LedgerKind
from credits.services import credits_grant, credits_refund, credits_spend
from tests.credits.helpers import assert_ledger_clean, run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_spends_of_one_against_twenty_credits(make_user):
    user = make_user(credits=20)

    outcomes = run_concurrently(
        [
            lambda i=i: credits_spend(user=user, amount=1, idempotency_key=f"spend-{i}")
            for i in range(50)
        ]
    )

    succeeded = [o for o in outcomes if o.error is None]
    refused = [o for o in outcomes if o.error is not None]
    assert len(succeeded) == 20
    assert all(isinstance(o.error, InsufficientCredits) for o in refused), [
        o.error for o in refused
    ][:3]
    assert CreditBalance.objects.get(user=user).balance == 0
    assert LedgerEntry.objects.filter(user=user, kind=LedgerKind.SPEND).count() == 20
    # Each spend saw the balance the previous one left: 20, 19, ..., 1.
    befores = sorted(o.value.balance_before for o in succeeded)
    assert befores == list(range(1, 21))
    assert_ledger_clean()


def test_mixed_grants_spends_and_refunds_at_once_add_up(make_user):
    users = [make_user(credits=10) for _ in range(3)]
    spends = {
        u.pk: [
            credits_spend(user=u, amount=2, idempotency_key=f"seed-spend-{u.pk}-{i}")
            for i in range(3)
        ]
        for u in users
    }
    rng = random.Random(7)
    calls, expected = [], {u.pk: 10 - 6 for u in users}
    for i in range(60):
        user = rng.choice(users)
        roll = rng.random()
        if roll < 0.3:
            calls.append(
                lambda u=user, i=i: credits_grant(
                    user=u, amount=3, kind=LedgerKind.BONUS, idempotency_key=f"grant-{i}"
                )
            )
        elif roll < 0.8:
            calls.append(
                lambda u=user, i=i: credits_spend(user=u, amount=2, idempotency_key=f"spend-{i}")
            )
        else:
            spend = rng.choice(spends[user.pk])
            calls.append(
                lambda s=spend, i=i: credits_refund(spend=s, idempotency_key=f"refund-{i}")
            )

    outcomes = run_concurrently(calls, workers=16)

    for outcome in outcomes:
        assert outcome.error is None or isinstance(
            outcome.error, (InsufficientCredits, RefundNotAllowed)
        ), outcome
        if outcome.error is None:
            entry = outcome.value
            expected[entry.user_id] += entry.amount
    for user in users:
        row = CreditBalance.objects.get(user=user)
        assert row.balance == expected[user.pk] >= 0
        assert row.balance == row.lifetime_earned - row.lifetime_spent
        refunds = LedgerEntry.objects.filter(user=user, kind=LedgerKind.REFUND)
        assert refunds.values("reverses").distinct().count() == refunds.count() <= 3
    assert_ledger_clean()
