"""Refunds take credits back in proportion to the money, never below a zero balance."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction

from credits.models import CreditBalance
from credits.services import credits_spend
from payments.exceptions import ProviderError, RefundNotAllowed
from payments.ledger import order_ledger_entries
from payments.models import Invoice, Order, Refund, WebhookEvent
from payments.refunds import credits_for_refund, order_refund

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def refunded_event(fake_stripe, order, cents: int) -> str:
    """Stripe's charge.refunded after refunds totalling ``cents`` made in the dashboard."""
    charge = fake_stripe.charge_for(order.provider_payment_id)
    fake_stripe.refund(order.provider_payment_id, cents - charge["amount_refunded"])
    return fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id))


@pytest.fixture
def refunder(make_user):
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="refund_order"))
    return type(staff).objects.get(pk=staff.pk)


def test_partial_then_full_refund_claw_back_in_proportion(paid_order, fake_stripe, deliver):
    order = paid_order()

    deliver(refunded_event(fake_stripe, order, 500))  # $5.00 of $9.99: 25.03 credits -> 25
    order.refresh_from_db()
    assert (order.status, order.amount_refunded, order.credits_clawed_back) == (
        "PARTIALLY_REFUNDED",
        Decimal("5.00"),
        25,
    )
    assert balance(order.user) == 25
    assert Invoice.objects.get(order=order).status == "PARTIALLY_REFUNDED"

    deliver(refunded_event(fake_stripe, order, 999))  # the rest: all 50 credits in all
    order.refresh_from_db()
    assert (order.status, order.amount_refunded, order.credits_clawed_back) == (
        "REFUNDED",
        Decimal("9.99"),
        50,
    )
    assert balance(order.user) == 0
    assert Invoice.objects.get(order=order).status == "REFUNDED"
    assert [e.amount for e in order_ledger_entries(order).order_by("pk")] == [50, -25, -25]


def test_an_older_refund_total_arriving_late_changes_nothing(paid_order, fake_stripe, deliver):
    order = paid_order()
    partial = refunded_event(fake_stripe, order, 300)
    full = refunded_event(fake_stripe, order, 999)

    deliver(full)
    deliver(partial)

    order.refresh_from_db()
    assert (order.status, order.amount_refunded, order.credits_clawed_back) == (
        "REFUNDED",
        Decimal("9.99"),
        50,
    )
    assert balance(order.user) == 0
    assert order_ledger_entries(order).filter(kind="CLAWBACK").count() == 1


def test_a_refund_after_the_credits_were_spent_empties_the_balance_and_records_the_rest(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    credits_spend(user=order.user, amount=40, idempotency_key="spent-before-refund")

    deliver(refunded_event(fake_stripe, order, 999))

    order.refresh_from_db()
    assert balance(order.user) == 0
    assert (order.status, order.credits_clawed_back, order.credits_unrecovered) == (
        "REFUNDED",
        10,
        40,
    )
    clawback = order_ledger_entries(order).get(kind="CLAWBACK")
    assert clawback.amount == -10 and clawback.balance_after == 0
    assert clawback.metadata["unrecovered"] == 40


def test_later_refunds_never_take_the_unrecoverable_part_again(paid_order, fake_stripe, deliver):
    order = paid_order()
    deliver(refunded_event(fake_stripe, order, 500))  # 25 back, 25 left
    credits_spend(user=order.user, amount=25, idempotency_key="spend-the-rest")

    deliver(refunded_event(fake_stripe, order, 999))

    order.refresh_from_db()
    assert (order.credits_clawed_back, order.credits_unrecovered) == (25, 25)
    assert balance(order.user) == 0


def test_a_refund_seen_before_the_payment_is_applied_when_the_payment_arrives(
    client, user, packages, fake_stripe, deliver
):
    from tests.payments.conftest import start_stripe_checkout

    order = start_stripe_checkout(client, user, packages["Basic"])
    completed = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    order.refresh_from_db()
    pi = fake_stripe.sessions[order.provider_order_id]["payment_intent"]
    fake_stripe.refund(pi, 999)
    refunded = fake_stripe.event("charge.refunded", fake_stripe.charge_for(pi))

    fake_stripe.fail_next(
        "GET", "/v1/checkout/sessions/", status=500
    )  # the refund cannot see the payment
    deliver(refunded)
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("PENDING", Decimal("9.99"))
    assert balance(user) == 0

    deliver(completed)

    order.refresh_from_db()
    assert (order.status, order.credits_clawed_back, order.credits_unrecovered) == (
        "REFUNDED",
        50,
        0,
    )
    assert balance(user) == 0
    assert [e.kind for e in order_ledger_entries(order).order_by("pk")] == ["PURCHASE", "CLAWBACK"]


def test_a_refund_arriving_first_converges_to_the_same_state_when_stripe_answers(
    client, user, packages, fake_stripe, deliver
):
    from tests.payments.conftest import start_stripe_checkout

    order = start_stripe_checkout(client, user, packages["Basic"])
    completed = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    pi = fake_stripe.sessions[order.provider_order_id]["payment_intent"]
    fake_stripe.refund(pi, 500)

    deliver(fake_stripe.event("charge.refunded", fake_stripe.charge_for(pi)))
    deliver(completed)

    order.refresh_from_db()
    assert (order.status, order.amount_refunded, order.credits_clawed_back) == (
        "PARTIALLY_REFUNDED",
        Decimal("5.00"),
        25,
    )
    assert balance(user) == 25


def test_staff_refund_goes_through_stripe_with_the_idempotency_key_and_claws_back(
    paid_order, fake_stripe, refunder, deliver
):
    order = paid_order()

    result = order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Asked by the customer",
        staff_user=refunder,
        idempotency_key="refund-req-1",
    )

    [call] = fake_stripe.calls("POST", "/v1/refunds")
    assert call["idempotency_key"] == "refund-req-1"
    assert (
        call["params"]["payment_intent"] == order.provider_payment_id
        and call["params"]["amount"] == "500"
    )
    assert (result.status, result.amount_refunded, result.credits_clawed_back) == (
        "PARTIALLY_REFUNDED",
        Decimal("5.00"),
        25,
    )
    assert balance(order.user) == 25
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.reason, refund.created_by) == (
        Decimal("5.00"),
        "Asked by the customer",
        refunder,
    )
    clawback = order_ledger_entries(order).get(kind="CLAWBACK")
    assert clawback.created_by == refunder

    # The same request again (a double click, a retry): no second refund.
    order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Asked by the customer",
        staff_user=refunder,
        idempotency_key="refund-req-1",
    )
    assert len(fake_stripe.calls("POST", "/v1/refunds")) == 1
    # Stripe's own charge.refunded for that refund changes nothing more.
    deliver(fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id)))
    order.refresh_from_db()
    assert (order.amount_refunded, order.credits_clawed_back) == (Decimal("5.00"), 25)
    assert balance(order.user) == 25


