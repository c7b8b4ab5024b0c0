"""A user's status follows their payments: TRIAL until a first completed order, then ACTIVE."""

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from payments.models import Order
from tests.payments.conftest import packages, sandbox_only  # noqa: F401

pytestmark = pytest.mark.django_db


def buy_on_the_sandbox(client, user, package, capture, action="pay"):
    client.force_login(user)
    response = client.post("/billing/buy/", {"package": package.pk})
    assert response.status_code == 303
    with capture(execute=True):
        client.post(response["Location"], {"action": action})
    return Order.objects.filter(user=user).latest("pk")


def test_a_first_paid_order_makes_a_trial_user_active_and_the_account_page_says_so(
    client, user, packages, sandbox_only, django_capture_on_commit_callbacks
):
    client.force_login(user)
    assert "Trial" in client.get(reverse("accounts:profile")).text

    order = buy_on_the_sandbox(client, user, packages["Basic"], django_capture_on_commit_callbacks)

    assert order.status == Order.Status.COMPLETED
    assert User.objects.get(pk=user.pk).status == User.Status.ACTIVE
    text = client.get(reverse("accounts:profile")).text
    status = text.split('data-testid="account-status">', 1)[1].split("</dd>", 1)[0]
    tier = text.split('data-testid="account-tier">', 1)[1].split("</dd>", 1)[0]
    assert status.startswith("Active") and "Trial" not in status
    assert tier == "No subscription (pay as you go)"


def test_an_unpaid_checkout_leaves_the_user_on_trial(
    client, user, packages, sandbox_only, django_capture_on_commit_callbacks
):
    order = buy_on_the_sandbox(
        client, user, packages["Basic"], django_capture_on_commit_callbacks, action="fail"
    )

    assert order.status == Order.Status.FAILED
    assert User.objects.get(pk=user.pk).status == User.Status.TRIAL


def test_a_payment_never_lowers_a_subscribed_or_suspended_user(
    client, make_user, packages, sandbox_only, django_capture_on_commit_callbacks
):
    subscriber = make_user(status=User.Status.SUBSCRIBED)

    buy_on_the_sandbox(client, subscriber, packages["Basic"], django_capture_on_commit_callbacks)

    assert User.objects.get(pk=subscriber.pk).status == User.Status.SUBSCRIBED


def test_the_migration_makes_users_who_already_paid_active(make_user, packages):
    import importlib

    from django.apps import apps

    backfill = importlib.import_module(
        "accounts.migrations.0004_user_lifecycle"
    ).mark_paying_users_active
    payer, browser, suspended = make_user(), make_user(), make_user(status=User.Status.SUSPENDED)
    package = packages["Basic"]
    for buyer, completed_at in (
        (payer, timezone.now()),
        (browser, None),
        (suspended, timezone.now()),
    ):
        Order.objects.create(
            user=buyer,
            package=package,
            amount=package.price,
            currency=package.currency,
            credits=package.credits,
            provider="SANDBOX",
            completed_at=completed_at,
            status="COMPLETED" if completed_at else "PENDING",
        )

    backfill(apps, None)

    assert [User.objects.get(pk=u.pk).status for u in (payer, browser, suspended)] == [
        "ACTIVE",
        "TRIAL",
        "SUSPENDED",
    ]


def test_the_account_page_links_to_the_api_key_page(client, user):
    client.force_login(user)

    text = client.get(reverse("accounts:profile")).text

    assert f'href="{reverse("generations:api_key")}"' in text
