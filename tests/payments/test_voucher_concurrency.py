"""Never over-redeemed: many real database sessions racing for a voucher's last uses, and one
user racing themself, end with exactly the uses the voucher allows and one grant per redemption."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from credits.models import CreditBalance, CreditLot, LedgerEntry
from payments.models import Order, Voucher, VoucherRedemption
from payments.orders import order_create
from payments.vouchers import VoucherAlreadyRedeemed, VoucherInvalid, voucher_redeem

from .voucher_helpers import make_voucher

pytestmark = pytest.mark.django_db(transaction=True)


def free_connections() -> int:
    """Connections the server can still open (others share it), less a margin for them."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity)"
        )
        return cursor.fetchone()[0] - 10


def race(calls, *, sessions: int | None = None):
    """Run the calls at once, each in its own transaction; every call's result or error.

    Each of ``sessions`` threads (one per call when the server has the connections free)
    connects first, then all are released at the same instant and run their share of the
    calls back to back.
    """
    sessions = max(1, min(len(calls), sessions or len(calls), free_connections()))
    shares = [calls[i::sessions] for i in range(sessions)]
    barrier = threading.Barrier(sessions)

    def run(share):
        try:
            connections["default"].ensure_connection()
            barrier.wait()
            results = []
            for call in share:
                try:
                    results.append(call())
                except Exception as exc:  # noqa: BLE001  (the outcome is what the test compares)
                    results.append(exc)
            return results
        finally:
            connections.close_all()

    with ThreadPoolExecutor(sessions) as pool:
        return [r for results in pool.map(run, shares) for r in results], sessions


def test_a_hundred_users_racing_for_ten_uses_get_exactly_ten(make_user):
    voucher = make_voucher("RUSH", value=5, max_uses=10)
    users = [make_user() for _ in range(100)]

    results, sessions = race([lambda u=u: voucher_redeem(user=u, code="rush") for u in users])

    won = [r for r in results if isinstance(r, VoucherRedemption)]
    lost = [r for r in results if isinstance(r, VoucherInvalid)]
    assert (len(won), len(lost)) == (10, 90), [r for r in results if r not in won + lost]
    assert sessions >= 20  # that many database sessions at once, at the least
    voucher.refresh_from_db()
    assert (voucher.uses, voucher.status) == (10, "DEPLETED")
    assert VoucherRedemption.objects.filter(voucher=voucher).count() == 10
    assert LedgerEntry.objects.filter(kind="VOUCHER").count() == 10
    assert CreditLot.objects.filter(source="voucher").count() == 10
    winners = {r.user_id for r in won}
    assert set(CreditBalance.objects.filter(balance=5).values_list("user_id", flat=True)) == winners


def test_one_user_racing_themself_redeems_once(user):
    voucher = make_voucher("TWICE", value=8, max_uses=50)

    results, _ = race([lambda: voucher_redeem(user=user, code="TWICE")] * 20)

    assert sum(isinstance(r, VoucherRedemption) for r in results) == 1
    assert sum(isinstance(r, VoucherAlreadyRedeemed) for r in results) == 19
    voucher.refresh_from_db()
    assert voucher.uses == 1  # the refused attempts' claims rolled back with them
    assert CreditBalance.objects.get(user=user).balance == 8
    assert LedgerEntry.objects.filter(kind="VOUCHER", user=user).count() == 1


def test_checkouts_racing_for_the_last_bonus_reserve_exactly_the_uses_left(
    make_user, packages, sandbox_only
):
    voucher = make_voucher("BONUS10", kind="PERCENTAGE_BONUS", value=10, max_uses=3)
    users = [make_user() for _ in range(12)]

    def checkout(u):
        return order_create(
            user=u, package=packages["Basic"], provider="SANDBOX", voucher_code="bonus10"
        )

    results, _ = race([lambda u=u: checkout(u) for u in users])

    assert sum(isinstance(r, Order) for r in results) == 3
    assert sum(isinstance(r, VoucherInvalid) for r in results) == 9
    assert Order.objects.count() == 3  # a refused code creates no order
    voucher.refresh_from_db()
    assert (voucher.uses, voucher.status) == (3, "DEPLETED")
    assert set(VoucherRedemption.objects.values_list("status", flat=True)) == {"RESERVED"}


def test_a_voucher_never_reads_past_its_maximum(make_user):
    """The cap holds below the ORM too: the CHECK refuses, whatever the statement."""
    voucher = make_voucher("HARD", max_uses=1)
    voucher_redeem(user=make_user(), code="HARD")
    assert Voucher.objects.filter(pk=voucher.pk, uses__lte=1).exists()


def test_membership_checkouts_racing_for_the_last_trial_uses_reserve_exactly_those(
    make_user, plans, sandbox_only
):
    from payments.models import Subscription
    from payments.subscriptions import subscription_start

    voucher = make_voucher(
        "TRIALRUSH", kind="SUBSCRIPTION_TRIAL", value=14, plan_code="pro", max_uses=3
    )
    users = [make_user() for _ in range(12)]

    def checkout(u):
        return subscription_start(
            user=u,
            plan=plans["pro"],
            provider_name="SANDBOX",
            success_url="http://testserver/billing/plan/",
            cancel_url="http://testserver/pricing/",
            voucher_code="trialrush",
        )

    results, _ = race([lambda u=u: checkout(u) for u in users])

    assert sum(isinstance(r, tuple) for r in results) == 3, results
    assert sum(isinstance(r, VoucherInvalid) for r in results) == 9
    assert Subscription.objects.count() == 3  # a refused code opens no checkout
    voucher.refresh_from_db()
    assert (voucher.uses, voucher.status) == (3, "DEPLETED")
    reserved = VoucherRedemption.objects.filter(voucher=voucher)
    assert {r.status for r in reserved} == {"RESERVED"}
    assert {r.subscription.user_id for r in reserved} == {
        r[0].user_id for r in results if isinstance(r, tuple)
    }


def test_one_user_racing_themself_with_two_trial_codes_of_a_plan_gets_at_most_one(
    user, plans, sandbox_only
):
    from payments.models import Subscription
    from payments.subscriptions import SubscriptionError, subscription_start
    from payments.vouchers import VoucherTrialUsed

    make_voucher("TRY-ONE", kind="SUBSCRIPTION_TRIAL", value=7, plan_code="pro", max_uses=50)
    make_voucher("TRY-TWO", kind="SUBSCRIPTION_TRIAL", value=7, plan_code="pro", max_uses=50)

    def checkout(code):
        return subscription_start(
            user=user,
            plan=plans["pro"],
            provider_name="SANDBOX",
            success_url="http://testserver/billing/plan/",
            cancel_url="http://testserver/pricing/",
            voucher_code=code,
        )

    results, _ = race([lambda c=c: checkout(c) for c in ["TRY-ONE", "TRY-TWO"] * 5])

    assert all(isinstance(r, tuple | SubscriptionError | VoucherTrialUsed) for r in results), (
        results
    )
    # Whatever won, the user holds one live checkout and one reserved trial of the plan.
    assert Subscription.objects.filter(user=user, status="INCOMPLETE").count() == 1
    live = Subscription.objects.get(user=user, status="INCOMPLETE")
    assert list(
        VoucherRedemption.objects.filter(user=user)
        .exclude(status="RELEASED")
        .values_list("subscription_id", flat=True)
    ) == [live.pk]
    assert sum(Voucher.objects.values_list("uses", flat=True)) == 1