@pytest.mark.parametrize("status", [500, 400])
def test_a_refund_stripe_refuses_changes_nothing(paid_order, fake_stripe, refunder, status):
    order = paid_order()
    fake_stripe.fail_next("POST", "/v1/refunds", status=status, message="No.")

    with pytest.raises(ProviderError):
        order_refund(
            order=order,
            amount=Decimal("9.99"),
            reason="Customer request",
            staff_user=refunder,
            idempotency_key="refund-fails",
        )

    order.refresh_from_db()
    assert (order.status, order.amount_refunded, order.credits_clawed_back) == (
        "COMPLETED",
        Decimal("0"),
        0,
    )
    assert balance(order.user) == 50
    assert not Refund.objects.exists()


def test_bad_staff_refunds_are_refused_before_stripe_is_asked(
    paid_order, fake_stripe, refunder, make_user
):
    order = paid_order()
    plain_staff = make_user(is_staff=True)
    cases = [
        dict(amount=Decimal("1.00"), reason="x", staff_user=plain_staff, idempotency_key="k1"),
        dict(amount=Decimal("10.00"), reason="x", staff_user=refunder, idempotency_key="k2"),
        dict(amount=Decimal("0"), reason="x", staff_user=refunder, idempotency_key="k3"),
        dict(amount=Decimal("1.005"), reason="x", staff_user=refunder, idempotency_key="k4"),
        dict(amount=Decimal("1.00"), reason="  ", staff_user=refunder, idempotency_key="k5"),
    ]
    for kwargs in cases:
        with pytest.raises(RefundNotAllowed):
            order_refund(order=order, **kwargs)

    assert not fake_stripe.calls("POST", "/v1/refunds")
    assert balance(order.user) == 50


def test_a_staff_refund_never_runs_inside_a_transaction(paid_order, refunder, fake_stripe):
    order = paid_order()

    with pytest.raises(RuntimeError, match="outside any transaction"):
        with transaction.atomic():
            order_refund(
                order=order,
                amount=Decimal("1.00"),
                reason="x",
                staff_user=refunder,
                idempotency_key="in-txn",
            )
    assert not fake_stripe.calls("POST", "/v1/refunds")


@pytest.mark.parametrize(
    "refunded, expected",
    [
        ("0.00", 0),
        ("0.10", 1),
        ("0.09", 0),
        ("5.00", 25),
        ("4.99", 25),
        ("9.98", 50),
        ("9.99", 50),
        ("12.00", 50),
    ],
)
def test_the_proportional_rule(refunded, expected):
    order = Order(amount=Decimal("9.99"), credits=50)
    assert credits_for_refund(order=order, refunded=Decimal(refunded)) == expected


# --- refunds that fail or are canceled after they were counted ------------------------------------


def refund_id_for(fake_stripe, order) -> str:
    return next(
        r["id"]
        for r in fake_stripe.refunds.values()
        if r["payment_intent"] == order.provider_payment_id
    )


