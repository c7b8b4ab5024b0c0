"""The spending controls page, the low-balance banner, the cap message on the job form, and
staff setting a user's controls from the admin."""

import pytest
from django.urls import reverse

from credits.models import AuditLog, CreditBalance
from credits.services import SpendingControls, credits_spend, spending_controls_set
from tests.backoffice.conftest import make_staff, new_key  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def test_a_user_sets_caps_and_an_alert_and_sees_what_they_spent(client, make_user):
    user = make_user(credits=100)
    credits_spend(user=user, amount=7, idempotency_key="a")
    client.force_login(user)
    url = reverse("credits:controls")

    response = client.post(
        url, {"daily_cap": "20", "monthly_cap": "", "low_balance_threshold": "95"}
    )

    assert response.status_code == 302
    row = CreditBalance.objects.get(user=user)
    assert (row.daily_cap, row.monthly_cap, row.low_balance_threshold) == (20, None, 95)
    page = client.get(url).content.decode()
    assert "of a 20-credit daily cap" in page and "no monthly cap" in page
    assert 'data-testid="spent-today"' in page and ">7<" in page.replace(" ", "")
    # Already below the new threshold: the banner shows on every page.
    banner = client.get(reverse("credits:history")).content.decode()
    assert 'data-testid="low-balance-banner"' in banner and "below the 95" in banner


def test_bad_controls_are_refused_with_the_reason_and_nothing_changes(client, make_user):
    user = make_user(credits=10)
    client.force_login(user)
    response = client.post(
        reverse("credits:controls"),
        {"daily_cap": "50", "monthly_cap": "10", "low_balance_threshold": "-3"},
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "cannot be more than the monthly cap" in text
    assert "greater than or equal to 0" in text
    assert CreditBalance.objects.get(user=user).daily_cap is None


def test_no_banner_above_the_threshold(client, make_user):
    user = make_user(credits=100)
    spending_controls_set(user=user, controls=SpendingControls(low_balance_threshold=50))
    client.force_login(user)
    assert 'data-testid="low-balance-banner"' not in client.get("/").content.decode()


def test_staff_set_a_users_controls_with_a_reason_in_the_audit_log(client, make_user, make_staff):
    customer = make_user(credits=40)
    staff = make_staff("credits.adjust_credits", "accounts.view_user")
    client.force_login(staff)
    url = reverse("admin:accounts_user_spending_controls", args=[customer.pk])
    assert client.get(url).status_code == 200

    response = client.post(
        url,
        {
            "confirm": "yes",
            "submission_key": new_key(),
            "daily_cap": "25",
            "monthly_cap": "",
            "low_balance_threshold": "",
            "reason": "Customer asked by phone to limit spending",
        },
    )

    assert response.status_code == 302
    assert CreditBalance.objects.get(user=customer).daily_cap == 25
    audit = AuditLog.objects.get(user=customer, action="credits.controls")
    assert audit.actor_id == staff.pk
    assert audit.metadata["reason"] == "Customer asked by phone to limit spending"
