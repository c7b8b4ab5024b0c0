"""In Chromium: a staff member refunds an order from the admin and sees the clawback in the
ledger; the dashboard renders its charts."""

import re

import pytest
from playwright.sync_api import expect

from credits.models import LedgerEntry, LedgerKind
from payments.ledger import order_ledger_entries
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def admin_login(page, email: str) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()


def test_staff_refunds_an_order_and_sees_the_ledger_entry(
    page, screenshot, make_staff, paid_stripe_order, fake_stripe
):
    order = paid_stripe_order(credits=100, price="20.00")
    make_staff(
        "payments.view_order",
        "payments.refund_order",
        "credits.view_ledgerentry",
        "accounts.view_user",
        email="refunds@example.com",
    )
    admin_login(page, "refunds@example.com")

    page.goto(f"/admin/payments/order/{order.pk}/change/")
    page.get_by_test_id("refund-order").click()
    expect(page.get_by_role("heading", name="Refund orders")).to_be_visible()
    page.get_by_label("Amount").fill("5.00")
    page.get_by_label("Reason").fill("Two pictures came out blank")
    screenshot(page, "confirm")
    page.get_by_test_id("confirm-action").click()

    expect(page).to_have_url(re.compile(rf"/admin/payments/order/{order.pk}/change/$"))
    success = page.locator(".messagelist .success")
    expect(success).to_contain_text("refunded 5.00 USD")
    expect(success).to_contain_text("25 credits taken back")
    ledger = page.locator("#ledger_entries-group")
    expect(ledger).to_contain_text("Clawback")
    expect(ledger).to_contain_text("-25")
    path = screenshot(page, "refunded")
    assert path.exists()

    # The entry is in the ledger list too, found by the order id.
    page.goto(f"/admin/credits/ledgerentry/?q={order.pk}")
    row = page.locator("#result_list tbody tr", has_text="Clawback")
    expect(row).to_contain_text("-25")
    expect(row).to_contain_text(order.user.email)
    screenshot(page, "ledger")
    entry = order_ledger_entries(order).get(kind=LedgerKind.CLAWBACK)
    assert entry.amount == -25 and entry.created_by.email == "refunds@example.com"


def test_dashboard_draws_its_charts(
    page, screenshot, make_staff, paid_stripe_order, fake_stripe, make_job
):
    buyer = paid_stripe_order(credits=100, price="20.00").user
    paid_stripe_order(credits=500, price="80.00")
    for status in ("COMPLETED", "COMPLETED", "FAILED"):
        make_job(buyer, status=status, charged=8 if status == "COMPLETED" else 0)
    make_job(buyer, operation="text", model="small-llm", charged=3, estimated=5)
    make_staff(
        "backoffice.view_finance",
        "credits.view_ledgerentry",
        "payments.view_order",
        email="analyst@example.com",
    )
    admin_login(page, "analyst@example.com")

    page.get_by_test_id("dashboard-link").get_by_role("link").click()
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    expect(page.locator("svg.bo-chart")).to_have_count(3)
    expect(page.locator(".bo-card", has_text="Revenue USD")).to_contain_text("100.00")
    page.get_by_role("link", name="7 days").click()
    expect(page).to_have_url(re.compile(r"period=7"))
    screenshot(page, "dashboard")


def test_staff_adjusts_credits_from_the_user_page(page, screenshot, make_staff, make_user):
    customer = make_user("customer@example.com", credits=40)
    make_staff(
        "accounts.view_user",
        "credits.adjust_credits",
        "credits.view_ledgerentry",
        email="support@example.com",
    )
    admin_login(page, "support@example.com")

    page.goto(f"/admin/accounts/user/{customer.pk}/change/")
    summary = page.get_by_test_id("credits-summary")
    expect(summary).to_contain_text("40")
    page.get_by_test_id("adjust-credits").click()
    page.get_by_label("Amount").fill("15")
    page.get_by_label("Description shown to the customer").fill("Sorry for the slow queue")
    page.get_by_label("Internal note (staff only)").fill("Goodwill: slow queue on Monday")
    page.get_by_test_id("confirm-action").click()

    expect(page.locator(".messagelist .success")).to_contain_text(
        "adjusted by +15 credits, balance now 55"
    )
    expect(page.get_by_test_id("credits-summary")).to_contain_text("55")
    expect(page.locator("#ledger_entries-group")).to_contain_text("Goodwill: slow queue on Monday")
    screenshot(page, "user-page")
    entry = LedgerEntry.objects.get(user=customer, kind=LedgerKind.ADJUSTMENT)
    assert entry.description == "Sorry for the slow queue"
    assert entry.internal_note == "Goodwill: slow queue on Monday"
