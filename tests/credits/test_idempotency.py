"""Every idempotency key applies once: repeated in turn, and repeated at the same moment."""

import pytest
from django.db import connection

from credits.models import AuditLog, CreditBalance, LedgerEntry, LedgerKind
from credits.services import (
    credits_adjust,
    credits_clawback,
    credits_grant,
    credits_refund,
    credits_spend,
    spending_hold,
    spending_release,
)
from tests.credits.helpers import assert_ledger_clean, balance_of, run_concurrently, state_of


def _operations(user, staff, spend):
    """One call per service, each with its own key; calling one again must change nothing."""
    return {
        "grant": lambda: credits_grant(
            user=user, amount=7, kind=LedgerKind.PURCHASE, idempotency_key="order:1"
        ),
        "spend": lambda: credits_spend(user=user, amount=2, idempotency_key="job:1:charge"),
        "refund": lambda: credits_refund(spend=spend, idempotency_key="job:0:refund", amount=1),
        "adjust": lambda: credits_adjust(
            user=user, amount=-1, reason="Fix", staff_user=staff, idempotency_key="adj:1"
        ),
        "clawback": lambda: credits_clawback(
            user=user, amount=3, idempotency_key="order:0:refund", reason="Refund"
        ),
        "hold": lambda: spending_hold(
            user=user, reason="Dispute", idempotency_key="dispute:1:open"
        ),
        "release": lambda: spending_release(
            user=user, reason="Won", idempotency_key="dispute:1:close"
        ),
    }


@pytest.mark.django_db
def test_each_service_repeated_in_turn_applies_once(make_user, staff_user):
    user = make_user(credits=20)
    spend = credits_spend(user=user, amount=4, idempotency_key="job:0:charge")
    operations = _operations(user, staff_user, spend)
    for name, operation in operations.items():
        first = operation()
        after_first = state_of(user)

        again = operation()

        assert state_of(user) == after_first, f"{name} applied twice"
        if name in ("hold", "release"):
            assert (first, again) == (True, False)
        elif name == "clawback":
            assert again.entry.pk == first.entry.pk
        else:
            assert again.pk == first.pk
    assert balance_of(user) == 20 - 4 + 7 - 2 + 1 - 1 - 3
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_each_service_repeated_concurrently_applies_once(make_user, staff_user):
    user = make_user(credits=20)
    spend = credits_spend(user=user, amount=4, idempotency_key="job:0:charge")
    operations = _operations(user, staff_user, spend)
    for name, operation in operations.items():
        entries, audits = LedgerEntry.objects.count(), AuditLog.objects.count()

        outcomes = run_concurrently([operation] * 8)

        assert [o.error for o in outcomes if o.error] == [], name
        if name in ("hold", "release"):
            assert sorted(o.value for o in outcomes) == [False] * 7 + [True], name
            assert AuditLog.objects.count() == audits + 1
        else:
            ids = {(o.value.entry if name == "clawback" else o.value).pk for o in outcomes}
            assert len(ids) == 1, f"{name} wrote {len(ids)} entries"
            assert LedgerEntry.objects.count() == entries + 1, name
            assert AuditLog.objects.count() == audits + 1, name
    row = CreditBalance.objects.get(user=user)
    assert (row.balance, row.spend_holds) == (20 - 4 + 7 - 2 + 1 - 1 - 3, 0)
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_two_different_refunds_of_one_spend_race_and_one_wins(make_user):
    user = make_user(credits=10)
    spend = credits_spend(user=user, amount=6, idempotency_key="s")

    outcomes = run_concurrently(
        [
            lambda i=i: credits_refund(spend=spend, idempotency_key=f"refund-{i}", amount=3)
            for i in range(6)
        ]
    )

    winners = [o for o in outcomes if o.error is None]
    assert len(winners) == 1
    assert {type(o.error).__name__ for o in outcomes if o.error} == {"RefundNotAllowed"}
    assert all("already been refunded" in str(o.error) for o in outcomes if o.error)
    assert balance_of(user) == 7
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_concurrent_clawbacks_with_one_key_recover_once(make_user):
    user = make_user(credits=10)

    outcomes = run_concurrently(
        [
            lambda: credits_clawback(
                user=user, amount=4, idempotency_key="dispute:9:lost", reason="Lost"
            )
        ]
        * 8
    )

    assert [o.error for o in outcomes if o.error] == []
    assert {(o.value.entry.pk, o.value.recovered) for o in outcomes} == {
        (outcomes[0].value.entry.pk, 4)
    }
    assert balance_of(user) == 6
    assert_ledger_clean()


@pytest.mark.django_db
def test_the_ledger_keeps_one_index_of_its_keys_and_a_repeat_is_found_through_it(make_user):
    """Django's second index for LIKE on a unique text column is gone from the ledger: every
    entry wrote it, nothing reads it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'credits_ledgerentry'"
            " AND indexdef LIKE '%%(idempotency_key%%'"
        )
        assert [name for (name,) in cursor.fetchall()] == [
            "credits_ledgerentry_idempotency_key_key"
        ]
    user = make_user(credits=5)
    credits_spend(user=user, amount=1, idempotency_key="job:9:charge")

    plan = LedgerEntry.objects.filter(idempotency_key="job:9:charge").explain()

    assert "credits_ledgerentry_idempotency_key_key" in plan
    again = credits_spend(user=user, amount=1, idempotency_key="job:9:charge")
    assert again.idempotency_key == "job:9:charge" and balance_of(user) == 4
