"""Factories for the back-office tests: staff members with exactly the permissions given,
and rows of the money tables."""

import uuid
from decimal import Decimal

import pytest

from tests.payments.conftest import fake_stripe  # noqa: F401  (the payments tests' fake Stripe)


@pytest.fixture
def make_staff(make_user):
    """A staff member (not a superuser) holding exactly ``perms`` ("app_label.codename")."""
    from django.contrib.auth.models import Permission

    from accounts.models import User

    def make(*perms: str, email: str | None = None, **extra):
        staff = make_user(email, is_staff=True, **extra)
        for perm in perms:
            app_label, codename = perm.split(".")
            staff.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return User.objects.get(pk=staff.pk)  # a fresh permission cache

    return make


@pytest.fixture
def superuser(make_user):
    return make_user("boss@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def make_package(db):
    from payments.models import CreditPackage

    def make(credits: int = 100, price: str = "10.00", **extra):
        return CreditPackage.objects.create(
            name=f"{credits} credits", credits=credits, price=Decimal(price), **extra
        )

    return make


@pytest.fixture
def make_order(make_package):
    """An order row as the payments app leaves it (for lists; refunds use the real flow)."""
    from payments.models import Order

    def make(
        user,
        *,
        credits: int = 100,
        amount: str = "10.00",
        status=Order.Status.COMPLETED,
        provider=Order.Provider.SANDBOX,
        **extra,
    ):
        package = make_package(credits=credits, price=amount)
        from django.utils import timezone

        extra.setdefault("completed_at", timezone.now() if status != Order.Status.PENDING else None)
        return Order.objects.create(
            user=user,
            package=package,
            status=status,
            amount=Decimal(amount),
            currency="USD",
            credits=credits,
            provider=provider,
            provider_order_id=f"test_{uuid.uuid4().hex[:16]}",
            **extra,
        )

    return make


@pytest.fixture
def make_job(db):
    from generations.models import GenerationJob

    def make(
        user,
        *,
        status=GenerationJob.Status.COMPLETED,
        estimated: int = 10,
        charged: int = 8,
        operation: str = "image",
        model: str = "svg-procedural",
        **extra,
    ):
        return GenerationJob.objects.create(
            user=user,
            operation=operation,
            model=model,
            prompt="a lighthouse at dusk",
            estimated_credits=estimated,
            credits_charged=charged,
            status=status,
            **extra,
        )

    return make


def messages_of(response) -> list[str]:
    from django.contrib.messages import get_messages

    return [str(m) for m in get_messages(response.wsgi_request)]


def new_key() -> str:
    return uuid.uuid4().hex


def post_action(client, admin_name: str, action: str, pks, *, follow: bool = False, **data):
    """Confirm an admin action from its changelist, as the confirmation page's form does."""
    from django.urls import reverse

    payload = {
        "action": action,
        "_selected_action": [str(pk) for pk in pks],
        "confirm": "yes",
        "submission_key": data.pop("submission_key", None) or new_key(),
        **data,
    }
    return client.post(reverse(f"admin:{admin_name}_changelist"), payload, follow=follow)


@pytest.fixture
def stripe_checkout(fake_stripe, make_user, make_package):
    """An order whose Stripe checkout is open (not paid yet), made through the payments services."""
    from payments.orders import order_create, order_start_checkout

    def make(*, credits: int = 100, price: str = "20.00", user=None):
        customer = user or make_user()
        order = order_create(
            user=customer, package=make_package(credits=credits, price=price), provider="STRIPE"
        )
        order_start_checkout(
            order=order,
            success_url="http://testserver/billing/done/",
            cancel_url="http://testserver/billing/",
        )
        order.refresh_from_db()
        return order

    return make


@pytest.fixture
def paid_stripe_order(fake_stripe, stripe_checkout):
    """An order paid on (fake) Stripe and fulfilled through the payments services."""
    from payments.fulfilment import order_check_payment
    from payments.models import Order

    def make(**kwargs):
        order = stripe_checkout(**kwargs)
        fake_stripe.pay(order.provider_order_id)
        order_check_payment(order=order, source="test")
        order.refresh_from_db()
        assert order.status == Order.Status.COMPLETED
        return order

    return make
