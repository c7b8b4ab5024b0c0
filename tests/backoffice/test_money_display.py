"""Money in the staff pages reads like money: "$2.99", never "2.99000000000000 USD"."""

from decimal import Decimal

import pytest
from django.urls import reverse

from payments.models import Order

pytestmark = pytest.mark.django_db


def test_the_user_page_sums_paid_orders_as_money(client, superuser, make_user, make_order):
    customer = make_user()
    make_order(customer, amount="2.99")
    make_order(customer, amount="10.00", amount_refunded=Decimal("1.50"))
    client.force_login(superuser)

    body = client.get(reverse("admin:accounts_user_change", args=[customer.pk])).content.decode()

    assert "$12.99 in 2 orders, $1.50 refunded" in body
    assert "2.990000" not in body and "12.99000" not in body
    assert "Lifetime received" in body and "earned" not in body.lower()


def test_the_refund_confirmation_and_its_errors_show_money(
    client, superuser, make_user, make_order
):
    order = make_order(make_user(), amount="2.99", amount_refunded=Decimal("1.00"))
    client.force_login(superuser)
    url = reverse("admin:payments_order_changelist")

    page = client.post(url, {"action": "refund", "_selected_action": [order.pk]}).content.decode()
    too_much = client.post(
        url,
        {
            "action": "refund",
            "_selected_action": [order.pk],
            "confirm": "yes",
            "submission_key": "0" * 32,
            "amount": "5.00",
            "reason": "Asked",
        },
    ).content.decode()

    assert "$2.99" in page and "$1.00" in page
    assert "At most $1.99 is left to refund on this order." in too_much
    Order.objects.get(pk=order.pk, amount_refunded=Decimal("1.00"))  # nothing refunded