@pytest.mark.parametrize("ending", ["failed", "canceled"])
def test_a_refund_that_fails_later_gives_the_credits_back_once(
    paid_order, fake_stripe, deliver, ending
):
    order = paid_order()
    deliver(
        refunded_event(fake_stripe, order, 500)
    )  # 5.00 refunded in the dashboard: 25 credits back
    assert balance(order.user) == 25
    refund = fake_stripe.set_refund_status(refund_id_for(fake_stripe, order), ending)

    # Stripe reports it twice (refund.failed and refund.updated), and once more as a retry.
    first = fake_stripe.event("refund.failed" if ending == "failed" else "refund.updated", refund)
    deliver(first)
    deliver(fake_stripe.event("refund.updated", refund))
    deliver(fake_stripe.event("charge.refund.updated", refund))

    order.refresh_from_db()
    assert (order.status, order.amount_refunded, order.credits_clawed_back) == (
        "COMPLETED",
        Decimal("0.00"),
        0,
    )
    assert balance(order.user) == 50
    assert order_ledger_entries(order).filter(metadata__refund_id=refund["id"]).count() == 1
    assert Refund.objects.get(provider_refund_id=refund["id"]).status == ending
    assert Invoice.objects.get(order=order).status == "PAID"

    # A later refund of the same amount takes the credits back again.
    deliver(refunded_event(fake_stripe, order, 500))
    order.refresh_from_db()
    assert (order.amount_refunded, order.credits_clawed_back, balance(order.user)) == (
        Decimal("5.00"),
        25,
        25,
    )


def test_a_failed_refund_of_spent_credits_gives_back_only_what_was_taken(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    credits_spend(user=order.user, amount=45, idempotency_key="spent-first")
    deliver(refunded_event(fake_stripe, order, 999))  # full refund: 5 taken back, 45 unrecovered
    order.refresh_from_db()
    assert (order.credits_clawed_back, order.credits_unrecovered, balance(order.user)) == (5, 45, 0)

    deliver(
        fake_stripe.event(
            "refund.failed",
            fake_stripe.set_refund_status(refund_id_for(fake_stripe, order), "failed"),
        )
    )

    order.refresh_from_db()
    assert (order.status, order.credits_clawed_back, order.credits_unrecovered) == (
        "COMPLETED",
        0,
        0,
    )
    assert balance(order.user) == 5


@pytest.mark.parametrize("answer", ["pending", "requires_action"])
def test_a_staff_refund_stripe_has_not_completed_is_recorded_and_undone_if_it_fails(
    paid_order, fake_stripe, refunder, deliver, answer
):
    order = paid_order()
    fake_stripe.refund_outcome = answer

    result = order_refund(
        order=order,
        amount=Decimal("9.99"),
        reason="Customer request",
        staff_user=refunder,
        idempotency_key="refund-in-flight",
    )

    refund = Refund.objects.get(order=order)
    assert refund.status == answer  # the refund exists at Stripe: recorded, not a failure
    assert (result.status, result.amount_refunded, balance(order.user)) == (
        "REFUNDED",
        Decimal("9.99"),
        0,
    )

    # It completes: nothing more moves.
    done = fake_stripe.set_refund_status(refund.provider_refund_id, "succeeded")
    deliver(fake_stripe.event("refund.updated", done))
    refund.refresh_from_db()
    assert refund.status == "succeeded" and balance(order.user) == 0


def test_a_pending_staff_refund_that_fails_gives_the_credits_back(
    paid_order, fake_stripe, refunder, deliver
):
    order = paid_order()
    fake_stripe.refund_outcome = "pending"
    order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Customer request",
        staff_user=refunder,
        idempotency_key="refund-pending",
    )
    assert balance(order.user) == 25
    refund = Refund.objects.get(order=order)

    deliver(
        fake_stripe.event(
            "refund.failed", fake_stripe.set_refund_status(refund.provider_refund_id, "failed")
        )
    )

    order.refresh_from_db()
    refund.refresh_from_db()
    assert refund.status == "failed"
    assert (order.status, order.amount_refunded, balance(order.user)) == (
        "COMPLETED",
        Decimal("0.00"),
        50,
    )


def test_a_refund_stripe_fails_at_once_is_refused_and_records_nothing(
    paid_order, fake_stripe, refunder
):
    order = paid_order()
    fake_stripe.refund_outcome = "failed"

    with pytest.raises(ProviderError, match="is failed"):
        order_refund(
            order=order,
            amount=Decimal("5.00"),
            reason="Customer request",
            staff_user=refunder,
            idempotency_key="refund-failed-now",
        )
    assert not Refund.objects.exists() and balance(order.user) == 50


def test_a_refund_status_stripe_does_not_document_is_flagged(paid_order, fake_stripe, deliver):
    order = paid_order()
    deliver(refunded_event(fake_stripe, order, 500))
    refund = fake_stripe.set_refund_status(refund_id_for(fake_stripe, order), "reversed_by_bank")

    deliver(fake_stripe.event("refund.updated", refund))

    event = WebhookEvent.objects.get(type="refund.updated")
    assert event.status == "FAILED" and "'reversed_by_bank'" in event.last_error
    order.refresh_from_db()
    assert (order.amount_refunded, balance(order.user)) == (Decimal("5.00"), 25)
