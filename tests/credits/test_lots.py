"""Credit lots on real PostgreSQL: burn order, returns to the lots drawn, expiry (by the
statement's clock and by the periodic task), clawback and forfeiture, idempotency."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings

from credits.exceptions import InsufficientCredits, RefundNotAllowed
from credits.models import CreditBalance, CreditLot, LedgerEntry, LedgerKind, LotMovement
from credits.references import Source
from credits.services import (
    balance_refresh,
    credits_adjust,
    credits_clawback,
    credits_forfeit,
    credits_grant,
    credits_refund,
    credits_spend,
    lots_expire_due,
)
from credits.tasks import expire_lots
from tests.credits.helpers import assert_ledger_clean, balance_of
from tests.credits.lots_helpers import (
    assert_lot_invariants,
    by_category,
    db_now,
    lapse,
    lot_of,
    moves,
    remaining,
    wait_for_db_clock,
)

pytestmark = pytest.mark.django_db

ORDER = "payments.order"


def grant(user, amount, kind=LedgerKind.BONUS, *, key, **terms):
    return lot_of(credits_grant(user=user, amount=amount, kind=kind, idempotency_key=key, **terms))


def spend(user, amount, key):
    return credits_spend(user=user, amount=amount, idempotency_key=key)


def entry_of(key) -> LedgerEntry:
    return LedgerEntry.objects.get(idempotency_key=key)


def test_spends_burn_by_priority_then_soonest_expiry_then_promotional_then_oldest(
    make_user, settings
):
    settings.CREDITS_LOT_PRIORITY = {"bonus": 200}
    user = make_user()
    now = db_now()
    in_10_days = now + timedelta(days=10)
    paid_forever = grant(user, 5, LedgerKind.PURCHASE, key="purchase")
    # The soonest expiry, but a higher priority number: it burns last of all.
    bonus = grant(user, 5, key="bonus", expires_at=now + timedelta(days=1))
    # Three lots expiring at the same moment: promotional before paid, older before newer.
    voucher_old = grant(user, 5, LedgerKind.VOUCHER, key="voucher-1", expires_at=in_10_days)
    subscription = grant(user, 5, LedgerKind.SUBSCRIPTION_GRANT, key="sub", expires_at=in_10_days)
    voucher_new = grant(user, 5, LedgerKind.VOUCHER, key="voucher-2", expires_at=in_10_days)
    trial = grant(user, 5, LedgerKind.TRIAL_GRANT, key="trial")  # 30 days by default
    assert trial.expires_at - trial.effective_at == timedelta(days=30)
    assert (subscription.category, voucher_old.category) == ("paid", "promotional")

    taken = [moves(spend(user, amount, f"spend-{amount}")) for amount in (3, 4, 6, 9, 8)]

    assert taken == [
        {voucher_old.pk: -3},
        {voucher_old.pk: -2, voucher_new.pk: -2},
        {voucher_new.pk: -3, subscription.pk: -3},
        {subscription.pk: -2, trial.pk: -5, paid_forever.pk: -2},
        {paid_forever.pk: -3, bonus.pk: -5},
    ]
    with pytest.raises(InsufficientCredits):
        spend(user, 1, "one-more")
    assert balance_of(user) == 0
    assert_lot_invariants()
    assert_ledger_clean()


def test_a_lot_that_lapses_between_spends_is_expired_first_and_never_drawn(make_user):
    user = make_user()
    voucher = grant(user, 10, LedgerKind.VOUCHER, key="v", expires_at=db_now() + timedelta(days=1))
    purchase = grant(user, 20, LedgerKind.PURCHASE, key="p")
    first = spend(user, 4, "s1")
    assert moves(first) == {voucher.pk: -4}

    lapse(voucher)
    second = spend(user, 5, "s2")

    # The statement wrote the lapsed lot's expiry before judging the spend against the rest.
    expiry = entry_of(f"expire:{voucher.pk}")
    assert (expiry.kind, expiry.amount, expiry.balance_before, expiry.balance_after) == (
        LedgerKind.EXPIRY,
        -6,
        26,
        20,
    )
    assert expiry.pk < second.pk and expiry.created_at == second.created_at
    assert (second.balance_before, second.balance_after) == (20, 15)
    assert moves(expiry) == {voucher.pk: -6}
    assert moves(second) == {purchase.pk: -5}
    assert remaining(voucher, purchase) == [0, 15]
    assert_lot_invariants()
    assert_ledger_clean()


def test_expired_credits_are_never_spendable_even_before_the_task_ran(make_user, settings):
    settings.CREDITS_LOT_EXPIRY = {"voucher": timedelta(milliseconds=200)}
    user = make_user()
    voucher = grant(user, 10, LedgerKind.VOUCHER, key="v")  # lapses 200 ms after its grant
    assert voucher.expires_at - voucher.effective_at == timedelta(milliseconds=200)
    wait_for_db_clock(voucher.expires_at)
    entries = LedgerEntry.objects.count()

    with pytest.raises(InsufficientCredits) as refused:
        spend(user, 1, "after")

    assert refused.value.available == 0
    # The refusal wrote nothing, not even the expiry: the balance row still says 10 ...
    assert LedgerEntry.objects.count() == entries
    assert (balance_of(user), remaining(voucher)) == (10, [10])
    # ... until something catches up: a read of the balance (or the periodic task).
    assert balance_refresh(user=user).balance == 0
    assert entry_of(f"expire:{voucher.pk}").amount == -10
    assert lots_expire_due() == 0
    assert_lot_invariants()
    assert_ledger_clean()


def test_settling_below_the_reservation_returns_to_the_lots_last_drawn_first(make_user):
    user = make_user()
    now = db_now()
    soon = grant(user, 10, LedgerKind.VOUCHER, key="v1", expires_at=now + timedelta(days=1))
    later = grant(user, 10, LedgerKind.VOUCHER, key="v2", expires_at=now + timedelta(days=2))
    purchase = grant(user, 50, LedgerKind.PURCHASE, key="p")
    charge = spend(user, 25, "job:1:charge")
    assert moves(charge) == {soon.pk: -10, later.pk: -10, purchase.pk: -5}

    settled = credits_refund(spend=charge, idempotency_key="job:1:refund", amount=12)

    assert moves(settled) == {purchase.pk: 5, later.pk: 7}
    assert remaining(soon, later, purchase) == [0, 7, 50]
    draws = dict(LotMovement.objects.filter(entry=charge).values_list("lot_id", "id"))
    returned = LotMovement.objects.filter(entry=settled).values_list("lot_id", "returns_id")
    assert {lot: draw for lot, draw in returned} == {
        purchase.pk: draws[purchase.pk],
        later.pk: draws[later.pk],
    }
    # One settlement per charge: the rest cannot be returned under another key.
    with pytest.raises(RefundNotAllowed):
        credits_refund(spend=charge, idempotency_key="job:1:refund-again", amount=13)
    assert balance_of(user) == 57
    assert_lot_invariants()
    assert_ledger_clean()


@pytest.mark.parametrize(
    ("lapsing_kind", "other_kind"),
    [
        (LedgerKind.VOUCHER, LedgerKind.PURCHASE),  # promotional credits lapse, paid stay
        (LedgerKind.SUBSCRIPTION_GRANT, LedgerKind.BONUS),  # paid credits lapse, promo stay
    ],
)
def test_a_refund_to_a_lapsed_lot_expires_at_once_and_never_changes_category(
    make_user, lapsing_kind, other_kind
):
    user = make_user()
    lapsing = grant(user, 12, lapsing_kind, key="lapsing", expires_at=db_now() + timedelta(days=1))
    other = grant(user, 20, other_kind, key="other")
    charge = spend(user, 15, "charge")
    assert moves(charge) == {lapsing.pk: -12, other.pk: -3}
    lapse(lapsing)
    before = by_category(user)

    refund = credits_refund(spend=charge, idempotency_key="refund:charge")

    assert (refund.amount, refund.balance_before, refund.balance_after) == (15, 17, 32)
    assert moves(refund) == {other.pk: 3, lapsing.pk: 12}
    expired = entry_of("refund:charge:expired")
    assert (expired.kind, expired.amount, expired.balance_before, expired.balance_after) == (
        LedgerKind.EXPIRY,
        -12,
        32,
        20,
    )
    assert moves(expired) == {lapsing.pk: -12}
    assert remaining(lapsing, other) == [0, 20]
    after = by_category(user)
    assert after[other.category] == before[other.category] + 3
    assert after[lapsing.category] == before[lapsing.category] == 0
    assert CreditLot.objects.filter(user=user).count() == 2  # no lot made to hold them
    assert balance_of(user) == 20
    assert_lot_invariants()
    assert_ledger_clean()


def test_a_refund_after_a_lapse_the_task_has_not_written_expires_both_parts(make_user):
    user = make_user()
    voucher = grant(user, 12, LedgerKind.VOUCHER, key="v", expires_at=db_now() + timedelta(days=1))
    purchase = grant(user, 20, LedgerKind.PURCHASE, key="p")
    charge = spend(user, 10, "charge")
    lapse(voucher)  # 2 credits left in it, not expired by anyone yet

    refund = credits_refund(spend=charge, idempotency_key="refund:charge")

    due = entry_of(f"expire:{voucher.pk}")
    returned = entry_of("refund:charge:expired")
    assert [e.pk for e in (due, refund, returned)] == sorted(e.pk for e in (due, refund, returned))
    assert [(e.amount, e.balance_after) for e in (due, refund, returned)] == [
        (-2, 20),
        (10, 30),
        (-10, 20),
    ]
    assert remaining(voucher, purchase) == [0, 20]
    assert_lot_invariants()
    assert_ledger_clean()


def test_the_expiry_task_writes_one_entry_per_lapsed_lot_and_is_idempotent(make_user):
    users = [make_user() for _ in range(3)]
    lapsing, kept = [], []
    for n, user in enumerate(users):
        expires = db_now() + timedelta(days=1)
        lapsing.append(grant(user, 5 + n, LedgerKind.VOUCHER, key=f"v{n}", expires_at=expires))
        lapsing.append(
            grant(user, 7, LedgerKind.SUBSCRIPTION_GRANT, key=f"s{n}", expires_at=expires)
        )
        kept.append(grant(user, 3, LedgerKind.PURCHASE, key=f"p{n}"))
    spend(users[0], 2, "spent")  # from the voucher: 3 of its 5 are left to expire
    lapse(*lapsing)
    assert django_settings.CELERY_BEAT_SCHEDULE["expire-credit-lots"]["task"] == (
        "credits.tasks.expire_lots"
    )

    assert expire_lots() == 3
    assert expire_lots() == 0

    expiries = LedgerEntry.objects.filter(kind=LedgerKind.EXPIRY).order_by("id")
    assert sorted(e.idempotency_key for e in expiries) == sorted(
        f"expire:{lot.pk}" for lot in lapsing
    )
    assert sorted(e.amount for e in expiries) == [-7, -7, -7, -7, -6, -3]
    assert [balance_of(user) for user in users] == [3, 3, 3]
    assert all(r == 0 for r in remaining(*lapsing))
    assert_lot_invariants()
    assert_ledger_clean()


def test_a_clawback_takes_the_purchase_lot_first_and_voids_its_bonus(make_user):
    user = make_user()
    order = Source(ORDER, 901)
    # An older paid lot: burn order alone would take it before the refunded purchase's.
    other = grant(user, 50, LedgerKind.PURCHASE, key="order-902", source=Source(ORDER, 902))
    purchase = grant(
        user,
        100,
        LedgerKind.PURCHASE,
        key="order-901",
        source=order,
        cost_basis=Decimal("0.05"),
        currency="EUR",
    )
    bonus = grant(user, 20, LedgerKind.BONUS, key="order-901:bonus", source=order)
    trial = grant(user, 10, LedgerKind.TRIAL_GRANT, key="trial")
    assert moves(spend(user, 25, "spend")) == {trial.pk: -10, bonus.pk: -15}

    result = credits_clawback(
        user=user, amount=100, idempotency_key="claw:901", reason="Refunded", source=order
    )

    assert (result.recovered, result.unrecovered) == (100, 0)
    assert moves(result.entry) == {purchase.pk: -100}
    void = entry_of(f"claw:901:void:{bonus.pk}")
    assert (void.kind, void.amount, void.source_id) == (LedgerKind.VOID, -5, 901)
    assert moves(void) == {bonus.pk: -5}
    assert remaining(purchase, bonus, other, trial) == [0, 0, 50, 0]
    assert balance_of(user) == 50
    # A repeat changes nothing and says the same.
    again = credits_clawback(
        user=user, amount=100, idempotency_key="claw:901", reason="Refunded", source=order
    )
    assert (again.entry.pk, again.recovered) == (result.entry.pk, 100)
    assert LedgerEntry.objects.filter(kind=LedgerKind.VOID).count() == 1
    assert_lot_invariants()
    assert_ledger_clean()


def test_a_clawback_goes_on_in_burn_order_and_never_below_zero(make_user):
    user = make_user()
    order = Source(ORDER, 901)
    purchase = grant(user, 100, LedgerKind.PURCHASE, key="order-901", source=order)
    other = grant(user, 50, LedgerKind.PURCHASE, key="order-902", source=Source(ORDER, 902))
    lapsing = grant(user, 7, LedgerKind.VOUCHER, key="v", expires_at=db_now() + timedelta(days=1))
    assert moves(spend(user, 137, "spend")) == {lapsing.pk: -7, purchase.pk: -100, other.pk: -30}
    voucher = grant(user, 9, LedgerKind.VOUCHER, key="v2", expires_at=db_now() + timedelta(days=1))
    lapse(voucher)  # its 9 credits expire, they are not clawed back

    result = credits_clawback(
        user=user, amount=100, idempotency_key="claw:901", reason="Disputed", source=order
    )

    assert (result.recovered, result.unrecovered) == (20, 80)
    assert moves(result.entry) == {other.pk: -20}
    assert entry_of(f"expire:{voucher.pk}").amount == -9
    assert result.entry.metadata["unrecovered"] == 80
    assert balance_of(user) == 0
    assert remaining(purchase, other, lapsing, voucher) == [0, 0, 0, 0]
    assert_lot_invariants()
    assert_ledger_clean()


def test_a_forfeiture_empties_every_lot(make_user):
    user = make_user()
    grant(user, 30, LedgerKind.PURCHASE, key="p")
    grant(user, 10, LedgerKind.VOUCHER, key="v", expires_at=db_now() + timedelta(days=5))
    grant(user, 10, LedgerKind.TRIAL_GRANT, key="t")
    lapsed = grant(user, 5, LedgerKind.VOUCHER, key="l", expires_at=db_now() + timedelta(days=1))
    spend(user, 3, "s")
    lapse(lapsed)

    forfeit = credits_forfeit(user=user, idempotency_key="forfeit", description="Account closed")

    # The spend drew on the soonest expiry; the 2 credits it left lapsed before the forfeiture.
    assert entry_of(f"expire:{lapsed.pk}").amount == -2
    assert forfeit.amount == -50
    assert sorted(moves(forfeit).values()) == [-30, -10, -10]
    assert not CreditLot.objects.filter(user=user, remaining__gt=0).exists()
    assert balance_of(user) == 0
    assert credits_forfeit(user=user, idempotency_key="forfeit", description="x").pk == forfeit.pk
    assert credits_clawback(user=user, amount=5, idempotency_key="c", reason="late").recovered == 0
    assert_lot_invariants()
    assert_ledger_clean()


def test_a_negative_adjustment_draws_in_burn_order_and_never_from_lapsed_lots(
    make_user, staff_user
):
    user = make_user()
    lapsed = grant(user, 8, LedgerKind.VOUCHER, key="l", expires_at=db_now() + timedelta(days=1))
    voucher = grant(user, 4, LedgerKind.VOUCHER, key="v", expires_at=db_now() + timedelta(days=2))
    purchase = grant(user, 10, LedgerKind.PURCHASE, key="p")
    lapse(lapsed)

    with pytest.raises(InsufficientCredits):
        credits_adjust(
            user=user, amount=-15, reason="Too much", staff_user=staff_user, idempotency_key="a0"
        )
    taken = credits_adjust(
        user=user, amount=-6, reason="Duplicate", staff_user=staff_user, idempotency_key="a1"
    )

    assert moves(taken) == {voucher.pk: -4, purchase.pk: -2}
    assert remaining(lapsed, voucher, purchase) == [0, 0, 8]
    assert_lot_invariants()
    assert_ledger_clean()


def test_every_lot_movement_is_idempotent(make_user, staff_user):
    user = make_user()
    order = Source(ORDER, 77)
    calls = [
        lambda: credits_grant(
            user=user,
            amount=40,
            kind=LedgerKind.PURCHASE,
            idempotency_key="order-77",
            source=order,
            cost_basis=Decimal("0.10"),
            currency="usd",
        ),
        lambda: credits_grant(
            user=user, amount=10, kind=LedgerKind.BONUS, idempotency_key="order-77:b", source=order
        ),
        lambda: credits_grant(
            user=user,
            amount=20,
            kind=LedgerKind.VOUCHER,
            idempotency_key="voucher",
            expires_at=db_now() + timedelta(days=1),
        ),
        lambda: credits_spend(user=user, amount=9, idempotency_key="spend-1"),
        lambda: credits_spend(user=user, amount=8, idempotency_key="spend-2"),
        lambda: credits_refund(spend=entry_of("spend-1"), idempotency_key="settle-1", amount=4),
        lambda: credits_adjust(
            user=user, amount=-2, reason="fix", staff_user=staff_user, idempotency_key="adj"
        ),
        lambda: credits_adjust(
            user=user,
            amount=3,
            reason="goodwill",
            staff_user=staff_user,
            idempotency_key="adj+",
            expires_at=db_now() + timedelta(days=3),
        ),
        # (time passes: the voucher lapses)
        lambda: expire_lots(),
        lambda: credits_refund(spend=entry_of("spend-2"), idempotency_key="refund-2"),
        lambda: credits_clawback(
            user=user, amount=30, idempotency_key="claw", reason="refunded", source=order
        ),
        lambda: credits_forfeit(user=user, idempotency_key="forfeit", description="closed"),
    ]
    for n, call in enumerate(calls):
        if n == 8:
            lapse(CreditLot.objects.get(grant_entry__idempotency_key="voucher"))
        call()
    assert_lot_invariants()

    def counts():
        return (
            LedgerEntry.objects.count(),
            CreditLot.objects.count(),
            LotMovement.objects.count(),
            list(CreditLot.objects.order_by("id").values_list("remaining", flat=True)),
            CreditBalance.objects.filter(user=user).values_list("balance", "version").get(),
        )

    before = counts()
    kinds = set(LedgerEntry.objects.filter(user=user).values_list("kind", flat=True))
    assert {"EXPIRY", "VOID", "CLAWBACK", "FORFEIT", "REFUND"} <= kinds
    for call in calls:
        call()
    assert counts() == before
    assert_lot_invariants()
    assert_ledger_clean()
