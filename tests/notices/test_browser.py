"""In a real Chromium: billing details and email preferences from the account page, the
invoice made out with those details, and auto top-up with a sandbox card."""

import io

import pytest
from django.test import Client

from notices.selectors import notice_wanted
from payments.demo import seed
from payments.fulfilment import fulfil_order
from payments.models import AutoTopUp, Order
from payments.providers.base import PaymentStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, user):
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_billing_details_and_email_preferences_from_the_account_page(
    page, live_server, make_user, screenshot, settings
):
    settings.INVOICE_SELLER_NAME = "Credits Ltd"
    settings.INVOICE_SELLER_ADDRESS = "1 Market Street|Dublin|Ireland"
    settings.INVOICE_SELLER_TAX_ID = "IE1234567T"
    settings.INVOICE_TAX_RATE = "23"
    user = make_user("grace@example.com", name="Grace Hopper")
    log_in(page, live_server, user)

    page.goto("/account/")
    page.get_by_test_id("billing-link").click()
    page.wait_for_url("**/billing/profile/")
    page.get_by_label("Name or company").fill("Hopper Analytics GmbH")
    page.get_by_label("Billing address").fill("Hauptstr. 5\n10115 Berlin")
    page.get_by_label("Country").fill("Germany")
    page.get_by_label("Tax id (VAT number)").fill("DE 123 456 789")
    screenshot(page, "1-billing-form")
    page.get_by_role("button", name="Save billing details").click()
    assert page.get_by_text("Your billing details were saved.").is_visible()
    assert page.get_by_label("Tax id (VAT number)").input_value() == "DE123456789"

    page.get_by_role("link", name="Email preferences").first.click()
    page.wait_for_url("**/account/emails/")
    assert page.get_by_label("Low balance").is_checked()
    page.get_by_label("Low balance").uncheck()
    page.get_by_label("Credits about to expire").uncheck()
    screenshot(page, "2-preferences")
    page.get_by_role("button", name="Save preferences").click()
    assert page.get_by_text("Your email preferences were saved.").is_visible()
    assert not page.get_by_label("Low balance").is_checked()
    assert page.get_by_label("Failed generation jobs").is_checked()
    assert not notice_wanted(user=user, kind="low_balance")
    assert notice_wanted(user=user, kind="job_failed")
    screenshot(page, "3-preferences-saved")

    # A purchase now is invoiced to the billing details, with the tax line.
    package = seed(stdout=io.StringIO())[0]
    order = Order.objects.create(
        user=user,
        package=package,
        amount=package.price,
        currency=package.currency,
        credits=package.credits,
        provider="SANDBOX",
        provider_order_id="sbx_cs_browser",
    )
    fulfil_order(
        order_id=order.pk,
        status=PaymentStatus(state="paid", amount=order.amount, currency=order.currency),
        source="test",
    )
    page.goto("/billing/orders/")
    page.get_by_role("link", name=order.invoice.number).click()
    buyer = page.get_by_test_id("invoice-buyer").inner_text()
    assert "Hopper Analytics GmbH" in buyer and "DE123456789" in buyer and "Germany" in buyer
    assert "IE1234567T" in page.get_by_test_id("invoice-seller").inner_text()
    assert "VAT 23%" in page.get_by_test_id("invoice-tax").inner_text()
    screenshot(page, "4-invoice")
    with page.expect_download() as download:
        page.get_by_test_id("invoice-pdf").click(modifiers=["Alt"])
    assert download.value.suggested_filename == f"{order.invoice.number}.pdf"


def test_turning_on_auto_top_up_with_a_sandbox_card(page, live_server, make_user, screenshot):
    seed(stdout=io.StringIO())
    user = make_user()
    log_in(page, live_server, user)
    page.goto("/billing/auto-top-up/")
    page.get_by_label("When my balance falls below (credits)").fill("25")
    screenshot(page, "1-rule")
    page.get_by_test_id("autotopup-save-card").click()
    page.wait_for_url("**/auto-top-up/sandbox-card/")
    page.get_by_role("button", name="Sandbox card that pays").click()
    page.wait_for_url("**/billing/auto-top-up/")
    assert page.get_by_test_id("autotopup-state").inner_text() == "On"
    assert page.get_by_test_id("autotopup-card").inner_text() == "Sandbox card that pays"
    screenshot(page, "2-on")
    assert AutoTopUp.objects.get(user=user).threshold == 25
