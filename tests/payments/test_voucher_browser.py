"""Promo codes in a real Chromium: redeeming free credits from the credits page, a bad code,
and buying a pack with a bonus code through the sandbox checkout."""

import re

import pytest
from django.core.cache import cache

from credits.models import CreditBalance, CreditLot
from payments.models import Order, Voucher, VoucherRedemption

from .voucher_helpers import make_voucher

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-unusual-passphrase-42"


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_redeem_a_code_from_the_credits_page_then_a_bad_one(page, screenshot, make_user):
    cache.clear()
    user = make_user("ada@example.com", password=PASSWORD)
    make_voucher("WELCOME50", value=50, max_uses=100, credits_valid_days=30)
    log_in(page, "ada@example.com")

    page.goto("/credits/")
    page.get_by_label("Have a promo code?").fill("welcome50")
    screenshot(page, "1-credits-page-code")
    page.get_by_test_id("credits-redeem-form").get_by_role("button", name="Redeem").click()

    page.wait_for_url("**/credits/")
    assert page.get_by_text("Code accepted: 50 credits added.").is_visible()
    assert page.get_by_test_id("credits-balance").get_by_text("50", exact=True).is_visible()
    screenshot(page, "2-redeemed")
    assert CreditBalance.objects.get(user=user).balance == 50

    page.get_by_label("Have a promo code?").fill("welcome50")  # the same code again
    page.get_by_test_id("credits-redeem-form").get_by_role("button", name="Redeem").click()
    page.wait_for_url("**/billing/redeem/")
    assert page.get_by_test_id("redeem-error").inner_text() == "You have already used this code."

    page.get_by_label("Promo code").fill("NOT-A-CODE")
    page.get_by_role("button", name="Redeem").click()
    page.get_by_test_id("redeem-error").wait_for()
    assert "That code is not valid" in page.get_by_test_id("redeem-error").inner_text()
    screenshot(page, "3-bad-code")
    assert CreditBalance.objects.get(user=user).balance == 50


def test_buy_a_pack_with_a_bonus_code_through_the_sandbox(
    page, screenshot, packages, make_user, sandbox_only
):
    cache.clear()
    user = make_user("lin@example.com", password=PASSWORD)
    make_voucher("LAUNCH", kind=Voucher.Kind.PERCENTAGE_BONUS, value=20, max_uses=10)
    log_in(page, "lin@example.com")

    page.goto("/billing/pricing/")
    card = page.get_by_test_id("package-basic")
    card.get_by_text("Have a promo code?").click()
    card.get_by_label("Promo code for Basic").fill("launch")
    screenshot(page, "1-pricing-with-code")
    card.get_by_role("button", name=re.compile("Buy Basic")).click()

    page.wait_for_url("**/billing/sandbox/checkout/**")
    assert page.get_by_test_id("sandbox-amount").inner_text() == "$9.99"  # the price is the price
    assert VoucherRedemption.objects.get(user=user).status == "RESERVED"
    page.get_by_role("button", name="Pay $9.99").click()

    page.wait_for_url("**/billing/orders/*/success/**")
    page.get_by_role("heading", name="50 credits added").wait_for()
    assert page.get_by_test_id("status-bonus").is_visible()
    assert "+10" in page.get_by_test_id("status-bonus").inner_text()
    assert page.get_by_test_id("status-balance").inner_text() == "60"
    screenshot(page, "2-paid-with-bonus")

    order = Order.objects.get(user=user)
    bonus = CreditLot.objects.get(user=user, source="bonus")
    assert (bonus.original, bonus.source_id) == (10, order.pk)
    assert Voucher.objects.get(code="LAUNCH").uses == 1
