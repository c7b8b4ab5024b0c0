"""Disputes freeze spending while open; a lost one takes the credits back, a won one restores."""

import pytest

from credits.exceptions import SpendingFrozen
from credits.models import CreditBalance, LedgerEntry
from credits.services import credits_spend
from payments.models import Invoice, WebhookEvent

pytestmark = pytest.mark.django_db


def account(user) -> tuple[int, int]:
    row = CreditBalance.objects.get(user=user)
    return row.balance, row.spend_holds


def dispute_events(fake_stripe, order, outcome: str) -> tuple[str, str]:
    opened = fake_stripe.dispute(order.provider_payment_id)
    closed = dict(opened, status=outcome)
    return (fake_stripe.event("charge.dispute.created", opened), fake_stripe.event("charge.dispute.closed", closed))


def test_an_open_dispute_freezes_spending_and_a_won_one_restores_it(paid_order, fake_stripe, deliver):
    order = paid_order()
    created, closed = dispute_events(fake_stripe, order, "won")

    deliver(created)
    order.refresh_from_db()
    assert (order.status, order.dispute_status) == ("DISPUTED", "open")
    assert account(order.user) == (50, 1)
    with pytest.raises(SpendingFrozen):
        credits_spend(user=order.user, amount=1, idempotency_key="while-disputed")

    deliver(closed)
    order.refresh_from_db()
    assert (order.status, order.dispute_status) == ("COMPLETED", "won")
    assert account(order.user) == (50, 0)
    credits_spend(user=order.user, amount=1, idempotency_key="after-won")
    assert account(order.user) == (49, 0)


def test_a_lost_dispute_takes_the_credits_back_and_releases_the_freeze(paid_order, fake_stripe, deliver, make_user):
    order = paid_order()
    other = paid_order("Starter")  # the same buyer's other credits stay
    assert account(order.user) == (60, 0)
    created, closed = dispute_events(fake_stripe, order, "lost")

    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.status, order.dispute_status, order.credits_clawed_back) == ("REFUNDED", "lost", 50)
    assert account(order.user) == (10, 0)
    assert Invoice.objects.get(order=order).status == "REFUNDED"
    other.refresh_from_db()
    assert other.status == "COMPLETED"


def test_a_lost_dispute_after_spending_records_what_could_not_be_taken_back(paid_order, fake_stripe, deliver):
    order = paid_order()
    credits_spend(user=order.user, amount=45, idempotency_key="spent-before-dispute")
    created, closed = dispute_events(fake_stripe, order, "lost")

    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.credits_clawed_back, order.credits_unrecovered) == (5, 45)
    assert account(order.user) == (0, 0)


def test_a_close_arriving_before_the_open_ends_the_same_and_the_late_open_is_ignored(paid_order, fake_stripe,
                                                                                    deliver):
    order = paid_order()
    created, closed = dispute_events(fake_stripe, order, "lost")

    deliver(closed)
    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.status, order.dispute_status, order.credits_clawed_back) == ("REFUNDED", "lost", 50)
    assert account(order.user) == (0, 0)
    assert LedgerEntry.objects.filter(order=order, kind="CLAWBACK").count() == 1
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"PROCESSED"}


def test_a_dispute_after_a_partial_refund_returns_to_partially_refunded_when_won(paid_order, fake_stripe, deliver):
    order = paid_order()
    fake_stripe.refund(order.provider_payment_id, 500)
    deliver(fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id)))
    created, closed = dispute_events(fake_stripe, order, "won")

    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.status, order.credits_clawed_back) == ("PARTIALLY_REFUNDED", 25)
    assert account(order.user) == (25, 0)
