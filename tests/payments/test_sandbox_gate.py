"""The offline sandbox pays for free, so with DEBUG off it is live only where explicitly enabled:
never offered, its checkout page and webhook endpoint gone, and the pages say plainly what a
buyer can pay with (or that nothing can be bought)."""

import json

import pytest
from django.test import override_settings

from credits.models import CreditBalance
from payments.models import Order, SandboxPayment, WebhookEvent
from payments.providers.sandbox import event_body, sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_defaults(settings, sandbox_only, monkeypatch):
    """DEBUG off, no provider keys, PAYMENTS_SANDBOX_ENABLED left unset: what .env.example gives."""
    monkeypatch.delenv("PAYMENTS_SANDBOX_ENABLED", raising=False)
    del settings.PAYMENTS_SANDBOX_ENABLED
    settings.DEBUG = False


@pytest.fixture
def open_sandbox_checkout(client, user, packages):
    """A sandbox checkout opened while the sandbox was enabled (the test settings enable it)."""
    client.force_login(user)
    response = client.post("/billing/buy/", {"package": packages["Basic"].pk})
    assert response["Location"].startswith("/billing/sandbox/checkout/")
    return Order.objects.get(user=user), response["Location"]


def test_production_without_keys_offers_no_way_to_pay_and_says_so(
    client, user, packages, production_defaults
):
    client.force_login(user)
    for url in ("/", "/billing/pricing/"):
        html = client.get(url).content.decode()
        assert "Sandbox" not in html and "sandbox" not in html, url
        assert "Stripe" not in html and "PayPal" not in html, url
        assert "Buying credits is not available right now" in html, url  # the footer
        assert "Buy Basic" not in html, url
    assert (
        "No payment method is set up on this site yet"
        in client.get("/billing/pricing/").content.decode()
    )


@pytest.mark.parametrize("posted", [{}, {"provider": "SANDBOX"}])
def test_production_without_keys_sells_nothing(client, user, packages, production_defaults, posted):
    client.force_login(user)
    response = client.post(
        "/billing/buy/", {"package": packages["Basic"].pk, **posted}, follow=True
    )

    assert response.redirect_chain[0] == ("/billing/pricing/", 302)
    assert not Order.objects.exists() and not SandboxPayment.objects.exists()
    html = response.content.decode()
    assert (
        "No payment method is available right now" in html
        or "not one of the available choices" in html
    )


def test_a_disabled_sandbox_pays_nothing_on_its_checkout_page(
    client, open_sandbox_checkout, django_capture_on_commit_callbacks
):
    order, url = open_sandbox_checkout
    with override_settings(PAYMENTS_SANDBOX_ENABLED=False):
        with django_capture_on_commit_callbacks(execute=True):
            page = client.get(url)
            pay = client.post(url, {"action": "pay"})

    assert (page.status_code, pay.status_code) == (404, 404)
    assert SandboxPayment.objects.get().status == "open"
    order.refresh_from_db()
    assert order.status == "PENDING"
    assert CreditBalance.objects.get(user=order.user).balance == 0


def test_a_disabled_sandbox_refuses_even_a_genuinely_signed_webhook(
    client, open_sandbox_checkout, django_capture_on_commit_callbacks
):
    order, _ = open_sandbox_checkout
    SandboxPayment.objects.update(status="paid")  # as if Pay had been pressed
    body = event_body(SandboxPayment.objects.get(), "checkout.paid")
    with override_settings(PAYMENTS_SANDBOX_ENABLED=False):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/webhooks/sandbox/",
                data=body,
                content_type="application/json",
                HTTP_SANDBOX_SIGNATURE=sign(body),
            )

    assert response.status_code == 404
    assert not WebhookEvent.objects.exists()
    order.refresh_from_db()
    assert order.status == "PENDING"
    assert CreditBalance.objects.get(user=order.user).balance == 0
    assert json.loads(body)["type"] == "checkout.paid"


def test_the_pages_name_only_the_providers_that_are_live(
    client, user, packages, production_defaults
):
    client.force_login(user)
    with override_settings(STRIPE_SECRET_KEY="sk_test_x"):
        home = client.get("/").content.decode()
        pricing = client.get("/billing/pricing/").content.decode()
    for html in (home, pricing):
        assert "Payments by Stripe<" in html
        assert "PayPal" not in html and "andbox" not in html
        assert "Buy Basic" in html
    assert "Checkout happens on Stripe's page" in home

    with override_settings(
        STRIPE_SECRET_KEY="sk_test_x", PAYPAL_CLIENT_ID="id", PAYPAL_CLIENT_SECRET="secret"
    ):
        pricing = client.get("/billing/pricing/").content.decode()
    assert "Payments by Stripe and PayPal" in pricing and 'value="PAYPAL"' in pricing


def test_with_debug_on_the_sandbox_stands_in_and_says_so(
    client, user, packages, production_defaults, settings
):
    settings.DEBUG = True
    client.force_login(user)
    pricing = client.get("/billing/pricing/").content.decode()

    assert "Sandbox payments" in pricing and "Stripe" not in pricing and "PayPal" not in pricing
    response = client.post("/billing/buy/", {"package": packages["Basic"].pk})
    assert response["Location"].startswith("/billing/sandbox/checkout/")
