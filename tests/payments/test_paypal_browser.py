"""In Chromium: choose PayPal on the buy page, approve on (fake) PayPal, see the credits arrive."""

import re

import pytest
from playwright.sync_api import expect

from credits.models import CreditBalance
from payments.models import Order
from tests.conftest import PASSWORD
from tests.payments.fake_paypal import demo_packages, fake_paypal  # noqa: F401
from tests.payments.fake_stripe_recon import recon_stripe  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("demo_packages"),
]


def test_buying_credits_through_paypal_end_to_end(
    page, screenshot, make_user, fake_paypal, recon_stripe
):
    user = make_user("buyer@example.com")
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/account/")

    # Stripe and PayPal are both configured: every package offers both.
    page.goto("/billing/pricing/")
    card = page.get_by_test_id("package-basic")
    expect(card.get_by_label("Stripe")).to_be_checked()
    card.get_by_label("PayPal").check()
    screenshot(page, "pricing-choose-paypal")
    card.get_by_role("button", name=re.compile("Buy Basic")).click()

    # PayPal's approval page (the fake's), with the price the server set.
    page.wait_for_url(f"{fake_paypal.url}/checkoutnow?token=*")
    expect(page.get_by_test_id("paypal-amount")).to_contain_text("9.99 USD")
    screenshot(page, "paypal-approval")
    page.get_by_role("button", name="Pay Now").click()

    # Back on our site: captured on return, the credits are there.
    page.wait_for_url(re.compile(r"/billing/orders/\d+/success/$"))
    expect(page.get_by_role("heading", name="50 credits added")).to_be_visible()
    expect(page.get_by_test_id("header-balance")).to_have_text("50 credits")
    expect(page.get_by_test_id("status-balance")).to_have_text("50")
    screenshot(page, "credits-arrived")

    order = Order.objects.get(user=user)
    assert order.provider == "PAYPAL" and order.status == Order.Status.COMPLETED
    assert order.provider_payment_id in fake_paypal.captures
    assert CreditBalance.objects.get(user=user).balance == 50
    assert not recon_stripe.sessions  # nothing went to Stripe

    page.get_by_role("link", name=re.compile("View invoice")).click()
    expect(page.get_by_role("heading", name="Invoice")).to_be_visible()
    expect(page.get_by_text(order.provider_payment_id)).to_be_visible()  # PayPal's capture id
    screenshot(page, "invoice")
