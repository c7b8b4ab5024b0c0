"""check_ledger proves the lot invariants: each kind of drift, made for real in the database
(rows inserted by SQL, the lots' own triggers lifted inside the test's transaction), is named."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from credits.models import CreditLot, LedgerEntry, LedgerKind
from credits.services import credits_grant, credits_refund, credits_spend
from tests.credits.helpers import check_ledger

pytestmark = pytest.mark.django_db

ENTRY = """
INSERT INTO credits_ledgerentry (user_id, amount, kind, balance_before, balance_after, description, metadata,
                                 idempotency_key, reverses_id, created_at)
VALUES (%s, %s, %s, %s, %s, '', '{}'::jsonb, %s, %s, now() - %s * interval '1 day')
RETURNING id
"""
LOT = """
INSERT INTO credits_creditlot (user_id, category, source, original, remaining, priority, effective_at, expires_at,
                               cost_basis, currency, grant_entry_id, created_at)
SELECT user_id, %s, %s, amount, %s, 100, created_at, NULL, %s, %s, id, created_at
  FROM credits_ledgerentry WHERE id = %s
RETURNING id
"""
MOVE = """
INSERT INTO credits_lotmovement (entry_id, lot_id, credits, returns_id, created_at)
VALUES (%s, %s, %s, %s, now()) RETURNING id
"""


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


def drift_report() -> str:
    """check_ledger's report, which must have found drift (exit status 1)."""
    status, output = check_ledger()
    assert status == 1, output
    return output


