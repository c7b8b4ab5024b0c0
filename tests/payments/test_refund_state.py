"""A refund event is news that something changed, not the truth about how much: the
provider's refunds are read again when it is handled, so late and reordered events converge."""

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command

from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import Order, Refund, WebhookEvent
from payments.refunds import order_refund

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def state(order) -> tuple:
    order = Order.objects.get(pk=order.pk)
    return (order.status, order.amount_refunded, order.credits_clawed_back, balance(order.user))


def ledger_is_clean() -> None:
    call_command("check_ledger", stdout=io.StringIO())  # exits non-zero on any drift


@pytest.fixture
def refunder(make_user):
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="refund_order"))
    return type(staff).objects.get(pk=staff.pk)


def test_a_late_charge_refunded_after_the_refund_failed_takes_nothing_back_again(
    paid_order, fake_stripe, deliver, refunder
):
    order = paid_order()
    fake_stripe.refund_outcome = "pending"
    order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Customer request",
        staff_user=refunder,
        idempotency_key="staff-refund",
    )
    refund = Refund.objects.get(order=order)
    # Stripe's charge.refunded for it, sent when the refund was made: 5.00 refunded in all.
    late = fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id))
    assert state(order) == ("PARTIALLY_REFUNDED", Decimal("5.00"), 25, 25)

    failed = fake_stripe.set_refund_status(refund.provider_refund_id, "failed")
    deliver(fake_stripe.event("refund.failed", failed))
    assert state(order) == ("COMPLETED", Decimal("0.00"), 0, 50)

    deliver(late)  # arrives after the failure, still saying 5.00

    assert WebhookEvent.objects.get(type="charge.refunded").status == "PROCESSED"
    assert state(order) == ("COMPLETED", Decimal("0.00"), 0, 50)
    assert [e.amount for e in order_ledger_entries(order).order_by("pk")] == [50, -25, 25]
    ledger_is_clean()


def test_the_failure_arriving_before_the_refund_converges_to_the_same_state(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    fake_stripe.refund(order.provider_payment_id, 500)  # made in the dashboard
    refunded = fake_stripe.event(
        "charge.refunded", fake_stripe.charge_for(order.provider_payment_id)
    )
    refund_id = next(iter(fake_stripe.refunds))
    failed = fake_stripe.event("refund.failed", fake_stripe.set_refund_status(refund_id, "failed"))

    deliver(failed)
    deliver(refunded)

    assert state(order) == ("COMPLETED", Decimal("0.00"), 0, 50)
    assert Refund.objects.get(provider_refund_id=refund_id).status == "failed"
    assert [e.amount for e in order_ledger_entries(order)] == [50]
    ledger_is_clean()


def test_a_stale_total_counts_only_the_refunds_still_standing(paid_order, fake_stripe, deliver):
    order = paid_order()
    pi = order.provider_payment_id
    fake_stripe.refund(pi, 500)
    first = fake_stripe.event("charge.refunded", fake_stripe.charge_for(pi))
    fake_stripe.refund(pi, 200)
    second = fake_stripe.event("charge.refunded", fake_stripe.charge_for(pi))  # 7.00 in all
    deliver(first)
    failed_id = next(iter(fake_stripe.refunds))
    deliver(fake_stripe.event("refund.failed", fake_stripe.set_refund_status(failed_id, "failed")))

    deliver(second)  # says 7.00; Stripe now has 2.00 refunded

    assert state(order) == ("PARTIALLY_REFUNDED", Decimal("2.00"), 10, 40)
    assert sorted(Refund.objects.filter(order=order).values_list("status", flat=True)) == [
        "failed",
        "succeeded",
    ]
    ledger_is_clean()


def test_a_refund_event_waits_while_stripe_cannot_list_the_refunds(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    fake_stripe.refund(order.provider_payment_id, 500)
    fake_stripe.fail_next("GET", "/v1/refunds", status=500)

    deliver(fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id)))

    event = WebhookEvent.objects.get(type="charge.refunded")
    assert event.status == "FAILED" and event.next_attempt_at is not None  # tried again later
    assert state(order) == ("COMPLETED", Decimal("0.00"), 0, 50)
