"""Reconciliation against fake Stripe and PayPal servers: fix what was missed, flag the rest."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from credits.models import CreditBalance
from payments.fulfilment import fulfil_order
from payments.ledger import order_ledger_entries
from payments.models import CreditPackage, Order, ReconciliationRun, Refund, WebhookEvent
from payments.providers.base import PaymentStatus
from payments.reconciliation import parse_since, reconcile_payments
from tests.payments.fake_paypal import demo_packages, fake_paypal  # noqa: F401
from tests.payments.fake_stripe_recon import recon_stripe  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_packages")]

R = ReconciliationRun.Status


def balance(user) -> int:
    return CreditBalance.objects.filter(user=user).values_list("balance", flat=True).first() or 0


def purchases(order) -> int:
    return order_ledger_entries(order).filter(kind="PURCHASE").count()


def buy(client, user, provider: str, package: str = "Basic") -> Order:
    client.force_login(user)
    response = client.post(
        "/billing/buy/",
        {"package": CreditPackage.objects.get(name=package).pk, "provider": provider},
    )
    assert response.status_code == 303, response.content
    return Order.objects.filter(user=user).latest("pk")


def run(**kwargs) -> ReconciliationRun:
    return reconcile_payments(since=timezone.now() - timedelta(hours=1), **kwargs)


def kinds(run_: ReconciliationRun, action: str | None = None) -> list[str]:
    return sorted(d["kind"] for d in run_.discrepancies if action is None or d["action"] == action)


# --- Stripe -------------------------------------------------------------------------------------


def test_a_paid_stripe_session_whose_webhook_never_came_is_fulfilled_once(
    client, user, recon_stripe, django_capture_on_commit_callbacks
):
    recon_stripe.page_size = 2  # several pages: the client follows has_more
    orders = [buy(client, user, "STRIPE") for _ in range(3)]
    paid = orders[1]
    session = recon_stripe.pay(paid.provider_order_id)  # paid at Stripe; the webhook is lost

    first = run()
    paid.refresh_from_db()
    assert paid.status == Order.Status.COMPLETED and balance(user) == 50 and purchases(paid) == 1
    assert first.status == R.DISCREPANCIES
    assert first.counts["stripe.sessions"] == 3
    assert len(recon_stripe.calls("GET", "/v1/checkout/sessions")) >= 2  # paged
    assert first.fixed == [
        {
            "kind": "payment_not_fulfilled",
            "provider": "STRIPE",
            "order_id": paid.pk,
            "reference": paid.provider_order_id,
            "result": "fulfilled: 50 credits granted",
        }
    ]
    entry = order_ledger_entries(paid).get(kind="PURCHASE")
    assert entry.metadata["source"] == "reconciliation"

    # The next sweep finds nothing left to do; the late webhook changes nothing either.
    second = run()
    assert second.status == R.CLEAN and second.discrepancies == [] and second.fixed == []
    with django_capture_on_commit_callbacks(execute=True):
        payload = recon_stripe.event("checkout.session.completed", session)
        client.post(
            "/webhooks/stripe/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=recon_stripe.sign(payload),
        )
    assert WebhookEvent.objects.get(provider="STRIPE").status == WebhookEvent.Status.PROCESSED
    assert balance(user) == 50 and purchases(paid) == 1
    assert [o.status for o in Order.objects.filter(pk__in=[orders[0].pk, orders[2].pk])] == [
        "PENDING"
    ] * 2


def test_a_stripe_payment_settled_after_the_window_opened_is_still_found(
    client, user, recon_stripe
):
    """An hourly run looks at sessions created in the last hour; an older pending order that
    got paid since is fetched by id."""
    order = buy(client, user, "STRIPE")
    recon_stripe.backdate(order.provider_order_id, 3 * 3600)
    recon_stripe.pay(order.provider_order_id)

    result = run()
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and balance(user) == 50
    assert result.counts["stripe.sessions"] == 0 and kinds(result, "fixed") == [
        "payment_not_fulfilled"
    ]


def test_a_stripe_refund_we_missed_is_applied(client, user, recon_stripe):
    order = buy(client, user, "STRIPE")
    recon_stripe.pay(order.provider_order_id)
    run()
    order.refresh_from_db()
    recon_stripe.refund(
        order.provider_payment_id, 500
    )  # 5.00 refunded in the dashboard, no webhook

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["refund_not_applied"]
    assert order.status == Order.Status.PARTIALLY_REFUNDED and order.amount_refunded == Decimal(
        "5.00"
    )
    assert balance(user) == 25
    assert run().status == R.CLEAN


def test_a_stripe_dispute_we_missed_freezes_spending(client, user, recon_stripe):
    order = buy(client, user, "STRIPE")
    recon_stripe.pay(order.provider_order_id)
    run()
    order.refresh_from_db()
    dispute = recon_stripe.open_dispute(order.provider_payment_id)

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["dispute_not_recorded"]
    assert order.status == Order.Status.DISPUTED and order.dispute_id == dispute["id"]
    assert CreditBalance.objects.get(user=user).spend_holds == 1


def test_an_order_we_call_paid_that_stripe_does_not_know_is_flagged(user, recon_stripe):
    package = CreditPackage.objects.get(name="Basic")
    order = Order.objects.create(
        user=user,
        package=package,
        amount=package.price,
        currency="USD",
        credits=package.credits,
        provider="STRIPE",
        provider_order_id="cs_test_nowhere",
    )
    fulfil_order(
        order_id=order.pk,
        source="test",
        status=PaymentStatus(
            state="paid", provider_order_id="cs_test_nowhere", amount=package.price, currency="USD"
        ),
    )

    result = run()
    assert result.status == R.DISCREPANCIES
    assert kinds(result, "flagged") == ["paid_order_unknown_to_provider"]
    assert result.discrepancies[0]["order_id"] == order.pk and result.fixed == []
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and balance(user) == 50  # flagged, not touched


def test_a_stripe_amount_that_differs_is_flagged_not_granted(client, user, recon_stripe):
    order = buy(client, user, "STRIPE")
    recon_stripe.pay(order.provider_order_id, amount_total=100)  # 1.00 paid for a 9.99 order

    result = run()
    assert kinds(result, "flagged") == ["amount_mismatch"]
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and balance(user) == 0


def test_a_stripe_500_is_reported_and_nothing_is_half_done(client, user, recon_stripe):
    orders = [buy(client, user, "STRIPE") for _ in range(2)]
    for order in orders:
        recon_stripe.pay(order.provider_order_id)
    recon_stripe.fail_next(
        "GET", "/v1/refunds", status=500
    )  # sessions listed fine, then Stripe fails

    failed = run()
    assert failed.status == R.FAILED
    assert [(e["provider"], e["stage"], e["retryable"]) for e in failed.errors] == [
        ("STRIPE", "collect", True)
    ]
    assert "500" in failed.errors[0]["error"]
    assert failed.fixed == [] and failed.discrepancies == [] and failed.finished_at is not None
    assert balance(user) == 0
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {
        Order.Status.PENDING
    }

    retried = run()
    assert retried.status == R.DISCREPANCIES and len(retried.fixed) == 2 and balance(user) == 100


# --- PayPal -------------------------------------------------------------------------------------


def test_a_paypal_capture_we_never_heard_of_is_fulfilled(client, user, fake_paypal):
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)
    capture = fake_paypal.capture_directly(order.provider_order_id)  # the buyer's return was lost

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["payment_not_fulfilled"]
    assert order.status == Order.Status.COMPLETED and order.provider_payment_id == capture["id"]
    assert balance(user) == 50 and run().status == R.CLEAN


def test_an_approved_paypal_order_nobody_captured_is_captured_once(client, user, fake_paypal):
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)  # no return, no webhook

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["approved_not_captured"]
    assert result.fixed[0]["result"] == "captured and fulfilled: 50 credits granted"
    assert order.status == Order.Status.COMPLETED and balance(user) == 50
    captures = fake_paypal.calls_to("POST", "/capture$")
    assert [c.headers["paypal-request-id"] for c in captures] == [f"order-{order.pk}-capture"]
    run()
    assert len(fake_paypal.captures) == 1 and purchases(order) == 1


def test_a_pending_paypal_capture_is_left_to_settle(client, user, fake_paypal):
    fake_paypal.capture_outcome = "PENDING"
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)
    capture = fake_paypal.capture_directly(order.provider_order_id)

    assert run().status == R.CLEAN
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and balance(user) == 0

    fake_paypal.settle_capture(capture["id"])  # ...and its COMPLETED webhook is lost
    assert kinds(run(), "fixed") == ["payment_not_fulfilled"]
    assert balance(user) == 50


def test_a_paypal_refund_we_missed_is_applied(client, user, fake_paypal):
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)
    client.get(f"/billing/paypal/return/?token={order.provider_order_id}&PayerID=X")
    order.refresh_from_db()
    fake_paypal.refund_externally(order.provider_payment_id, "9.99")

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["refund_not_applied"]
    assert order.status == Order.Status.REFUNDED and balance(user) == 0


def test_a_paid_paypal_order_paypal_does_not_know_is_flagged(client, user, fake_paypal):
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)
    client.get(f"/billing/paypal/return/?token={order.provider_order_id}&PayerID=X")
    fake_paypal.forget_order(order.provider_order_id)

    result = run()
    assert kinds(result) == ["paid_order_unknown_to_provider"] and result.fixed == []
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and balance(user) == 50


def test_an_abandoned_paypal_checkout_is_closed_once_paypal_drops_it(client, user, fake_paypal):
    fresh = buy(client, user, "PAYPAL")
    old = buy(client, user, "PAYPAL")
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=7))
    fake_paypal.forget_order(old.provider_order_id)  # never approved: PayPal let it lapse
    fake_paypal.forget_order(fresh.provider_order_id)  # (too recent to call it over)

    result = reconcile_payments(since=timezone.now() - timedelta(hours=8))
    assert [(d["kind"], d["order_id"], d["action"]) for d in result.discrepancies] == [
        ("checkout_expired_not_recorded", old.pk, "fixed")
    ]
    assert Order.objects.get(pk=old.pk).status == Order.Status.EXPIRED
    assert Order.objects.get(pk=fresh.pk).status == Order.Status.PENDING


def test_a_paypal_500_midway_is_reported_and_nothing_is_half_done(
    client, user, fake_paypal, recon_stripe
):
    paypal_orders = [buy(client, user, "PAYPAL") for _ in range(2)]
    for order in paypal_orders:
        fake_paypal.approve(order.provider_order_id)
        fake_paypal.capture_directly(order.provider_order_id)
    stripe_order = buy(client, user, "STRIPE")
    recon_stripe.pay(stripe_order.provider_order_id)
    # PayPal answers about the first order, then fails on the second.
    fake_paypal.fail(
        "GET", f"^/v2/checkout/orders/{paypal_orders[1].provider_order_id}$", status=500
    )

    result = run()
    assert result.status == R.FAILED
    assert [(e["provider"], e["stage"]) for e in result.errors] == [("PAYPAL", "collect")]
    assert "HTTP 500" in result.errors[0]["error"] and result.errors[0]["retryable"]
    # Stripe's part was whole, so it was fixed; nothing of PayPal's was, not even the order read fine.
    assert [(f["provider"], f["order_id"]) for f in result.fixed] == [("STRIPE", stripe_order.pk)]
    assert all(Order.objects.get(pk=o.pk).status == Order.Status.PENDING for o in paypal_orders)
    assert balance(user) == 50

    again = run()
    assert again.status == R.DISCREPANCIES and balance(user) == 150
    assert sorted(f["order_id"] for f in again.fixed) == sorted(o.pk for o in paypal_orders)


# --- the sandbox (no real provider configured) -----------------------------------------------


def test_the_sandbox_is_reconciled_by_asking_about_each_order(client, user, settings):
    from payments.models import SandboxPayment

    settings.PAYPAL_CLIENT_ID = settings.STRIPE_SECRET_KEY = ""
    order = buy(client, user, "SANDBOX")
    # The buyer paid on the sandbox page, but its webhook never reached us.
    SandboxPayment.objects.filter(order_ref=str(order.pk)).update(status=SandboxPayment.Status.PAID)

    result = run()
    assert result.counts["sandbox.orders"] == 1 and kinds(result, "fixed") == [
        "payment_not_fulfilled"
    ]
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and balance(user) == 50
    assert run().status == R.CLEAN


def test_a_sandbox_checkout_the_buyer_left_is_not_called_expired(client, user, settings):
    from payments.models import SandboxPayment

    settings.PAYPAL_CLIENT_ID = settings.STRIPE_SECRET_KEY = ""
    order = buy(client, user, "SANDBOX")
    SandboxPayment.objects.filter(order_ref=str(order.pk)).update(
        status=SandboxPayment.Status.CANCELED
    )

    assert run().status == R.CLEAN  # the cancel is the sandbox's webhook to record, as CANCELLED
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING


# --- the command and the periodic task ---------------------------------------------------------


def test_the_command_reports_the_run(client, user, fake_paypal, capsys):
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)

    call_command("reconcile_payments", "--since", "24h")
    out = capsys.readouterr().out
    assert "Discrepancies found" in out
    assert f"[fixed] PAYPAL approved_not_captured order #{order.pk}" in out
    assert ReconciliationRun.objects.count() == 1 and balance(user) == 50

    call_command(
        "reconcile_payments",
        "--since",
        (timezone.now() - timedelta(days=2)).date().isoformat(),
        "--provider",
        "PAYPAL",
    )
    assert "Clean" in capsys.readouterr().out


def test_the_command_fails_when_a_provider_cannot_be_read(client, user, fake_paypal):
    buy(client, user, "PAYPAL")
    fake_paypal.fail("GET", "^/v2/checkout/orders/", status=503)
    with pytest.raises(CommandError, match="1 error"):
        call_command("reconcile_payments", "--since", "1h")
    assert ReconciliationRun.objects.get().status == R.FAILED


def test_the_command_refuses_bad_input(fake_paypal):
    with pytest.raises(CommandError, match="not a date"):
        call_command("reconcile_payments", "--since", "yesterday-ish")
    with pytest.raises(CommandError, match="Not configured here: STRIPE"):
        call_command("reconcile_payments", "--provider", "STRIPE")
    assert not ReconciliationRun.objects.exists()


def test_since_accepts_dates_times_and_spans():
    now = timezone.now()
    assert parse_since("90m", now=now) == now - timedelta(minutes=90)
    assert parse_since("24h", now=now) == now - timedelta(hours=24)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("2026-01-02").isoformat() == "2026-01-02T00:00:00+00:00"
    assert parse_since("2026-01-02T12:30").isoformat() == "2026-01-02T12:30:00+00:00"
    with pytest.raises(ValueError, match="future"):
        parse_since((now + timedelta(days=2)).date().isoformat(), now=now)


def test_the_hourly_task_runs_a_reconciliation(client, user, fake_paypal):
    from config.celery_app import app
    from payments.reconciliation_tasks import reconcile_payments as task

    assert app.tasks["payments.tasks.reconcile_payments"].name == task.name
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)

    result = task.delay().get()
    run_ = ReconciliationRun.objects.get(pk=result["run"])
    assert result["status"] == R.DISCREPANCIES and result["fixed"] == 1
    assert run_.since < timezone.now() - timedelta(hours=23)
    assert balance(user) == 50


# --- provider outcomes: disputes closing, refunds failing ---------------------------------------


def stripe_paid(client, user, recon_stripe) -> Order:
    order = buy(client, user, "STRIPE")
    recon_stripe.pay(order.provider_order_id)
    run()
    order.refresh_from_db()
    return order


def holds(user) -> int:
    return CreditBalance.objects.get(user=user).spend_holds


@pytest.mark.parametrize(
    "status, outcome, want_balance",
    [
        ("prevented", "prevented", 50),
        ("won", "won", 50),
        ("warning_closed", "withdrawn", 50),
        ("lost", "lost", 0),
    ],
)
def test_a_stripe_dispute_opened_long_ago_that_closed_unseen_is_closed(
    client, user, recon_stripe, status, outcome, want_balance
):
    order = stripe_paid(client, user, recon_stripe)
    dispute = recon_stripe.open_dispute(order.provider_payment_id)
    assert kinds(run(), "fixed") == ["dispute_not_recorded"] and holds(user) == 1
    recon_stripe.backdate(dispute["id"], 30 * 86400)  # opened a month ago: outside the window
    recon_stripe.close_dispute(dispute["id"], status)  # ...and its close never reached us

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["dispute_outcome_not_recorded"]
    assert order.dispute_status == outcome and holds(user) == 0 and balance(user) == want_balance
    assert run().status == R.CLEAN


@pytest.mark.parametrize(
    "status", ["appeal_needs_response", "appeal_under_review", "warning_under_review"]
)
def test_a_stripe_dispute_in_any_open_stage_freezes_spending(client, user, recon_stripe, status):
    order = stripe_paid(client, user, recon_stripe)
    recon_stripe.open_dispute(order.provider_payment_id, status=status)

    assert kinds(run(), "fixed") == ["dispute_not_recorded"]
    order.refresh_from_db()
    assert order.dispute_status == "open" and holds(user) == 1


def test_an_unknown_stripe_dispute_status_is_flagged_for_staff(client, user, recon_stripe):
    order = stripe_paid(client, user, recon_stripe)
    recon_stripe.open_dispute(order.provider_payment_id, status="arbitration_pending")

    result = run()
    assert kinds(result, "flagged") == ["dispute_status_unknown"] and result.fixed == []
    assert "'arbitration_pending'" in result.discrepancies[0]["detail"]
    order.refresh_from_db()
    assert order.dispute_status == "" and holds(user) == 0


def test_a_pending_staff_refund_that_failed_unseen_gives_the_credits_back(
    client, user, make_user, recon_stripe
):
    from django.contrib.auth.models import Permission

    from payments.refunds import order_refund

    order = stripe_paid(client, user, recon_stripe)
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="refund_order"))
    recon_stripe.refund_outcome = "pending"
    order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Customer request",
        staff_user=type(staff).objects.get(pk=staff.pk),
        idempotency_key="staff-pending",
    )
    assert balance(user) == 25 and Refund.objects.get(order=order).status == "pending"
    assert run().status == R.CLEAN  # a pending refund counts, at Stripe as here

    refund = next(iter(recon_stripe.refunds.values()))
    recon_stripe.backdate(refund["id"], 7 * 86400)  # made a week ago: outside the window
    recon_stripe.set_refund_status(refund["id"], "failed")  # and refund.failed never reached us
    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["refund_reversal_not_applied"]
    assert (order.status, order.amount_refunded, balance(user)) == (
        "COMPLETED",
        Decimal("0.00"),
        50,
    )
    assert Refund.objects.get(order=order).status == "failed"
    assert run().status == R.CLEAN


def test_refunds_we_missed_are_recorded_one_by_one_so_a_later_failure_undoes_only_its_own(
    client, user, recon_stripe
):
    order = stripe_paid(client, user, recon_stripe)  # 10.00 for 50 credits
    recon_stripe.refund(order.provider_payment_id, 300)  # two dashboard refunds, no webhooks
    recon_stripe.refund(order.provider_payment_id, 200)
    first, second = recon_stripe.refunds

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["refund_not_applied"]
    assert (order.amount_refunded, balance(user)) == (Decimal("5.00"), 25)
    assert sorted(
        Refund.objects.filter(order=order).values_list("provider_refund_id", "status")
    ) == sorted([(first, "succeeded"), (second, "succeeded")])
    assert run().status == R.CLEAN

    # The 2.00 refund fails at the provider, and a third one of 2.00 is made and fails before
    # anything here counted it; no webhook arrives for either.
    recon_stripe.set_refund_status(second, "failed")
    recon_stripe.refund(order.provider_payment_id, 200)
    third = list(recon_stripe.refunds)[2]
    recon_stripe.set_refund_status(third, "failed")

    result = run()
    order.refresh_from_db()
    assert sorted(d["reference"] for d in result.discrepancies if d["action"] == "fixed") == sorted(
        [second, third]
    )
    # Only the failed 2.00 we had counted is given back: 3.00 still refunded, 15 credits taken.
    assert (order.status, order.amount_refunded, balance(user)) == (
        "PARTIALLY_REFUNDED",
        Decimal("3.00"),
        35,
    )
    assert dict(Refund.objects.filter(order=order).values_list("provider_refund_id", "status")) == {
        first: "succeeded",
        second: "failed",
        third: "failed",
    }
    assert run().status == R.CLEAN
    call_command("check_ledger", stdout=io.StringIO())


def test_refunds_counted_without_their_own_record_are_recorded(client, user, recon_stripe):
    """Earlier versions applied a missed refund as a bare total: the next run records each
    refund the total holds, moving no credits."""
    order = stripe_paid(client, user, recon_stripe)
    recon_stripe.refund(order.provider_payment_id, 300)
    recon_stripe.refund(order.provider_payment_id, 200)
    run()
    Refund.objects.filter(order=order).delete()  # as a bare total left it

    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["refund_not_recorded"]
    assert (order.amount_refunded, balance(user)) == (Decimal("5.00"), 25)
    assert set(
        Refund.objects.filter(order=order).values_list("provider_refund_id", flat=True)
    ) == set(recon_stripe.refunds)
    assert run().status == R.CLEAN
    call_command("check_ledger", stdout=io.StringIO())


def paypal_paid(client, user, fake_paypal) -> Order:
    order = buy(client, user, "PAYPAL")
    fake_paypal.approve(order.provider_order_id)
    client.get(f"/billing/paypal/return/?token={order.provider_order_id}&PayerID=X")
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    return order


def test_a_pending_paypal_refund_that_failed_unseen_gives_the_credits_back(
    client, user, make_user, fake_paypal
):
    from django.contrib.auth.models import Permission

    from payments.refunds import order_refund

    order = paypal_paid(client, user, fake_paypal)
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="refund_order"))
    fake_paypal.refund_outcome = "PENDING"
    order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Customer request",
        staff_user=type(staff).objects.get(pk=staff.pk),
        idempotency_key="staff-pending-paypal",
    )
    refund = Refund.objects.get(order=order)
    assert balance(user) == 25 and refund.status == "pending"
    assert run().status == R.CLEAN  # a pending refund counts, at PayPal as here

    # Weeks later the refund fails at PayPal, which sends no webhook for that: the order is
    # long outside the window, but a refund we hold pending is read again however old.
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(days=20))
    fake_paypal.set_refund_status(refund.provider_refund_id, "FAILED")
    result = run()
    order.refresh_from_db()
    assert kinds(result, "fixed") == ["refund_reversal_not_applied"]
    assert (order.status, order.amount_refunded, balance(user)) == (
        "COMPLETED",
        Decimal("0.00"),
        50,
    )
    assert Refund.objects.get(order=order).status == "failed"
    assert run().status == R.CLEAN
    assert order_ledger_entries(order).filter(kind="PURCHASE").count() == 2  # bought, given back
    call_command("check_ledger", stdout=io.StringIO())


def test_a_paypal_dispute_whose_webhooks_were_lost_freezes_then_claws_back(
    client, user, make_user, fake_paypal
):
    fake_paypal.dispute_page_size = 1  # several pages: the client follows the next link's token
    order = paypal_paid(client, user, fake_paypal)
    kept = paypal_paid(client, user, fake_paypal)
    other_buyer = make_user()
    other = paypal_paid(client, other_buyer, fake_paypal)
    dispute = fake_paypal.open_dispute(order.provider_payment_id)
    fake_paypal.open_dispute(other.provider_payment_id)
    assert balance(user) == 100

    opened = run()
    order.refresh_from_db()
    assert kinds(opened, "fixed") == ["dispute_not_recorded", "dispute_not_recorded"]
    assert order.status == Order.Status.DISPUTED and order.dispute_id == dispute["dispute_id"]
    assert holds(user) == 1 and holds(other_buyer) == 1
    assert len(fake_paypal.calls_to("GET", "^/v1/customer/disputes$")) == 2  # paged
    assert all(
        c.headers["authorization"].startswith("Bearer ")
        for c in fake_paypal.calls_to("GET", "/disputes")
    )

    # Weeks later PayPal decides for the buyer and CUSTOMER.DISPUTE.RESOLVED never arrives:
    # a dispute we hold open is read again, however long ago it was opened.
    fake_paypal.disputes[dispute["dispute_id"]]["create_time"] = "2026-01-01T00:00:00.000Z"
    Order.objects.filter(pk__in=[order.pk, kept.pk]).update(
        created_at=timezone.now() - timedelta(days=20)
    )
    fake_paypal.resolve_dispute(dispute["dispute_id"], "RESOLVED_BUYER_FAVOUR")
    closed = run()
    order.refresh_from_db()
    assert kinds(closed, "fixed") == ["dispute_outcome_not_recorded"]
    assert (order.status, order.dispute_status, order.credits_clawed_back) == (
        "REFUNDED",
        "lost",
        50,
    )
    assert (balance(user), holds(user)) == (50, 0)  # the other order's credits stay
    assert run().status == R.CLEAN


def test_a_paypal_dispute_resolved_with_no_outcome_is_flagged_not_won(client, user, fake_paypal):
    order = paypal_paid(client, user, fake_paypal)
    dispute = fake_paypal.open_dispute(order.provider_payment_id)
    run()
    fake_paypal.resolve_dispute(dispute["dispute_id"], "NONE")

    result = run()
    assert kinds(result, "flagged") == ["dispute_status_unknown"]
    order.refresh_from_db()
    assert order.dispute_status == "open" and holds(user) == 1


def test_paypal_disputes_unreadable_fail_the_paypal_part_of_the_run(client, user, fake_paypal):
    order = paypal_paid(client, user, fake_paypal)
    fake_paypal.open_dispute(order.provider_payment_id)
    fake_paypal.fail("GET", "^/v1/customer/disputes$", status=503)

    result = run()
    assert result.status == R.FAILED and result.errors[0]["provider"] == "PAYPAL"
    assert result.errors[0]["retryable"] is True
    assert holds(user) == 0 and result.fixed == []


# --- two runs at once --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_report_each_fix_once(client, user, recon_stripe):
    import threading

    from tests.payments.conftest import close_db_connections

    orders = [buy(client, user, "STRIPE") for _ in range(3)]
    for order in orders:
        recon_stripe.pay(order.provider_order_id)  # three payments whose webhooks were lost
    recon_stripe.gather("/v1/disputes", 2)  # both runs have read Stripe before either fixes

    runs: list[ReconciliationRun] = []

    def one_run():
        try:
            runs.append(run(providers=["STRIPE"]))
        finally:
            close_db_connections()

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(runs) == 2
    for each in runs:  # both saw the same three missed payments
        assert kinds(each) == ["payment_not_fulfilled"] * 3
    fixed = sorted(entry["order_id"] for each in runs for entry in each.fixed)
    assert fixed == sorted(o.pk for o in orders)  # each fix reported by exactly one run
    actions = sorted(d["action"] for each in runs for d in each.discrepancies)
    assert actions == ["already fixed"] * 3 + ["fixed"] * 3
    assert sum(each.counts.get("already_fixed", 0) for each in runs) == 3
    assert balance(user) == 150 and all(purchases(o) == 1 for o in orders)
