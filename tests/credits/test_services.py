"""What each money service does, and that every refusal is clear and writes nothing."""

import pytest
from django.db import transaction

from credits.exceptions import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    InvalidIdempotencyKey,
    InvalidKind,
    RefundNotAllowed,
    SpendingFrozen,
    StaffRequired,
)
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
from tests.credits.helpers import assert_ledger_clean, balance_of, state_of

pytestmark = pytest.mark.django_db


def test_grant_spend_refund_move_the_balance_and_keep_totals(make_user):
    user = make_user()

    grant = credits_grant(
        user=user,
        amount=50,
        kind=LedgerKind.PURCHASE,
        idempotency_key="order:1:purchase",
        description="Starter pack",
    )
    spend = credits_spend(user=user, amount=20, idempotency_key="job:1:charge", description="Image")
    refund = credits_refund(
        spend=spend, idempotency_key="job:1:refund", amount=5, reason="Cheaper than estimated"
    )

    assert (grant.balance_before, grant.balance_after) == (0, 50)
    assert (spend.amount, spend.balance_before, spend.balance_after) == (-20, 50, 30)
    assert (refund.amount, refund.balance_after, refund.reverses_id) == (5, 35, spend.pk)
    row = CreditBalance.objects.get(user=user)
    assert (row.balance, row.lifetime_earned, row.lifetime_spent) == (35, 50, 15)
    stored = LedgerEntry.objects.get(pk=spend.pk)
    assert (stored.kind, stored.amount, stored.description) == ("SPEND", -20, "Image")
    actions = list(
        AuditLog.objects.filter(user=user)
        .order_by("id")
        .values_list("action", "metadata__ledger_entry_id")
    )
    assert actions == [
        ("credits.grant", grant.pk),
        ("credits.spend", spend.pk),
        ("credits.refund", refund.pk),
    ]
    assert_ledger_clean()


def test_refund_defaults_to_the_whole_spend(make_user):
    user = make_user(credits=10)
    spend = credits_spend(user=user, amount=7, idempotency_key="s")

    refund = credits_refund(spend=spend, idempotency_key="r")

    assert refund.amount == 7
    assert balance_of(user) == 10


def test_adjustment_by_staff_either_way_with_reason(make_user, staff_user):
    user = make_user(credits=10)

    up = credits_adjust(
        user=user, amount=5, reason="Goodwill", staff_user=staff_user, idempotency_key="a1"
    )
    down = credits_adjust(
        user=user, amount=-12, reason="Duplicate grant", staff_user=staff_user, idempotency_key="a2"
    )

    assert (up.balance_after, down.balance_after) == (15, 3)
    assert down.created_by_id == staff_user.pk
    row = CreditBalance.objects.get(user=user)
    assert (row.lifetime_earned, row.lifetime_spent) == (3, 0)
    assert AuditLog.objects.get(metadata__ledger_entry_id=down.pk).actor_id == staff_user.pk
    assert_ledger_clean()


def test_clawback_takes_what_is_left_and_reports_the_rest(make_user):
    user = make_user(credits=30)
    credits_spend(user=user, amount=25, idempotency_key="s")

    result = credits_clawback(
        user=user, amount=30, idempotency_key="order:9:refund", reason="Refunded order"
    )

    assert (result.requested, result.recovered, result.unrecovered) == (30, 5, 25)
    assert result.entry.amount == -5
    assert balance_of(user) == 0
    again = credits_clawback(
        user=user, amount=30, idempotency_key="order:9:refund", reason="Refunded order"
    )
    assert again.entry.pk == result.entry.pk and again.recovered == 5
    assert_ledger_clean()


def test_clawback_of_an_empty_balance_records_zero(make_user):
    user = make_user()

    result = credits_clawback(user=user, amount=8, idempotency_key="c", reason="Chargeback")

    assert (result.recovered, result.unrecovered, result.entry.amount) == (0, 8, 0)
    assert_ledger_clean()


def test_spending_hold_blocks_spends_not_grants_until_released(make_user):
    user = make_user(credits=10)
    assert spending_hold(user=user, reason="Dispute opened", idempotency_key="dispute:1:open")
    assert not spending_hold(user=user, reason="Dispute opened", idempotency_key="dispute:1:open")
    before = state_of(user)

    with pytest.raises(SpendingFrozen):
        credits_spend(user=user, amount=1, idempotency_key="blocked")

    assert state_of(user) == before
    credits_grant(user=user, amount=1, kind=LedgerKind.BONUS, idempotency_key="still-granted")
    assert spending_release(user=user, reason="Dispute won", idempotency_key="dispute:1:close")
    assert credits_spend(user=user, amount=1, idempotency_key="after").balance_after == 10


