"""Buying credits in a real Chromium through the sandbox checkout, from sign-up to invoice."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail

from credits.models import CreditBalance
from payments.models import Invoice, Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-unusual-passphrase-42"


def confirmation_path(email: str) -> str:
    sent = [m for m in mail.outbox if email in m.to]
    assert sent, f"no email to {email}"
    link = re.search(r"https?://\S+/confirm-email/\S+", sent[-1].body)
    assert link, sent[-1].body
    return urlsplit(link.group(0)).path


def sign_up(page, email: str) -> None:
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/accounts/confirm-email/")
    page.goto(confirmation_path(email))
    page.get_by_role("button", name=re.compile("Confirm")).click()
    page.wait_for_url("**/accounts/login/**")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_sign_up_buy_through_the_sandbox_and_read_the_invoice(
    page, screenshot, packages, sandbox_only
):
    page.goto("/")
    assert page.get_by_role("heading", name=re.compile("Pay only for what you make")).is_visible()
    assert page.get_by_test_id("package-pro").get_by_text("Most popular").is_visible()
    screenshot(page, "1-home")

    sign_up(page, "grace@example.com")
    trial = CreditBalance.objects.get(user__email="grace@example.com").balance

    page.goto("/billing/pricing/")
    assert page.get_by_text("Sandbox payments").is_visible()
    screenshot(page, "2-pricing")
    page.get_by_test_id("package-basic").get_by_role("button", name=re.compile("Buy Basic")).click()

    page.wait_for_url("**/billing/sandbox/checkout/**")
    assert page.get_by_test_id("sandbox-amount").inner_text() == "$9.99"
    screenshot(page, "3-sandbox-checkout")
    page.get_by_role("button", name="Pay $9.99").click()

    page.wait_for_url("**/billing/orders/*/success/**")
    page.get_by_role("heading", name="50 credits added").wait_for()
    assert page.get_by_test_id("status-balance").inner_text() == str(trial + 50)
    assert page.get_by_test_id("header-balance").inner_text().strip() == f"{trial + 50} credits"
    screenshot(page, "4-credits-arrived")

    order = Order.objects.get(user__email="grace@example.com")
    assert order.status == "COMPLETED" and order.provider == "SANDBOX"
    invoice = Invoice.objects.get(order=order)

    page.goto("/billing/orders/")
    row = page.get_by_test_id(f"order-{order.pk}")
    assert "Completed" in row.inner_text() and "$9.99" in row.inner_text()
    screenshot(page, "5-orders")
    row.get_by_role("link", name=invoice.number).click()

    page.wait_for_url(f"**/billing/invoices/{invoice.number}/")
    assert page.get_by_role("heading", name="Invoice").is_visible()
    assert page.get_by_text("Basic credit pack: 50 credits").is_visible()
    assert page.get_by_test_id("invoice-buyer").get_by_text("grace@example.com").is_visible()
    screenshot(page, "6-invoice")
    page.emulate_media(media="print")
    assert not page.get_by_role("button", name=re.compile("Print")).is_visible()
    assert not page.locator(".site-header").is_visible()
    screenshot(page, "7-invoice-print")


def test_the_return_page_polls_until_the_credits_arrive(
    page, screenshot, packages, make_user, sandbox_only, settings
):
    """The buyer is on the return page before the payment settled and no webhook arrives:
    the page polls, its own check with the provider fulfils, and the credits appear."""
    from payments.models import SandboxPayment
    from payments.providers.sandbox import sandbox_finish

    settings.PAYMENTS_STATUS_RECHECK_SECONDS = 1
    user = make_user("late@example.com", password=PASSWORD)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("late@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    page.goto("/billing/pricing/")
    page.get_by_test_id("package-starter").get_by_role(
        "button", name=re.compile("Buy Starter")
    ).click()
    page.wait_for_url("**/billing/sandbox/checkout/**")
    order = Order.objects.get(user=user)

    page.goto(f"/billing/orders/{order.pk}/success/")
    assert page.get_by_role("heading", name="Confirming your payment…").is_visible()
    assert page.get_by_test_id("header-balance").inner_text().strip() == "0 credits"
    screenshot(page, "1-waiting")

    sandbox_finish(
        token=SandboxPayment.objects.get().token, outcome="paid"
    )  # paid; its webhook never comes

    page.get_by_role("heading", name="10 credits added").wait_for(timeout=15_000)
    assert page.get_by_test_id("header-balance").inner_text().strip() == "10 credits"
    screenshot(page, "2-arrived")
    assert CreditBalance.objects.get(user=user).balance == 10


def test_the_buying_pages_fit_a_phone(
    browser, live_server, screenshot, packages, sandbox_only, make_user, client
):
    from payments.orders import order_create, order_start_checkout

    user = make_user("phone@example.com", password=PASSWORD)
    order = order_create(user=user, package=packages["Pro"], provider="SANDBOX")
    session = order_start_checkout(order=order, success_url="/s", cancel_url="/c")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill("phone@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
        for name, url in (
            ("home", "/"),
            ("pricing", "/billing/pricing/"),
            ("checkout", session.redirect_url),
            ("orders", "/billing/orders/"),
        ):
            page.goto(url)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px on a phone"
            screenshot(page, f"phone-{name}")
    finally:
        context.close()
