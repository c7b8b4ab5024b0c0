"""A payment confirmed after its buyer deleted the account grants nothing: the money goes back."""

import io

import pytest
from django.core.management import call_command

from accounts.exceptions import AccountNotDeletable
from accounts.services import account_delete
from credits.models import CreditBalance, LedgerEntry
from payments.models import Invoice, Order, Refund
from payments.refunds import CLOSED_ACCOUNT_REASON

from .conftest import start_stripe_checkout

pytestmark = pytest.mark.django_db


def test_a_payment_after_the_account_was_deleted_is_refunded_not_granted(
    client, user, packages, fake_stripe, deliver
):
    order = start_stripe_checkout(client, user, packages["Basic"])
    with pytest.raises(AccountNotDeletable):  # a checkout under way blocks deletion
        account_delete(user=user, actor=user)
    client.get(f"/billing/orders/{order.pk}/cancel/")
    client.logout()
    account_delete(user=user, actor=user)
    # The checkout stayed open in another tab: the buyer pays there after all.
    paid = fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))

    deliver(paid)
    deliver(
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    )

    order.refresh_from_db()
    assert not order.is_fulfilled and order.status == Order.Status.CANCELLED
    assert order.amount_refunded == order.amount
    assert not LedgerEntry.objects.filter(user=user, kind="PURCHASE").exists()
    assert CreditBalance.objects.get(user=user).balance == 0
    assert not Invoice.objects.filter(order=order).exists()
    refunds = list(fake_stripe.refunds.values())
    assert len(refunds) == 1 and refunds[0]["amount"] == 999
    (refund,) = Refund.objects.filter(order=order)
    assert refund.reason == CLOSED_ACCOUNT_REASON and refund.amount == order.amount
    call_command("check_ledger", stdout=io.StringIO())
