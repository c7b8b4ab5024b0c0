"""Refunds from the admin against the fake Stripe server: full, partial, double-submitted,
refused by the provider, and on credits already spent."""

from decimal import Decimal

import pytest
from django.urls import reverse

from credits.models import AuditLog, CreditBalance, LedgerEntry, LedgerKind
from credits.services import credits_spend
from payments.ledger import order_ledger_entries
from payments.models import Order, Refund

from .conftest import messages_of, new_key, post_action

REFUND_PERMS = ("payments.view_order", "payments.refund_order")

pytestmark = pytest.mark.django_db(transaction=True)


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def test_full_refund_from_the_order_page_refunds_once_and_claws_back(
    client, make_staff, paid_stripe_order, fake_stripe
):
    order = paid_stripe_order(credits=100, price="20.00")
    staff = make_staff(*REFUND_PERMS)
    client.force_login(staff)
    url = reverse("admin:payments_order_refund", args=[order.pk])

    page = client.get(url)
    assert page.status_code == 200 and "Refund orders" in page.content.decode()

    form = {
        "confirm": "yes",
        "submission_key": new_key(),
        "amount": "",
        "reason": "Customer asked within 14 days",
    }
    first = client.post(url, form)
    second = client.post(url, form)  # a double submit of the same confirmation
    assert first.status_code == second.status_code == 302

    assert len(fake_stripe.calls("POST", "/v1/refunds")) >= 1
    assert len(fake_stripe.refunds) == 1
    assert fake_stripe.charge_for(order.provider_payment_id)["amount_refunded"] == 2000
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and order.amount_refunded == Decimal("20.00")
    assert order.credits_clawed_back == 100 and balance(order.user) == 0
    clawback = order_ledger_entries(order).get(kind=LedgerKind.CLAWBACK)
    assert clawback.amount == -100 and clawback.created_by_id == staff.pk
    refund = Refund.objects.get(order=order)
    assert refund.created_by_id == staff.pk and refund.reason == "Customer asked within 14 days"
    audit = AuditLog.objects.get(action="staff.order_refund")
    assert (audit.actor_id, audit.user_id, audit.success) == (staff.pk, order.user_id, True)
    assert audit.metadata["reason"] == "Customer asked within 14 days"
    assert audit.metadata["provider_refund_id"] == refund.provider_refund_id
    assert any(
        "refunded 20.00 USD" in m
        and "20.00 USD refunded in all" in m
        and "100 credits taken back" in m
        for m in messages_of(second)
    )


def test_partial_refund_from_the_changelist_takes_back_a_share(
    client, make_staff, paid_stripe_order, fake_stripe
):
    order = paid_stripe_order(credits=100, price="20.00")
    client.force_login(make_staff(*REFUND_PERMS))

    response = post_action(
        client,
        "payments_order",
        "refund",
        [order.pk],
        follow=True,
        amount="5.00",
        reason="One image was broken",
    )

    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED and order.amount_refunded == Decimal(
        "5.00"
    )
    assert order.credits_clawed_back == 25 and balance(order.user) == 75
    assert fake_stripe.charge_for(order.provider_payment_id)["amount_refunded"] == 500
    assert any(
        "refunded 5.00 USD" in m and "5.00 USD refunded in all" in m for m in messages_of(response)
    )


def test_a_refund_stripe_has_not_completed_says_so_and_counts(
    client, make_staff, paid_stripe_order, fake_stripe
):
    order = paid_stripe_order(credits=100, price="20.00")
    client.force_login(make_staff(*REFUND_PERMS))
    fake_stripe.refund_outcome = "requires_action"

    response = post_action(
        client,
        "payments_order",
        "refund",
        [order.pk],
        follow=True,
        amount="5.00",
        reason="One image was broken",
    )

    msgs = messages_of(response)
    assert any(
        "requires action at the provider" in m and "5.00 USD refunded in all" in m for m in msgs
    ), msgs
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED and balance(order.user) == 75
    assert Refund.objects.get(order=order).status == "requires_action"


def test_provider_failure_is_shown_and_changes_nothing(
    client, make_staff, paid_stripe_order, fake_stripe
):
    order = paid_stripe_order(credits=100, price="20.00")
    staff = make_staff(*REFUND_PERMS)
    client.force_login(staff)
    fake_stripe.fail_next(
        "POST", "/v1/refunds", status=402, message="Your card was declined for refunds"
    )

    response = post_action(
        client, "payments_order", "refund", [order.pk], follow=True, reason="Duplicate purchase"
    )

    msgs = messages_of(response)
    assert any(f"Order #{order.pk}" in m and "Stripe" in m for m in msgs), msgs
    order.refresh_from_db()
    assert (
        order.status == Order.Status.COMPLETED
        and order.amount_refunded == 0
        and order.credits_clawed_back == 0
    )
    assert balance(order.user) == 100
    assert not Refund.objects.exists() and not fake_stripe.refunds
    assert not LedgerEntry.objects.filter(kind=LedgerKind.CLAWBACK).exists()
    failed = AuditLog.objects.get(action="staff.order_refund")
    assert (
        not failed.success
        and failed.actor_id == staff.pk
        and "ProviderError" in failed.error_message
    )


def test_refund_more_than_is_left_is_a_form_error(
    client, make_staff, paid_stripe_order, fake_stripe
):
    order = paid_stripe_order(credits=100, price="20.00")
    client.force_login(make_staff(*REFUND_PERMS))

    response = post_action(
        client, "payments_order", "refund", [order.pk], amount="25.00", reason="Too much"
    )

    assert response.status_code == 200
    assert "At most $20.00 is left to refund on this order." in response.content.decode()
    assert not fake_stripe.calls("POST", "/v1/refunds")


def test_refund_after_credits_were_spent_records_what_could_not_be_taken_back(
    client, make_staff, paid_stripe_order, fake_stripe
):
    order = paid_stripe_order(credits=100, price="20.00")
    credits_spend(user=order.user, amount=70, idempotency_key="spent-before-refund")
    client.force_login(make_staff(*REFUND_PERMS))

    response = post_action(
        client, "payments_order", "refund", [order.pk], follow=True, reason="Chargeback threat"
    )

    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert (order.credits_clawed_back, order.credits_unrecovered) == (30, 70)
    assert balance(order.user) == 0
    assert any("70 already spent and unrecovered" in m for m in messages_of(response))
