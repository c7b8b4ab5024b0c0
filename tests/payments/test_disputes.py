"""Disputes freeze spending while open; a lost one takes the credits back, a won one restores."""

import pytest

from credits.exceptions import SpendingFrozen
from credits.models import CreditBalance
from credits.services import credits_spend
from payments.ledger import order_ledger_entries
from payments.models import Invoice, WebhookEvent

pytestmark = pytest.mark.django_db


def account(user) -> tuple[int, int]:
    row = CreditBalance.objects.get(user=user)
    return row.balance, row.spend_holds


def dispute_events(fake_stripe, order, outcome: str) -> tuple[str, str]:
    opened = fake_stripe.dispute(order.provider_payment_id)
    closed = dict(opened, status=outcome)
    return (
        fake_stripe.event("charge.dispute.created", opened),
        fake_stripe.event("charge.dispute.closed", closed),
    )


def test_an_open_dispute_freezes_spending_and_a_won_one_restores_it(
    paid_order, fake_stripe, deliver
):
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


def test_a_lost_dispute_takes_the_credits_back_and_releases_the_freeze(
    paid_order, fake_stripe, deliver, make_user
):
    order = paid_order()
    other = paid_order("Starter")  # the same buyer's other credits stay
    assert account(order.user) == (60, 0)
    created, closed = dispute_events(fake_stripe, order, "lost")

    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.status, order.dispute_status, order.credits_clawed_back) == (
        "REFUNDED",
        "lost",
        50,
    )
    assert account(order.user) == (10, 0)
    assert Invoice.objects.get(order=order).status == "REFUNDED"
    other.refresh_from_db()
    assert other.status == "COMPLETED"


def test_a_lost_dispute_after_spending_records_what_could_not_be_taken_back(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    credits_spend(user=order.user, amount=45, idempotency_key="spent-before-dispute")
    created, closed = dispute_events(fake_stripe, order, "lost")

    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.credits_clawed_back, order.credits_unrecovered) == (5, 45)
    assert account(order.user) == (0, 0)


def test_a_close_arriving_before_the_open_ends_the_same_and_the_late_open_is_ignored(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    created, closed = dispute_events(fake_stripe, order, "lost")

    deliver(closed)
    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.status, order.dispute_status, order.credits_clawed_back) == (
        "REFUNDED",
        "lost",
        50,
    )
    assert account(order.user) == (0, 0)
    assert order_ledger_entries(order).filter(kind="CLAWBACK").count() == 1
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"PROCESSED"}


def test_a_dispute_after_a_partial_refund_returns_to_partially_refunded_when_won(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    fake_stripe.refund(order.provider_payment_id, 500)
    deliver(fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id)))
    created, closed = dispute_events(fake_stripe, order, "won")

    deliver(created)
    deliver(closed)

    order.refresh_from_db()
    assert (order.status, order.credits_clawed_back) == ("PARTIALLY_REFUNDED", 25)
    assert account(order.user) == (25, 0)


# --- every status Stripe documents has a rule ----------------------------------------------------

#: Stripe's dispute statuses (stripe-python 16.1) -> (order status, dispute status, spending holds,
#: balance of a 50-credit order) once the dispute reaches it.
STRIPE_STATUSES = {
    "warning_needs_response": ("DISPUTED", "open", 1, 50),
    "warning_under_review": ("DISPUTED", "open", 1, 50),
    "needs_response": ("DISPUTED", "open", 1, 50),
    "under_review": ("DISPUTED", "open", 1, 50),
    "appeal_needs_response": ("DISPUTED", "open", 1, 50),
    "appeal_under_review": ("DISPUTED", "open", 1, 50),
    "won": ("COMPLETED", "won", 0, 50),
    "prevented": ("COMPLETED", "prevented", 0, 50),
    "warning_closed": ("COMPLETED", "withdrawn", 0, 50),
    "lost": ("REFUNDED", "lost", 0, 0),
}


@pytest.mark.parametrize("status", sorted(STRIPE_STATUSES))
@pytest.mark.parametrize("event_type", ["charge.dispute.updated", "charge.dispute.closed"])
def test_every_stripe_dispute_status_freezes_lifts_or_claws_back(
    paid_order, fake_stripe, deliver, status, event_type
):
    order = paid_order()
    opened = fake_stripe.dispute(order.provider_payment_id, status="warning_needs_response")
    deliver(fake_stripe.event("charge.dispute.created", opened))
    assert account(order.user) == (50, 1)

    deliver(fake_stripe.event(event_type, dict(opened, status=status)))

    order.refresh_from_db()
    want_status, want_dispute, want_holds, want_balance = STRIPE_STATUSES[status]
    assert (order.status, order.dispute_status) == (want_status, want_dispute)
    assert account(order.user) == (want_balance, want_holds)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"PROCESSED"}


def test_a_prevented_dispute_seen_first_never_leaves_the_buyer_frozen(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    dispute = fake_stripe.dispute(order.provider_payment_id, status="prevented")

    deliver(fake_stripe.event("charge.dispute.closed", dispute))
    deliver(
        fake_stripe.event("charge.dispute.created", dict(dispute, status="needs_response"))
    )  # late

    order.refresh_from_db()
    assert (order.status, order.dispute_status) == ("COMPLETED", "prevented")
    assert account(order.user) == (50, 0)
    credits_spend(user=order.user, amount=1, idempotency_key="after-prevented")


def test_a_dispute_status_stripe_does_not_document_is_flagged_and_changes_nothing(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    opened = fake_stripe.dispute(order.provider_payment_id)
    deliver(fake_stripe.event("charge.dispute.created", opened))

    deliver(fake_stripe.event("charge.dispute.updated", dict(opened, status="arbitration_pending")))

    event = WebhookEvent.objects.get(type="charge.dispute.updated")
    assert event.status == "FAILED" and "'arbitration_pending'" in event.last_error
    assert "UnknownProviderStatus" in event.last_error
    order.refresh_from_db()
    assert (order.status, order.dispute_status) == ("DISPUTED", "open")
    assert account(order.user) == (50, 1)  # still frozen: nothing guessed


def test_a_decided_dispute_reported_with_another_outcome_is_flagged_not_reversed(
    paid_order, fake_stripe, deliver
):
    order = paid_order()
    dispute = fake_stripe.dispute(order.provider_payment_id, status="lost")
    deliver(fake_stripe.event("charge.dispute.closed", dispute))
    assert account(order.user) == (0, 0)

    deliver(fake_stripe.event("charge.dispute.closed", dict(dispute, status="won")))

    event = WebhookEvent.objects.filter(type="charge.dispute.closed").latest("pk")
    assert (
        event.status == "FAILED"
        and "recorded lost" in event.last_error
        and "now says won" in event.last_error
    )
    order.refresh_from_db()
    assert (order.status, order.dispute_status) == ("REFUNDED", "lost")
    assert account(order.user) == (0, 0)
