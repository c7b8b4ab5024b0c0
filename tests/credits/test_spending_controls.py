"""Spending caps and the low-balance threshold, kept by the spend statement itself.

Caps count the credits spent (net of refunds of those spends) in the current calendar day and
month of CREDITS_CAP_TIMEZONE; a threshold is crossed when a movement takes the balance from at
or above it to below, once per fall. Real PostgreSQL, real concurrent callers.
"""

import pytest
from django.db import connection

from credits import crossings
from credits.exceptions import InsufficientCredits, InvalidAmount, SpendingCapReached
from credits.models import AuditLog, BalanceCrossing, CreditBalance, LedgerEntry, LedgerKind
from credits.services import (
    SpendingControls,
    credits_grant,
    credits_refund,
    credits_spend,
    spending_controls_set,
    spending_top_up_threshold_set,
)
from tests.credits.helpers import assert_ledger_clean, run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def _spend(user, amount, key):
    return credits_spend(user=user, amount=amount, idempotency_key=key)


def _row(user) -> CreditBalance:
    return CreditBalance.objects.get(user=user)


def _crossings(user, kind=BalanceCrossing.Kind.LOW_BALANCE):
    return list(BalanceCrossing.objects.filter(user=user, kind=kind).order_by("id"))


def test_a_spend_that_would_pass_the_daily_cap_is_refused_with_the_reason(make_user):
    user = make_user(credits=100)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=10))
    _spend(user, 6, "a")

    with pytest.raises(SpendingCapReached) as refused:
        _spend(user, 5, "b")

    assert refused.value.code == "spending_cap"
    assert "daily spending cap of 10" in str(refused.value)
    assert "6 spent so far" in str(refused.value)
    assert _row(user).balance == 94
    assert not LedgerEntry.objects.filter(idempotency_key="b").exists()
    _spend(user, 4, "c")  # exactly up to the cap is allowed
    assert _row(user).spent_in_day == 10
    assert_ledger_clean()


def test_the_monthly_cap_counts_every_day_of_the_month(make_user):
    user = make_user(credits=100)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=50, monthly_cap=12))
    _spend(user, 8, "a")
    # Yesterday's spending (same month, unless today is the 1st) still counts for the month.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE credits_creditbalance SET spent_day = spent_day - 1"
            " WHERE user_id = %s AND extract(day FROM spent_day) > 1",
            [user.pk],
        )
    with pytest.raises(SpendingCapReached) as refused:
        _spend(user, 5, "b")
    assert "monthly spending cap of 12" in str(refused.value)


def test_a_new_day_starts_from_nothing_spent(make_user):
    user = make_user(credits=100)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=10))
    _spend(user, 10, "a")
    with pytest.raises(SpendingCapReached):
        _spend(user, 1, "b")
    # The counter names the window it counts; an earlier window counts as nothing spent.
    CreditBalance.objects.filter(user=user).update(spent_day="2020-01-01", spent_month="2020-01-01")

    _spend(user, 10, "c")

    row = _row(user)
    assert row.spent_in_day == 10 and str(row.spent_day) != "2020-01-01"


def test_a_refunded_spend_no_longer_counts_against_the_cap(make_user):
    user = make_user(credits=100)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=10))
    spend = _spend(user, 10, "a")
    with pytest.raises(SpendingCapReached):
        _spend(user, 3, "b")

    credits_refund(spend=spend, amount=4, idempotency_key="r")

    assert _row(user).spent_in_day == 6
    _spend(user, 4, "c")
    assert _row(user).spent_in_day == 10
    assert_ledger_clean()


def test_grants_and_staff_movements_do_not_count_as_spending(make_user):
    user = make_user(credits=5)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=3))
    credits_grant(user=user, amount=50, kind=LedgerKind.BONUS, idempotency_key="g")
    assert _row(user).spent_in_day == 0
    _spend(user, 3, "a")
    with pytest.raises(SpendingCapReached):
        _spend(user, 1, "b")


def test_a_cap_of_zero_stops_all_spending_and_no_cap_means_none(make_user):
    user = make_user(credits=10)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=0))
    with pytest.raises(SpendingCapReached):
        _spend(user, 1, "a")
    spending_controls_set(user=user, controls=SpendingControls())
    _spend(user, 10, "b")
    with pytest.raises(InsufficientCredits):
        _spend(user, 1, "c")


def test_fifty_concurrent_spends_never_pass_the_cap(make_user):
    user = make_user(credits=1000)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=20))

    outcomes = run_concurrently([lambda i=i: _spend(user, 1, f"s{i}") for i in range(50)])

    succeeded = [o for o in outcomes if o.error is None]
    refused = [o.error for o in outcomes if o.error is not None]
    assert len(succeeded) == 20
    assert all(isinstance(e, SpendingCapReached) for e in refused), refused[:3]
    row = _row(user)
    assert row.spent_in_day == 20 and row.balance == 980
    assert LedgerEntry.objects.filter(user=user, kind=LedgerKind.SPEND).count() == 20
    assert_ledger_clean()