def test_release_without_a_hold_changes_nothing(make_user):
    user = make_user()

    assert spending_release(user=user, reason="Stray", idempotency_key="stray") is False
    assert CreditBalance.objects.get(user=user).spend_holds == 0


def test_spend_inside_a_callers_transaction_joins_it(make_user):
    user = make_user(credits=10)

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            credits_spend(user=user, amount=4, idempotency_key="rolled-back")
            raise RuntimeError("the job could not be created")

    assert balance_of(user) == 10
    assert not LedgerEntry.objects.filter(idempotency_key="rolled-back").exists()


def test_a_refused_spend_leaves_the_callers_transaction_usable(make_user):
    user = make_user(credits=3)

    with transaction.atomic():
        with pytest.raises(InsufficientCredits):
            credits_spend(user=user, amount=4, idempotency_key="too-much")
        credits_spend(user=user, amount=3, idempotency_key="fits")

    assert balance_of(user) == 0


def test_a_missing_balance_row_is_created_on_first_grant(make_user):
    user = make_user()
    CreditBalance.objects.filter(user=user).delete()

    credits_grant(user=user, amount=4, kind=LedgerKind.BONUS, idempotency_key="first")

    assert balance_of(user) == 4


# --- bad input: a clear error, nothing written ---------------------------------------------


@pytest.mark.parametrize("amount", [0, -1, 1.5, "3", True, None, 10**12])
def test_grant_and_spend_refuse_amounts_that_are_not_positive_whole_credits(make_user, amount):
    user = make_user(credits=5)
    before = state_of(user)

    with pytest.raises(InvalidAmount, match="whole number of credits above zero|allowed at once"):
        credits_grant(user=user, amount=amount, kind=LedgerKind.BONUS, idempotency_key="bad-grant")
    with pytest.raises(InvalidAmount):
        credits_spend(user=user, amount=amount, idempotency_key="bad-spend")

    assert state_of(user) == before


@pytest.mark.parametrize("kind", ["SPEND", "REFUND", "REGENERATION", "CLAWBACK", "FREE_MONEY", ""])
def test_grant_refuses_kinds_that_are_not_grants(make_user, kind):
    user = make_user()
    before = state_of(user)

    with pytest.raises(InvalidKind, match="is not a kind of grant"):
        credits_grant(user=user, amount=5, kind=kind, idempotency_key="bad-kind")

    assert state_of(user) == before


@pytest.mark.parametrize("key", ["", "   ", None, 42, "k" * 256])
def test_services_refuse_unusable_idempotency_keys(make_user, key):
    user = make_user(credits=5)
    before = state_of(user)

    with pytest.raises(InvalidIdempotencyKey):
        credits_grant(user=user, amount=1, kind=LedgerKind.BONUS, idempotency_key=key)
    with pytest.raises(InvalidIdempotencyKey):
        credits_spend(user=user, amount=1, idempotency_key=key)

    assert state_of(user) == before


def test_spend_beyond_the_balance_is_refused_with_both_figures(make_user):
    user = make_user(credits=5)
    before = state_of(user)

    with pytest.raises(InsufficientCredits) as exc:
        credits_spend(user=user, amount=6, idempotency_key="too-much")

    assert (exc.value.needed, exc.value.available) == (6, 5)
    assert "this needs 6, the balance is 5" in str(exc.value)
    assert state_of(user) == before


def test_refund_of_a_refund_is_refused(make_user):
    user = make_user(credits=5)
    spend = credits_spend(user=user, amount=5, idempotency_key="s")
    refund = credits_refund(spend=spend, idempotency_key="r")
    before = state_of(user)

    with pytest.raises(RefundNotAllowed, match="Only a spend can be refunded, not a refund"):
        credits_refund(spend=refund, idempotency_key="r-of-r")

    assert state_of(user) == before


def test_refund_of_a_grant_is_refused(make_user):
    user = make_user(credits=5)
    grant = LedgerEntry.objects.get(user=user)
    before = state_of(user)

    with pytest.raises(RefundNotAllowed, match="not a bonus"):
        credits_refund(spend=grant, idempotency_key="r")

    assert state_of(user) == before


def test_refund_larger_than_the_spend_is_refused(make_user):
    user = make_user(credits=10)
    spend = credits_spend(user=user, amount=4, idempotency_key="s")
    before = state_of(user)

    with pytest.raises(RefundNotAllowed, match="A refund of 5 is more than the 4 credits"):
        credits_refund(spend=spend, idempotency_key="r", amount=5)

    assert state_of(user) == before


