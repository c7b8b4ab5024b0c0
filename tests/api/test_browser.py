"""The API keys page in a real browser: create a key, see it once, use it, revoke it."""

import pytest
import requests

from tests.generations.test_browser import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_a_key_use_it_then_revoke_it(page, live_server, member, screenshot):
    log_in(page, live_server, member)
    page.goto("/account/api-keys/")
    page.get_by_label("Name").fill("laptop script")
    page.get_by_label("Generate (create and cancel jobs, redeem codes)").check()
    page.get_by_label("Daily credit cap (optional)").fill("30")
    page.get_by_test_id("create-key").click()
    token = page.get_by_test_id("issued-token").inner_text().strip()
    screenshot(page, "1-key-shown-once")
    answer = requests.get(
        live_server.url + "/api/v1/balance",
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )
    assert answer.status_code == 200 and answer.json()["balance"] == 100

    page.goto("/account/api-keys/")
    assert token not in page.content()
    row = page.get_by_test_id("key-row").filter(has_text="laptop script")
    row.get_by_test_id("revoke-key").click()
    page.get_by_text("is revoked").wait_for()
    screenshot(page, "2-revoked")
    answer = requests.get(
        live_server.url + "/api/v1/balance",
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )
    assert answer.status_code == 401
