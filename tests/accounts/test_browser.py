"""The sign-up journey in a real Chromium: sign up, confirm from the email, log in, account page."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail

from .conftest import confirmation_link

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-unusual-passphrase-42"


def test_sign_up_confirm_log_in_and_reach_the_account_page(page, screenshot):
    page.goto("/accounts/signup/")
    assert page.title().startswith("Sign up")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    screenshot(page, "1-signup")
    page.get_by_role("button", name="Create account").click()

    page.wait_for_url("**/accounts/confirm-email/")
    assert page.get_by_role("heading", name="Check your inbox").is_visible()
    assert page.get_by_test_id("verification-sent").is_visible()
    screenshot(page, "2-check-inbox")

    # The email went to the live server's locmem outbox, in this process.
    link = confirmation_link("ada@example.com")
    page.goto(urlsplit(link).path)
    assert page.get_by_text("ada@example.com").is_visible()
    screenshot(page, "3-confirm")
    page.get_by_role("button", name="Confirm my email address").click()

    page.wait_for_url("**/accounts/login/")
    assert page.get_by_text("You have confirmed ada@example.com").is_visible()
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, "4-login")
    page.get_by_role("button", name="Log in").click()

    page.wait_for_url("**/account/")
    assert page.get_by_role("heading", name="Your account").is_visible()
    assert page.get_by_test_id("header-balance").is_visible()
    assert re.fullmatch(r"\d+ credits?", page.get_by_test_id("header-balance").inner_text().strip())
    assert page.get_by_test_id("last-login").inner_text().strip() != "—"
    assert page.get_by_label("Name").input_value() == "Ada Lovelace"
    screenshot(page, "5-account")

    page.get_by_label("Name").fill("Ada King")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_text("Your details were saved.").is_visible()
    assert page.get_by_label("Name").input_value() == "Ada King"
    assert len(mail.outbox) == 1


def test_bad_input_shows_clear_messages_in_the_browser(page, screenshot, make_user):
    make_user("known@example.com")

    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill("new@example.com")
    page.get_by_label("Password", exact=True).fill("password123")
    page.get_by_label("Password (again)").fill("password123")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_text("This password is too common.").is_visible()
    assert page.get_by_role("alert").first.is_visible()
    assert page.get_by_label("Password", exact=True).get_attribute("aria-invalid") == "true"
    screenshot(page, "weak-password")

    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("known@example.com")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    assert (
        page.get_by_test_id("form-error").inner_text().strip()
        == "The email address or password is not correct."
    )
    screenshot(page, "wrong-password")


def test_the_layout_works_at_phone_width(browser, live_server, screenshot, make_user):
    from tests.conftest import PASSWORD as USER_PASSWORD

    user = make_user("phone@example.com", name="Pat Phone", credits=40)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(USER_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/account/")

        # Nothing wider than the screen; the menu folds behind a button, the balance stays visible.
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert page.get_by_test_id("header-balance").inner_text().strip() == "40 credits"
        toggle = page.get_by_role("button", name="Menu")
        assert toggle.get_attribute("aria-expanded") == "false"
        assert not page.get_by_role("link", name="Orders", exact=True).is_visible()
        screenshot(page, "phone-account")

        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
        assert page.get_by_role("link", name="Orders", exact=True).is_visible()
        screenshot(page, "phone-menu-open")
        page.keyboard.press("Escape")
        assert toggle.get_attribute("aria-expanded") == "false"

        # Keyboard users get the skip link first.
        page.reload()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
    finally:
        context.close()
