"""A buyer who presses cancel (or back) on the provider's checkout sees the order as Cancelled,
not Expired; a payment the provider confirms later still fulfils it, as for an expired one."""

import pytest

from credits.models import CreditBalance
from payments.models import Order
from payments.transitions import can_transition

from .conftest import start_stripe_checkout

pytestmark = pytest.mark.django_db
S = Order.Status


def test_the_transitions_of_a_cancelled_order():
    assert can_transition(S.PENDING, S.CANCELLED)
    assert can_transition(S.CANCELLED, S.COMPLETED)
    for target in (S.PENDING, S.FAILED, S.EXPIRED, S.REFUNDED, S.DISPUTED):
        assert not can_transition(S.CANCELLED, target), target
    assert not can_transition(S.COMPLETED, S.CANCELLED)


def test_returning_from_a_cancelled_stripe_checkout_records_and_shows_it(
    client, user, packages, fake_stripe
):
    order = start_stripe_checkout(client, user, packages["Basic"])

    page = client.get(f"/billing/orders/{order.pk}/cancel/")

    assert page.status_code == 200 and "Nothing was charged" in page.content.decode()
    order.refresh_from_db()
    assert order.status == S.CANCELLED
    orders = client.get("/billing/orders/").content.decode()
    assert ">Cancelled<" in orders and "Expired" not in orders
    status = client.get(f"/billing/orders/{order.pk}/success/").content.decode()
    assert "Checkout cancelled" in status and "hx-trigger" not in status  # settled: no polling


def test_a_payment_after_the_cancel_still_fulfils(client, user, packages, fake_stripe, deliver):
    order = start_stripe_checkout(client, user, packages["Basic"])
    client.get(f"/billing/orders/{order.pk}/cancel/")
    # The session stays open at Stripe: the buyer went forward again and paid.
    deliver(
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    )

    order.refresh_from_db()
    assert order.status == S.COMPLETED
    assert CreditBalance.objects.get(user=user).balance == 50


def test_a_later_expiry_leaves_a_cancelled_order_cancelled(
    client, user, packages, fake_stripe, deliver
):
    order = start_stripe_checkout(client, user, packages["Basic"])
    client.get(f"/billing/orders/{order.pk}/cancel/")
    deliver(
        fake_stripe.event("checkout.session.expired", fake_stripe.expire(order.provider_order_id))
    )

    order.refresh_from_db()
    assert order.status == S.CANCELLED


def test_the_cancel_page_of_a_paid_order_shows_the_order_not_a_cancel(client, user, paid_order):
    order = paid_order()
    client.force_login(user)

    response = client.get(f"/billing/orders/{order.pk}/cancel/")

    assert (
        response.status_code == 302
        and response["Location"] == f"/billing/orders/{order.pk}/success/"
    )
    order.refresh_from_db()
    assert order.status == S.COMPLETED


def test_someone_elses_cancel_page_is_a_404_and_changes_nothing(
    client, user, make_user, packages, fake_stripe
):
    order = start_stripe_checkout(client, user, packages["Basic"])
    client.force_login(make_user("other@example.com"))

    assert client.get(f"/billing/orders/{order.pk}/cancel/").status_code == 404
    order.refresh_from_db()
    assert order.status == S.PENDING
