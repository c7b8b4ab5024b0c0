"""A membership in a real Chromium on the sandbox: subscribe, renew, upgrade, cancel, checking
the balance, the lots and the invoices at each step."""

import re

import pytest

from credits.models import CreditBalance, CreditLot
from payments.models import Subscription, SubscriptionPeriod

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("plans", "packages"),
]

PASSWORD = "a-long-unusual-passphrase-42"


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def lots(user) -> dict:
    live = {}
    for lot in CreditLot.objects.filter(user=user, remaining__gt=0):
        live[lot.source] = live.get(lot.source, 0) + lot.remaining
    return live


def test_subscribe_renew_upgrade_and_cancel_on_the_sandbox(
    page, screenshot, make_user, sandbox_only, settings, live_server
):
    settings.CREDITS_REGEN_CAP = 0
    settings.PAYMENTS_SANDBOX_WEBHOOK_URL = f"{live_server.url}/webhooks/sandbox/"
    user = make_user("ada@example.com", password=PASSWORD)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()

    page.goto("/billing/pricing/")
    assert page.get_by_test_id("plan-pro").is_visible()
    assert page.get_by_test_id("package-basic").is_visible()
    screenshot(page, "1-pricing")
    page.get_by_test_id("plan-pro").get_by_role("button", name="Subscribe to Pro").click()

    page.wait_for_url("**/billing/sandbox/subscribe/**")
    assert "$24.00" in page.get_by_test_id("sandbox-amount").inner_text()
    screenshot(page, "2-sandbox-subscribe")
    page.get_by_role("button", name=re.compile("Subscribe for")).click()

    page.wait_for_url("**/billing/plan/")
    assert page.get_by_test_id("membership-status").inner_text() == "Active"
    assert page.get_by_test_id("period-credits").inner_text() == "300 of 300 left"
    assert page.get_by_test_id("header-balance").inner_text().strip() == "300 credits"
    assert balance(user) == 300 and lots(user) == {"subscription": 300}
    user.refresh_from_db()
    assert (user.status, user.membership_tier) == ("SUBSCRIBED", "PRO")
    screenshot(page, "3-subscribed")

    # A month passes at the sandbox provider: 300 unused, 150 roll over, 300 new.
    page.get_by_test_id("sandbox-renew").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("rollover-credits").inner_text() == "150 of 150 left"
    assert page.get_by_test_id("period-invoices").locator("tbody tr").count() == 2
    assert balance(user) == 450 and lots(user) == {"subscription": 300, "rollover": 150}
    screenshot(page, "4-renewed")

    page.get_by_test_id("plan-studio").get_by_role("button", name="Switch to Studio").click()
    page.wait_for_load_state()
    proration = SubscriptionPeriod.objects.get(subscription__user=user, kind="PRORATION")
    assert 695 <= proration.credits <= 700
    assert page.get_by_role("heading", name=re.compile("Studio plan")).is_visible()
    assert page.get_by_test_id("period-invoices").locator("tbody tr").count() == 3
    assert balance(user) == 450 + proration.credits
    assert page.get_by_test_id("period-invoices").get_by_text("(upgrade)").is_visible()
    screenshot(page, "5-upgraded")

    page.get_by_test_id("cancel").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("next-renewal").is_visible()
    assert page.get_by_text("Ends on").is_visible()
    assert page.get_by_test_id("resume").is_visible()
    screenshot(page, "6-cancelling")

    page.get_by_test_id("sandbox-renew").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("no-membership").is_visible()
    sub = Subscription.objects.get(user=user)
    assert sub.status == "ENDED"
    user.refresh_from_db()
    assert (user.status, user.membership_tier) == ("ACTIVE", "FREE")
    # The last paid period's credits stay until their lots end.
    assert balance(user) == 450 + proration.credits
    screenshot(page, "7-ended")

    number = proration.invoice_number
    page.get_by_role("link", name=number).click()
    page.wait_for_url(f"**/billing/plan/invoices/{number}/")
    assert page.get_by_text("Studio plan upgrade").is_visible()
    screenshot(page, "8-invoice")
