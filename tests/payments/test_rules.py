"""The order state machine, the settings checks, the demo packages and the orders page."""

import io
from decimal import Decimal

import pytest

from payments.checks import check_payment_settings
from payments.demo import seed
from payments.exceptions import InvalidTransition
from payments.models import CreditPackage, Order
from payments.transitions import ALLOWED, can_transition, order_transition

S = Order.Status


@pytest.mark.parametrize(
    "current, target",
    [
        (S.PENDING, S.COMPLETED),
        (S.EXPIRED, S.COMPLETED),
        (S.FAILED, S.COMPLETED),
        (S.COMPLETED, S.PARTIALLY_REFUNDED),
        (S.PARTIALLY_REFUNDED, S.REFUNDED),
        (S.COMPLETED, S.DISPUTED),
        (S.DISPUTED, S.COMPLETED),
        (S.DISPUTED, S.REFUNDED),
        (S.COMPLETED, S.COMPLETED),
        # A refund that fails or is canceled at the provider after it was counted goes back.
        (S.REFUNDED, S.COMPLETED),
        (S.REFUNDED, S.PARTIALLY_REFUNDED),
        (S.PARTIALLY_REFUNDED, S.COMPLETED),
    ],
)
def test_allowed_transitions(current, target):
    assert can_transition(current, target)


@pytest.mark.parametrize(
    "current, target",
    [
        (S.COMPLETED, S.PENDING),
        (S.COMPLETED, S.FAILED),
        (S.COMPLETED, S.EXPIRED),
        (S.REFUNDED, S.PENDING),
        (S.PENDING, S.REFUNDED),
        (S.PENDING, S.DISPUTED),
        (S.FAILED, S.EXPIRED),
        (S.REFUNDED, S.FAILED),
    ],
)
def test_forbidden_transitions(current, target):
    assert not can_transition(current, target)


def test_every_status_has_a_row_in_the_table():
    assert set(ALLOWED) == set(S.values)


@pytest.mark.django_db
def test_a_forbidden_transition_raises_and_changes_nothing(user, packages):
    order = Order.objects.create(
        user=user,
        package=packages["Basic"],
        amount=Decimal("9.99"),
        currency="USD",
        credits=50,
        provider="SANDBOX",
        status=S.COMPLETED,
    )

    with pytest.raises(InvalidTransition, match="cannot go from COMPLETED to PENDING"):
        order_transition(order=order, to=S.PENDING)

    order.refresh_from_db()
    assert order.status == S.COMPLETED


@pytest.mark.django_db
def test_the_demo_packages_are_seeded_once():
    out = io.StringIO()
    CreditPackage.objects.all().delete()

    seed(stdout=out)
    seed(stdout=out)

    rows = list(CreditPackage.objects.values_list("name", "credits", "price", "currency"))
    assert rows == [
        ("Starter", 10, Decimal("2.99"), "USD"),
        ("Basic", 50, Decimal("9.99"), "USD"),
        ("Pro", 150, Decimal("24.99"), "USD"),
        ("Power", 500, Decimal("69.99"), "USD"),
    ]
    assert out.getvalue().count("created") == 4 and out.getvalue().count("exists") == 4


@pytest.mark.django_db
def test_the_data_migration_creates_the_demo_packages():
    """The migration's function, run with the historical models on the real database."""
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    migration = importlib.import_module("payments.migrations.0004_demo_packages")
    state = MigrationLoader(connection).project_state(("payments", "0004_demo_packages"))
    CreditPackage.objects.all().delete()

    migration.create_packages(state.apps, None)
    migration.create_packages(state.apps, None)

    assert list(CreditPackage.objects.values_list("name", "credits", "price")) == [
        ("Starter", 10, Decimal("2.99")),
        ("Basic", 50, Decimal("9.99")),
        ("Pro", 150, Decimal("24.99")),
        ("Power", 500, Decimal("69.99")),
    ]


def test_stripe_without_a_webhook_secret_fails_the_checks(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = ""
    assert [e.id for e in check_payment_settings()] == ["payments.E001"]
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    settings.STRIPE_CHECKOUT_EXPIRES_MINUTES = 10
    assert [e.id for e in check_payment_settings()] == ["payments.E002"]


@pytest.mark.django_db
def test_the_orders_page_costs_the_same_queries_for_many_orders(
    client, user, packages, django_assert_max_num_queries
):
    for _ in range(25):
        Order.objects.create(
            user=user,
            package=packages["Basic"],
            amount=Decimal("9.99"),
            currency="USD",
            credits=50,
            provider="SANDBOX",
        )
    client.force_login(user)

    with django_assert_max_num_queries(8):
        page = client.get("/billing/orders/")

    assert page.status_code == 200
    assert page.content.decode().count('data-testid="order-') == 20
    assert "Page 1 of 2" in page.content.decode()
