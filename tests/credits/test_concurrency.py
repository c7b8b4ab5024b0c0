"""Many callers at once against real PostgreSQL: no overdraft, nothing lost, nothing doubled."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from credits.exceptions import InsufficientCredits, RefundNotAllowed, SpendingFrozen
from credits.models import CreditBalance, LedgerEntry, LedgerKind
from credits.services import (
    balance_refresh,
    credits_grant,
    credits_refund,
    credits_spend,
    spending_hold,
)
from tests.credits.helpers import assert_ledger_clean, run_concurrently
from tests.credits.lots_helpers import lapse, lot_of

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


def _queued_for(user) -> int:
    """How many transactions wait in the user's queue for the balance row's lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = 1129465156 AND objid = %s",
            [user.pk],
        )
        return cursor.fetchone()[0]


def _wait_until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_spends_waiting_on_one_user_go_in_the_order_they_arrived(make_user):
    user = make_user(credits=10)
    release = threading.Event()

    def held_spend():
        try:
            with transaction.atomic():
                credits_spend(user=user, amount=1, idempotency_key="first")
                release.wait(timeout=30)
        finally:
            connection.close()

    def spend(key):
        try:
            return credits_spend(user=user, amount=1, idempotency_key=key)
        finally:
            connection.close()

    holder = threading.Thread(target=held_spend)
    holder.start()
    _wait_until(lambda: _held(user), "the first spend holds the lock")
    with ThreadPoolExecutor(max_workers=5) as pool:
        waiting = []
        for n in range(5):
            waiting.append(pool.submit(spend, f"waiting-{n}"))
            _wait_until(lambda n=n: _queued_for(user) == n + 1, f"spend {n} is queued")
        release.set()
        entries = [future.result(timeout=30) for future in waiting]
    holder.join(timeout=30)

    # Each took the balance the one before it left, in the order they arrived: 9, 8, ..., 5.
    assert [e.balance_before for e in entries] == [9, 8, 7, 6, 5]
    assert CreditBalance.objects.get(user=user).balance == 4
    assert_ledger_clean()


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def _held(user) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = 1129465156 AND objid = %s",
            [user.pk],
        )
        return cursor.fetchone()[0] == 1


def _spend_queued_behind(user, first, then, *, amount: int, key: str):
    """In one transaction run ``first``, then wait until a spend of ``amount`` (``key``) is
    queued behind it, then run ``then`` and commit. Returns the spend's finished future."""
    done_first, release = threading.Event(), threading.Event()

    def transaction_in_two_steps():
        try:
            with transaction.atomic():
                first()
                done_first.set()
                release.wait(timeout=30)
                then()
        finally:
            connection.close()

    def spend():
        try:
            return credits_spend(user=user, amount=amount, idempotency_key=key)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        holding = pool.submit(transaction_in_two_steps)
        assert done_first.wait(timeout=10)
        spending = pool.submit(spend)
        _wait_until(lambda: _waiting_on_locks() == 1, "the spend waits")
        release.set()
        holding.result(timeout=30)
    return spending  # done: leaving the pool waited for it


def test_a_hold_placed_while_a_spend_waits_is_seen_by_that_spend(make_user):
    """Freezing spending and then moving credits in the same transaction queues like any
    movement: a spend that arrived in between waits, then sees the freeze (no deadlock)."""
    user = make_user(credits=10)
    spending = _spend_queued_behind(
        user,
        lambda: spending_hold(user=user, reason="dispute opened", idempotency_key="hold-1"),
        lambda: credits_grant(user=user, amount=5, kind=LedgerKind.BONUS, idempotency_key="g-1"),
        amount=1,
        key="during-hold",
    )
    with pytest.raises(SpendingFrozen):
        spending.result()

    assert CreditBalance.objects.get(user=user).balance == 15
    assert_ledger_clean()


def test_a_catch_up_in_a_transaction_queues_like_a_movement(make_user):
    """Writing an expiry that fell due locks the balance row the way a movement does: a spend
    arriving while that transaction goes on to grant credits waits for it, then spends."""
    user = make_user()
    expiring = credits_grant(user=user, amount=4, kind=LedgerKind.BONUS, idempotency_key="old")
    lapse(lot_of(expiring))

    def catch_up():
        assert balance_refresh(user=user).balance == 0  # the lapsed lot expired

    spending = _spend_queued_behind(
        user,
        catch_up,
        lambda: credits_grant(user=user, amount=3, kind=LedgerKind.BONUS, idempotency_key="new"),
        amount=2,
        key="after-catch-up",
    )
    assert spending.result().balance_before == 3

    assert CreditBalance.objects.get(user=user).balance == 1
    assert_ledger_clean()