def test_refund_trusts_the_stored_spend_not_the_callers_copy(make_user):
    user = make_user(credits=10)
    spend = credits_spend(user=user, amount=4, idempotency_key="s")
    spend.amount = -400  # a stale or tampered copy

    with pytest.raises(RefundNotAllowed, match="more than the 4 credits"):
        credits_refund(spend=spend, idempotency_key="r", amount=400)


@pytest.mark.parametrize("amount", [0, -3])
def test_refund_of_zero_or_negative_is_refused(make_user, amount):
    user = make_user(credits=10)
    spend = credits_spend(user=user, amount=4, idempotency_key="s")
    before = state_of(user)

    with pytest.raises(InvalidAmount):
        credits_refund(spend=spend, idempotency_key="r", amount=amount)

    assert state_of(user) == before


def test_second_refund_of_a_spend_is_refused_even_when_partial(make_user):
    user = make_user(credits=10)
    spend = credits_spend(user=user, amount=6, idempotency_key="s")
    credits_refund(spend=spend, idempotency_key="r1", amount=2)
    before = state_of(user)

    with pytest.raises(RefundNotAllowed, match="already been refunded"):
        credits_refund(spend=spend, idempotency_key="r2", amount=2)

    assert state_of(user) == before


def test_refund_of_an_unsaved_entry_is_refused(make_user):
    user = make_user()

    with pytest.raises(RefundNotAllowed, match="stored ledger entry"):
        credits_refund(spend=LedgerEntry(user=user, kind="SPEND", amount=-3), idempotency_key="r")


def test_adjustment_needs_staff_a_reason_and_a_non_zero_amount(make_user, staff_user):
    user = make_user(credits=5)
    before = state_of(user)

    with pytest.raises(StaffRequired):
        credits_adjust(
            user=user, amount=5, reason="Because", staff_user=make_user(), idempotency_key="a"
        )
    with pytest.raises(StaffRequired):
        credits_adjust(user=user, amount=5, reason="Because", staff_user=None, idempotency_key="a")
    with pytest.raises(InvalidAmount, match="needs a reason"):
        credits_adjust(user=user, amount=5, reason="  ", staff_user=staff_user, idempotency_key="a")
    with pytest.raises(InvalidAmount, match="other than zero"):
        credits_adjust(
            user=user, amount=0, reason="Nothing", staff_user=staff_user, idempotency_key="a"
        )

    assert state_of(user) == before


def test_adjustment_never_takes_the_balance_below_zero(make_user, staff_user):
    user = make_user(credits=5)
    before = state_of(user)

    with pytest.raises(InsufficientCredits):
        credits_adjust(
            user=user, amount=-6, reason="Too much", staff_user=staff_user, idempotency_key="a"
        )

    assert state_of(user) == before


def test_a_key_reused_for_a_different_operation_is_refused(make_user):
    user, other = make_user(credits=10), make_user(credits=10)
    credits_spend(user=user, amount=3, idempotency_key="job:7:charge")
    before = state_of(user)

    with pytest.raises(IdempotencyConflict):
        credits_spend(user=user, amount=4, idempotency_key="job:7:charge")
    with pytest.raises(IdempotencyConflict):
        credits_spend(user=other, amount=3, idempotency_key="job:7:charge")
    with pytest.raises(IdempotencyConflict):
        credits_grant(user=user, amount=3, kind=LedgerKind.BONUS, idempotency_key="job:7:charge")

    assert state_of(user) == before


@pytest.mark.parametrize("prepared", [True, False])
def test_movements_work_with_and_without_prepared_statements(make_user, settings, prepared):
    settings.CREDITS_PREPARED_STATEMENTS = prepared
    user = make_user()
    for i in range(7):  # past the point where the server switches to a generic plan
        credits_grant(user=user, amount=3, kind=LedgerKind.BONUS, idempotency_key=f"g{i}")
        credits_spend(user=user, amount=1, idempotency_key=f"s{i}")

    assert balance_of(user) == 14
    assert_ledger_clean()


def test_the_debug_log_shows_each_statement_with_its_values(make_user, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = make_user(credits=5)
    with CaptureQueriesContext(connection) as queries:
        credits_spend(user=user, amount=2, idempotency_key="logged-spend")

    # (inside the test's transaction: SAVEPOINT, the balance row's lock, the movement, the
    # plan cache mode put back, RELEASE)
    lock, statement, plans = [
        q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]
    ]
    assert "set_config('plan_cache_mode'" in plans
    assert f"pg_advisory_xact_lock(1129465156, ({user.pk}::bigint" in lock
    assert lock.strip().endswith(f"WHERE b.user_id = {user.pk} FOR UPDATE OF b")
    assert "UPDATE credits_creditbalance" in statement and "'logged-spend'" in statement
