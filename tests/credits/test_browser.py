"""The credits page in a real Chromium: balance, history, filters, loading older entries."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.formats import date_format

from credits.models import LedgerKind
from credits.services import credits_grant, credits_refund, credits_spend
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, email):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


@pytest.fixture
def customer(make_user):
    user = make_user("ada@example.com")
    credits_grant(
        user=user,
        amount=120,
        kind=LedgerKind.PURCHASE,
        idempotency_key="p1",
        description="Pro pack",
    )
    descriptions = ["Poster: lighthouse at dusk", "Logo sketch", "Banner: autumn sale", "Avatar"]
    spends = [
        credits_spend(
            user=user, amount=3 + i % 4, idempotency_key=f"s{i}", description=descriptions[i % 4]
        )
        for i in range(14)
    ]
    credits_refund(spend=spends[2], idempotency_key="r1", reason="Cheaper than estimated", amount=2)
    credits_grant(
        user=user,
        amount=15,
        kind=LedgerKind.VOUCHER,
        idempotency_key="v1",
        description="Spring voucher",
        expires_at=timezone.now() + timedelta(days=5),
    )
    return user


def test_history_with_filters_and_older_entries(page, screenshot, customer, settings):
    settings.CREDITS_HISTORY_PAGE_SIZE = 10
    log_in(page, customer.email)

    page.goto("/credits/")

    paid = 120 - sum(3 + i % 4 for i in range(14)) + 2
    expected = paid + 15
    expires = date_format(timezone.localtime(timezone.now() + timedelta(days=5)), "j F Y")
    assert page.get_by_test_id("credits-balance").locator(".stat-value").inner_text() == str(
        expected
    )
    assert page.get_by_test_id("balance-split").inner_text() == f"{paid} paid · 15 promotional"
    assert page.get_by_test_id("balance-expiry").inner_text() == f"15 credits expire on {expires}"
    assert page.get_by_test_id("header-balance").inner_text() == f"{expected} credits"
    assert page.get_by_test_id("header-balance-split").inner_text() == f"{paid} paid · 15 promo"
    assert page.get_by_test_id("header-balance-expiry").inner_text().startswith("15 expire ")
    assert page.locator("#history-rows tr").count() == 10
    assert "promotional · until" in page.locator("#history-rows tr").first.inner_text()
    screenshot(page, "1-history")

    page.get_by_test_id("older-entries").click()
    page.wait_for_function("document.querySelectorAll('#history-rows tr').length === 17")
    assert page.get_by_text("That is everything.").is_visible()
    ids = page.locator("#history-rows tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.entryId))"
    )
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 17

    page.get_by_label("Kind").select_option("REFUND")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"kind=REFUND"))
    assert page.locator("#history-rows tr").count() == 1
    assert page.get_by_text("Cheaper than estimated").is_visible()

    page.goto("/credits/?date_from=2025-05-02&date_to=2025-05-01")
    assert (
        page.get_by_test_id("filter-errors")
        .get_by_text("The start date is after the end date")
        .is_visible()
    )
    screenshot(page, "2-bad-filter")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/credits/")
    screenshot(page, "3-mobile")
