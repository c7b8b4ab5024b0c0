"""Buying: a signed-in buyer chooses a package, the server prices the order, Stripe gets it."""

from decimal import Decimal

import pytest

from payments.models import Order
from tests.payments.conftest import start_stripe_checkout

pytestmark = pytest.mark.django_db


def test_buying_creates_a_pending_order_priced_by_the_server_and_a_stripe_session(
    client, user, packages, fake_stripe
):
    client.force_login(user)
    basic = packages["Basic"]

    response = client.post("/billing/buy/", {"package": basic.pk})

    order = Order.objects.get(user=user)
    assert (order.status, order.amount, order.currency, order.credits, order.provider) == (
        "PENDING",
        Decimal("9.99"),
        "USD",
        50,
        "STRIPE",
    )
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    params = call["params"]
    assert call["idempotency_key"] == f"checkout-{order.pk}"
    assert params["client_reference_id"] == str(order.pk)
    assert params["metadata"]["order_id"] == str(order.pk)
    assert params["payment_intent_data"]["metadata"]["order_id"] == str(order.pk)
    assert params["line_items"][0]["price_data"] == {
        "currency": "usd",
        "unit_amount": "999",
        "product_data": {"name": "Basic: 50 credits"},
    }
    assert params["success_url"].endswith(
        f"/billing/orders/{order.pk}/success/?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert order.provider_order_id in fake_stripe.sessions
    assert response.status_code == 303
    assert response["Location"] == fake_stripe.sessions[order.provider_order_id]["url"]


def test_a_posted_price_or_credit_count_is_ignored(client, user, packages, fake_stripe):
    client.force_login(user)
    starter = packages["Starter"]

    client.post(
        "/billing/buy/",
        {
            "package": starter.pk,
            "amount": "0.01",
            "price": "0.01",
            "credits": "100000",
            "currency": "JPY",
            "unit_amount": "1",
        },
    )

    order = Order.objects.get(user=user)
    assert (order.amount, order.currency, order.credits) == (Decimal("2.99"), "USD", 10)
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert call["params"]["line_items"][0]["price_data"]["unit_amount"] == "299"


def test_buying_needs_a_signed_in_user_and_a_post(client, packages, user, fake_stripe):
    response = client.post("/billing/buy/", {"package": packages["Pro"].pk})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    client.force_login(user)
    assert client.get("/billing/buy/").status_code == 405
    assert not Order.objects.exists()
    assert not fake_stripe.calls("POST", "/v1/checkout/sessions")


def test_an_inactive_or_unknown_package_is_refused_with_a_message(
    client, user, packages, fake_stripe
):
    client.force_login(user)
    power = packages["Power"]
    power.active = False
    power.save()

    response = client.post("/billing/buy/", {"package": power.pk}, follow=True)

    assert "That package is not on sale." in response.content.decode()
    assert not Order.objects.exists()


def test_when_stripe_fails_the_order_fails_and_the_buyer_is_told(
    client, user, packages, fake_stripe
):
    fake_stripe.fail_next("POST", "/v1/checkout/sessions", status=500)
    client.force_login(user)

    response = client.post("/billing/buy/", {"package": packages["Basic"].pk}, follow=True)

    assert "the checkout could not start. Nothing was charged" in response.content.decode()
    assert Order.objects.get(user=user).status == "FAILED"


def test_the_pricing_page_lists_the_packages_from_the_database(client, packages):
    pro = packages["Pro"]
    pro.price = Decimal("19.99")
    pro.save()

    page = client.get("/billing/pricing/").content.decode()

    assert "$19.99" in page and "150 credits" in page and "Sign up to buy" in page
    assert "$2.99" in page and "$9.99" in page and "$69.99" in page


def test_checkout_retry_after_a_timeout_reuses_the_same_session(user, packages, fake_stripe):
    from payments.orders import order_create, order_start_checkout

    order = order_create(user=user, package=packages["Basic"], provider="STRIPE")
    first = order_start_checkout(
        order=order,
        success_url="http://x/s?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://x/c",
    )
    again = order_start_checkout(
        order=order,
        success_url="http://x/s?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://x/c",
    )

    assert first.provider_order_id == again.provider_order_id
    assert len(fake_stripe.sessions) == 1


def test_a_one_credit_pack_says_one_credit_everywhere(client, user, fake_stripe, deliver):
    from payments.models import CreditPackage, Invoice

    single = CreditPackage.objects.create(name="Single", credits=1, price=Decimal("0.99"))
    assert "1 credit<" in client.get("/billing/pricing/").content.decode()
    order = start_stripe_checkout(client, user, single)
    deliver(
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    )

    pages = [
        client.get(f"/billing/orders/{order.pk}/success/").content.decode(),
        client.get(
            f"/billing/invoices/{Invoice.objects.get(order=order).number}/"
        ).content.decode(),
    ]
    assert "1 credit added" in pages[0] and "Single credit pack: 1 credit<" in pages[1]
    assert all("1 credits" not in page for page in pages)