def lift(table, trigger):
    """Turn ``trigger`` off for the rest of the test's transaction (rolled back with it)."""
    sql("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign key checks may remain
    sql(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")


@pytest.fixture
def lots(make_user):
    """A purchase of 20 (paid lot), a spend of 8 from it, 3 of it refunded, a bonus of 5."""
    user = make_user(verified=False)
    purchase = sql(ENTRY, [user.pk, 20, "PURCHASE", 0, 20, "p", None, 10])[0]
    spend = sql(ENTRY, [user.pk, -8, "SPEND", 20, 12, "s", None, 5])[0]
    refund = sql(ENTRY, [user.pk, 3, "REFUND", 12, 15, "r", spend, 4])[0]
    bonus = sql(ENTRY, [user.pk, 5, "BONUS", 15, 20, "b", None, 3])[0]
    paid = sql(LOT, ["paid", "purchase", 15, "0.1", "USD", purchase])[0]
    promo = sql(LOT, ["promotional", "bonus", 5, 0, "", bonus])[0]
    draw = sql(MOVE, [spend, paid, -8, None])[0]
    back = sql(MOVE, [refund, paid, 3, draw])[0]
    sql(
        "UPDATE credits_creditbalance SET balance = 20, lifetime_earned = 25, lifetime_spent = 5"
        " WHERE user_id = %s",
        [user.pk],
    )
    return {
        "user": user,
        "spend": spend,
        "paid": paid,
        "promo": promo,
        "draw": draw,
        "back": back,
        "purchase": purchase,
    }


def test_consistent_lots_are_clean(lots):
    status, output = check_ledger()

    assert status == 0, output
    assert "2 lots, no drift" in output


def test_a_lot_changed_below_its_movements_is_drift(lots):
    sql("UPDATE credits_creditlot SET remaining = remaining - 1 WHERE id = %s", [lots["paid"]])

    output = drift_report()

    assert "balance 20 but its 2 lots hold 19" in output
    assert (
        f"1 lots whose remaining is not original + their movements (first lot #{lots['paid']})"
        in output
    )


def test_a_spend_whose_movements_do_not_add_up_is_drift(lots):
    sql(MOVE, [lots["spend"], lots["promo"], -1, None])
    sql("UPDATE credits_creditlot SET remaining = 4 WHERE id = %s", [lots["promo"]])
    sql(
        "UPDATE credits_creditbalance SET balance = 19, lifetime_earned = 24 WHERE user_id = %s",
        [lots["user"].pk],
    )

    output = drift_report()

    assert "entries whose lot movements do not add up to their amount" in output
    assert f"(first entry #{lots['spend']})" in output


def test_a_grant_without_its_lot_is_drift(lots):
    user = lots["user"]
    sql(ENTRY, [user.pk, 7, "BONUS", 20, 27, "lost", None, 1])
    sql(
        "UPDATE credits_creditbalance SET balance = 27, lifetime_earned = 32 WHERE user_id = %s",
        [user.pk],
    )

    output = drift_report()

    assert "1 entries with a missing, wrong or misplaced lot" in output
    assert "balance 27 but its 2 lots hold 20" in output


def test_a_lot_whose_original_is_not_its_grant_is_drift(lots):
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    sql("UPDATE credits_creditlot SET original = 21, remaining = 16 WHERE id = %s", [lots["paid"]])
    sql("UPDATE credits_creditlot SET remaining = 4 WHERE id = %s", [lots["promo"]])

    output = drift_report()

    assert "missing, wrong or misplaced lot" in output
    assert f"(first entry #{lots['purchase']})" in output


def test_a_return_larger_than_its_draw_is_drift(lots):
    lift("credits_lotmovement", "credits_lotmovement_append_only")
    sql("UPDATE credits_lotmovement SET credits = 9 WHERE id = %s", [lots["back"]])

    output = drift_report()

    assert (
        f"1 draws given back more than they took, or to another lot (first draw movement #{lots['draw']})"
        in output
    )


def test_a_draw_from_an_expired_lot_is_drift(lots):
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    sql(
        "UPDATE credits_creditlot SET expires_at = effective_at + interval '1 day' WHERE id = %s",
        [lots["paid"]],
    )

    output = drift_report()

    assert (
        f"1 spends or adjustments that drew from a lot not live at their time (first entry #{lots['spend']})"
        in output
    )


def test_a_negative_adjustment_from_an_expired_lot_is_drift(lots):
    user = lots["user"]
    adjustment = sql(ENTRY, [user.pk, -2, "ADJUSTMENT", 20, 18, "adj", None, 1])[0]
    sql(MOVE, [adjustment, lots["paid"], -2, None])
    sql("UPDATE credits_creditlot SET remaining = 13 WHERE id = %s", [lots["paid"]])
    sql(
        "UPDATE credits_creditbalance SET balance = 18, lifetime_earned = 23 WHERE user_id = %s",
        [user.pk],
    )
    assert check_ledger()[0] == 0  # drawn while the lot was live
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    # the lot lapsed after the spend (5 days ago) and before the adjustment (1 day ago)
    sql(
        "UPDATE credits_creditlot SET expires_at = now() - interval '3 days' WHERE id = %s",
        [lots["paid"]],
    )

    output = drift_report()

    assert (
        f"1 spends or adjustments that drew from a lot not live at their time (first entry #{adjustment})"
        in output
    )


def test_a_draw_from_another_users_lot_is_drift(lots, make_user):
    other = make_user(verified=False)
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    sql("UPDATE credits_creditlot SET user_id = %s WHERE id = %s", [other.pk, lots["promo"]])

    output = drift_report()

    assert f"user {other.pk}:" in output
    assert "missing, wrong or misplaced lot" in output


def test_a_grant_with_movements_is_drift(lots):
    sql(MOVE, [lots["purchase"], lots["promo"], -1, None])
    sql("UPDATE credits_creditlot SET remaining = 4 WHERE id = %s", [lots["promo"]])

    output = drift_report()

    assert (
        f"1 entries whose lot movements do not add up to their amount (first entry #{lots['purchase']})"
        in output
    )


def test_a_lot_made_by_an_entry_that_is_not_a_grant_is_drift(lots):
    sql(
        "INSERT INTO credits_creditlot (user_id, category, source, original, remaining, priority,"
        " effective_at, expires_at, cost_basis, currency, grant_entry_id, created_at)"
        " SELECT user_id, 'promotional', 'bonus', 1, 1, 100, created_at, NULL, 0, '', id, created_at"
        " FROM credits_ledgerentry WHERE id = %s",
        [lots["spend"]],
    )

    output = drift_report()

    assert "1 entries with a missing, wrong or misplaced lot" in output
    assert f"(first entry #{lots['spend']})" in output


def test_a_spend_from_another_users_lot_is_drift(lots, make_user):
    user, other = lots["user"], make_user(verified=False)
    purchase = sql(ENTRY, [other.pk, 10, "PURCHASE", 0, 10, "o-p", None, 10])[0]
    theirs = sql(LOT, ["paid", "purchase", 10, "0.1", "USD", purchase])[0]
    spend = sql(ENTRY, [user.pk, -2, "SPEND", 20, 18, "s2", None, 2])[0]
    sql(MOVE, [spend, theirs, -2, None])
    sql("UPDATE credits_creditlot SET remaining = 8 WHERE id = %s", [theirs])
    sql(
        "UPDATE credits_creditbalance SET balance = 18, lifetime_spent = 7 WHERE user_id = %s",
        [user.pk],
    )
    sql(
        "UPDATE credits_creditbalance SET balance = 10, lifetime_earned = 10 WHERE user_id = %s",
        [other.pk],
    )

    output = drift_report()

    assert "1 entries that moved credits of another user's lot" in output
    assert f"user {other.pk}:" in output  # its lot holds less than its balance


def test_a_return_to_another_lot_than_its_draw_is_drift(lots):
    user = lots["user"]
    spend = sql(ENTRY, [user.pk, -2, "SPEND", 20, 18, "s2", None, 2])[0]
    draw = sql(MOVE, [spend, lots["promo"], -2, None])[0]
    refund = sql(ENTRY, [user.pk, 1, "REFUND", 18, 19, "r2", spend, 1])[0]
    sql(MOVE, [refund, lots["paid"], 1, draw])  # the draw was from the promotional lot
    sql("UPDATE credits_creditlot SET remaining = 3 WHERE id = %s", [lots["promo"]])
    sql("UPDATE credits_creditlot SET remaining = 16 WHERE id = %s", [lots["paid"]])
    sql(
        "UPDATE credits_creditbalance SET balance = 19, lifetime_spent = 6 WHERE user_id = %s",
        [user.pk],
    )

    output = drift_report()

    assert (
        f"user {user.pk}: 1 draws given back more than they took, or to another lot "
        f"(first draw movement #{draw})" in output
    )


def test_a_draw_from_a_lot_not_yet_effective_is_drift(lots):
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    sql(
        "UPDATE credits_creditlot SET effective_at = now() - interval '1 day' WHERE id = %s",
        [lots["paid"]],
    )

    output = drift_report()

    assert (
        f"1 spends or adjustments that drew from a lot not live at their time (first entry #{lots['spend']})"
        in output
    )


def test_entries_before_the_cutover_need_no_movements(lots):
    user = lots["user"]
    spend = sql(ENTRY, [user.pk, -2, "SPEND", 20, 18, "old-s", None, 0])[0]
    refund = sql(ENTRY, [user.pk, 2, "REFUND", 18, 20, "old-r", spend, 0])[0]

    status, output = check_ledger()
    assert status == 1
    assert (
        f"2 entries whose lot movements do not add up to their amount (first entry #{spend})"
        in output
    )

    sql("DELETE FROM credits_lotcutover")
    sql("INSERT INTO credits_lotcutover (id, last_entry_id) VALUES (1, %s)", [refund])
    status, output = check_ledger()
    assert status == 0, output


MIGRATED_LOT = """
INSERT INTO credits_creditlot (user_id, category, source, original, remaining, priority, effective_at, expires_at,
                               cost_basis, currency, grant_entry_id, created_at)
SELECT user_id, 'paid', 'opening', %s, %s, 100, created_at, NULL, 0, '', id, now()
  FROM credits_ledgerentry WHERE id = %s
RETURNING id
"""


@pytest.fixture
def spent_before_lots(make_user):
    """A purchase of 20 and a spend of 8 written before the lots: 12 left in a migrated lot."""
    user = make_user(verified=False)
    purchase = sql(ENTRY, [user.pk, 20, "PURCHASE", 0, 20, "old-p", None, 10])[0]
    spend = sql(ENTRY, [user.pk, -8, "SPEND", 20, 12, "old-s", None, 5])[0]
    sql(MIGRATED_LOT, [12, 12, purchase])
    sql(
        "UPDATE credits_creditbalance SET balance = 12, lifetime_earned = 20, lifetime_spent = 8"
        " WHERE user_id = %s",
        [user.pk],
    )
    sql("DELETE FROM credits_lotcutover")
    sql("INSERT INTO credits_lotcutover (id, last_entry_id) VALUES (1, %s)", [spend])
    return user, LedgerEntry.objects.get(pk=spend)


def test_a_grant_before_the_cutover_whose_lot_holds_more_than_it_granted_is_drift(
    spent_before_lots,
):
    user, _spend = spent_before_lots
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    sql("UPDATE credits_creditlot SET original = 25 WHERE user_id = %s", [user.pk])

    output = drift_report()

    assert "1 entries with a missing, wrong or misplaced lot" in output


def test_a_refund_of_a_spend_from_before_the_lots_is_clean(spent_before_lots):
    _user, spend = spent_before_lots

    refund = credits_refund(spend=spend, idempotency_key="old-s:refund", amount=5)

    lot = CreditLot.objects.get(grant_entry=refund)
    assert (lot.source, lot.category, lot.original) == ("opening", "promotional", 5)
    assert not refund.lot_movements.exists()
    status, output = check_ledger()
    assert status == 0, output


def test_a_refund_whose_opening_lot_does_not_hold_it_is_drift(spent_before_lots):
    _user, spend = spent_before_lots
    refund = credits_refund(spend=spend, idempotency_key="old-s:refund", amount=5)
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    sql(
        "UPDATE credits_creditlot SET original = 4, remaining = 4 WHERE grant_entry_id = %s",
        [refund.pk],
    )

    output = drift_report()

    assert (
        f"1 entries whose lot movements do not add up to their amount (first entry #{refund.pk})"
        in output
    )

    sql(
        "UPDATE credits_creditlot SET original = 5, remaining = 5, source = 'bonus'"
        " WHERE grant_entry_id = %s",
        [refund.pk],
    )
    output = drift_report()

    assert "1 entries with a missing, wrong or misplaced lot" in output
    assert f"(first entry #{refund.pk})" in output


def test_a_refund_to_a_lapsed_lot_expires_it_at_once_and_is_clean(make_user):
    user = make_user(verified=False)
    credits_grant(user=user, amount=10, kind=LedgerKind.PURCHASE, idempotency_key="p")
    bonus = credits_grant(
        user=user,
        amount=5,
        kind=LedgerKind.BONUS,
        idempotency_key="b",
        expires_at=timezone.now() + timedelta(days=1),
    )
    spend = credits_spend(user=user, amount=7, idempotency_key="s")  # 5 bonus, then 2 paid
    # The bonus lapses after the spend (the database clock is not moved, the lot is).
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    sql(
        "UPDATE credits_creditlot SET expires_at = %s WHERE grant_entry_id = %s",
        [spend.created_at + timedelta(microseconds=1), bonus.pk],
    )

    credits_refund(spend=spend, idempotency_key="s:refund")

    expired = LedgerEntry.objects.get(idempotency_key="s:refund:expired")
    assert (expired.kind, expired.amount, expired.balance_after) == ("EXPIRY", -5, 10)
    status, output = check_ledger()
    assert status == 0, output


def test_findings_of_several_kinds_in_one_user_are_counted_apart(lots):
    user = lots["user"]
    lift("credits_creditlot", "credits_lot_only_remaining_changes")
    # the paid lot now lapsed before the spend drew from it (5 days ago)
    sql(
        "UPDATE credits_creditlot SET expires_at = effective_at + interval '1 day' WHERE id = %s",
        [lots["paid"]],
    )
    # two spends written without movements, the second one out of the chain
    first = sql(ENTRY, [user.pk, -2, "SPEND", 20, 18, "s2", None, 2])[0]
    second = sql(ENTRY, [user.pk, -3, "SPEND", 17, 14, "s3", None, 1])[0]

    output = drift_report()

    assert f"user {user.pk}:" in output
    assert (
        f"2 entries whose lot movements do not add up to their amount (first entry #{first})"
        in output
    )
    assert "1 entries whose balance_before does not follow the previous entry" in output
    assert f"first broken entry #{second}" in output
    assert (
        f"1 spends or adjustments that drew from a lot not live at their time "
        f"(first entry #{lots['spend']})" in output
    )
    assert "missing, wrong or misplaced lot" not in output
    assert "another user's lot" not in output