def test_controls_are_validated_and_audited(make_user, staff_user):
    user = make_user(credits=10)
    with pytest.raises(InvalidAmount):
        spending_controls_set(user=user, controls=SpendingControls(daily_cap=-1))
    with pytest.raises(InvalidAmount):
        spending_controls_set(user=user, controls=SpendingControls(monthly_cap="5"))
    assert _row(user).daily_cap is None

    spending_controls_set(user=user, controls=SpendingControls(daily_cap=7), actor=staff_user)

    audit = AuditLog.objects.filter(user=user, action="credits.controls").get()
    assert audit.actor_id == staff_user.pk
    assert audit.metadata["after"]["daily_cap"] == 7


def test_falling_below_the_threshold_is_one_crossing_until_the_balance_is_back(make_user):
    user = make_user(credits=60)
    spending_controls_set(user=user, controls=SpendingControls(low_balance_threshold=50))

    _spend(user, 10, "a")  # 60 -> 50: at the threshold, not below
    assert _crossings(user) == []
    entry = _spend(user, 10, "b")  # 50 -> 40: crossed
    _spend(user, 10, "c")  # 40 -> 30: still below, no second crossing

    [crossing] = _crossings(user)
    assert (crossing.threshold, crossing.balance_before, crossing.balance_after) == (50, 50, 40)
    assert crossing.entry_id == entry.pk

    credits_grant(user=user, amount=20, kind=LedgerKind.BONUS, idempotency_key="g")  # 50: re-armed
    assert _row(user).low_balance_armed
    _spend(user, 1, "d")  # 50 -> 49: a new fall
    assert [c.balance_after for c in _crossings(user)] == [40, 49]


def test_a_threshold_set_while_below_it_waits_for_the_balance_to_come_back(make_user):
    user = make_user(credits=10)
    spending_controls_set(user=user, controls=SpendingControls(low_balance_threshold=50))
    _spend(user, 1, "a")
    assert _crossings(user) == []


def test_concurrent_spends_across_the_threshold_make_one_crossing(make_user):
    user = make_user(credits=100)
    spending_controls_set(user=user, controls=SpendingControls(low_balance_threshold=75))

    run_concurrently([lambda i=i: _spend(user, 1, f"s{i}") for i in range(50)])

    [crossing] = _crossings(user)
    assert (crossing.balance_before, crossing.balance_after) == (75, 74)
    assert _row(user).balance == 50


def test_expiry_of_credits_can_cross_the_threshold_too(make_user):
    from datetime import timedelta

    from django.utils import timezone

    from credits.services import lots_expire_due

    user = make_user(credits=10)
    credits_grant(
        user=user,
        amount=30,
        kind=LedgerKind.BONUS,
        idempotency_key="soon",
        expires_at=timezone.now() + timedelta(seconds=1),
    )
    spending_controls_set(user=user, controls=SpendingControls(low_balance_threshold=20))
    with connection.cursor() as cursor:  # the database clock passes the expiry
        cursor.execute("SELECT pg_sleep(1.1)")

    lots_expire_due()

    [crossing] = _crossings(user)
    assert (crossing.balance_before, crossing.balance_after) == (40, 10)


def test_the_top_up_threshold_is_crossed_on_its_own(make_user):
    user = make_user(credits=30)
    spending_top_up_threshold_set(user=user, threshold=25)
    _spend(user, 10, "a")
    assert [c.balance_after for c in _crossings(user, BalanceCrossing.Kind.TOP_UP)] == [20]
    assert _crossings(user) == []


def test_a_crossing_is_handled_once_its_movement_commits(make_user, monkeypatch):
    seen = []
    monkeypatch.setitem(crossings._HANDLERS, BalanceCrossing.Kind.LOW_BALANCE, seen.append)
    user = make_user(credits=20)
    spending_controls_set(user=user, controls=SpendingControls(low_balance_threshold=15))

    _spend(user, 10, "a")  # the task is sent after the commit (run in place in these tests)

    [crossing] = _crossings(user)
    assert seen == [crossing] and crossing.handled_at is not None
    assert crossings.crossings_handle() == 0  # the sweep finds nothing left to do


def test_a_failed_crossing_is_kept_with_its_error_and_tried_again_later(
    make_user, monkeypatch, settings
):
    seen, fail = [], {"on": True}

    def handler(crossing):
        if fail["on"]:
            raise RuntimeError("mail server down")
        seen.append(crossing.pk)

    monkeypatch.setitem(crossings._HANDLERS, BalanceCrossing.Kind.LOW_BALANCE, handler)
    user = make_user(credits=20)
    spending_controls_set(user=user, controls=SpendingControls(low_balance_threshold=15))
    _spend(user, 10, "a")

    [crossing] = _crossings(user)
    assert crossing.attempts == 1 and "mail server down" in crossing.last_error
    assert crossing.handled_at is None

    fail["on"] = False
    assert crossings.crossings_handle() == 0  # waits before the retry
    BalanceCrossing.objects.filter(pk=crossing.pk).update(
        created_at=crossing.created_at - crossings.RETRY_STEP
    )
    assert crossings.crossings_handle() == 1
    assert crossings.crossings_handle() == 0
    assert seen == [crossing.pk]
    crossing.refresh_from_db()
    assert crossing.handled_at is not None and crossing.last_error == ""
