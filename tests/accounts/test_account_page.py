"""The account page: details, plan, credits, last login, and the name form."""

from datetime import UTC, datetime
from datetime import timezone as dt_timezone

import pytest
from django.urls import reverse

from accounts.models import User


@pytest.fixture
def customer(make_user):
    return make_user(
        "customer@example.com",
        name="Grace Hopper",
        credits=25,
        status=User.Status.SUBSCRIBED,
        membership_tier=User.Tier.PRO,
        membership_expires_at=datetime(2031, 3, 4, tzinfo=UTC),
    )


@pytest.mark.django_db
def test_the_account_page_shows_who_you_are_your_plan_and_your_credits(client, customer):
    client.force_login(customer)

    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 200
    text = response.text
    assert "customer@example.com" in text
    assert 'value="Grace Hopper"' in text
    assert "Subscribed" in text
    assert "Pro" in text
    assert "4 Mar 2031" in text
    assert response.context["credits"]["balance"] == 25
    assert 'data-testid="header-balance"' in text
    assert "25 credits" in text  # the header pill
    assert "Verified" in text


@pytest.mark.django_db
def test_a_customer_can_change_their_name(client, customer):
    client.force_login(customer)

    response = client.post(reverse("accounts:profile"), {"name": "  Grace B. Hopper "}, follow=True)

    assert response.status_code == 200
    assert "Your details were saved." in response.text
    customer.refresh_from_db()
    assert customer.name == "Grace B. Hopper"


@pytest.mark.django_db
def test_a_name_that_is_too_long_is_refused_and_nothing_changes(client, customer):
    client.force_login(customer)

    response = client.post(reverse("accounts:profile"), {"name": "x" * 151})

    assert response.status_code == 400
    assert "Ensure this value has at most 150 characters" in response.text
    customer.refresh_from_db()
    assert customer.name == "Grace Hopper"


@pytest.mark.django_db
def test_the_form_cannot_change_anything_but_the_name(client, customer):
    client.force_login(customer)

    client.post(
        reverse("accounts:profile"),
        {
            "name": "G",
            "email": "evil@example.com",
            "status": "ACTIVE",
            "membership_tier": "FREE",
            "is_staff": "on",
        },
    )

    customer.refresh_from_db()
    assert (
        customer.name,
        customer.email,
        customer.status,
        customer.membership_tier,
        customer.is_staff,
    ) == (
        "G",
        "customer@example.com",
        User.Status.SUBSCRIBED,
        User.Tier.PRO,
        False,
    )


@pytest.mark.django_db
def test_a_new_customer_without_a_balance_row_sees_zero(client, make_user):
    from credits.models import CreditBalance

    user = make_user()
    CreditBalance.objects.filter(user=user).delete()
    client.force_login(user)

    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 200
    assert response.context["credits"]["balance"] == 0
