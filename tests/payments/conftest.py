"""Fixtures for the buying tests: demo packages, a fake Stripe over HTTP, signed deliveries."""

import io
import json

import pytest
import stripe
from django.db import connections

from tests.payments.fake_stripe import FakeStripe

STRIPE_ENV = (
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "STRIPE_MAX_NETWORK_RETRIES",
)


@pytest.fixture(autouse=True)
def no_free_regeneration(settings):
    """Balances in these tests move only by purchases, refunds and spends."""
    settings.CREDITS_REGEN_CAP = 0


@pytest.fixture
def packages(db):
    from payments.demo import seed

    return {p.name: p for p in seed(stdout=io.StringIO())}


@pytest.fixture
def fake_stripe(settings, monkeypatch):
    """Stripe configured and pointed at a fake on 127.0.0.1 (the environment too, for workers)."""
    fake = FakeStripe().start()
    stripe.enable_telemetry = False
    values = {
        "STRIPE_SECRET_KEY": "sk_test_fake",
        "STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
        "STRIPE_API_BASE": fake.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    for name, value in values.items():
        setattr(settings, name, value)
        monkeypatch.setenv(name, value)
    yield fake
    fake.stop()


@pytest.fixture
def sandbox_only(settings, monkeypatch):
    """No real provider configured: the sandbox is what buyers get."""
    for name in STRIPE_ENV + ("PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET"):
        setattr(settings, name, "")
        monkeypatch.delenv(name, raising=False)


def post_stripe(
    client, payload: str, *, header: str | None = None, fake: FakeStripe, signed: bool = True
):
    """Deliver ``payload`` to /webhooks/stripe/ as Stripe would (signed unless told otherwise)."""
    headers = {}
    if signed:
        headers["HTTP_STRIPE_SIGNATURE"] = header or fake.sign(payload)
    elif header is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = header
    return client.post(
        "/webhooks/stripe/", data=payload, content_type="application/json", **headers
    )


@pytest.fixture
def deliver(client, fake_stripe, django_capture_on_commit_callbacks):
    """Deliver a Stripe event and run what the app queues on commit (the processing task)."""

    def send(payload: str, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return post_stripe(client, payload, fake=fake_stripe, **kwargs)

    return send


def start_stripe_checkout(client, user, package) -> "Order":  # noqa: F821
    """Sign ``user`` in and buy ``package`` up to the Stripe redirect; returns the order."""
    from payments.models import Order

    client.force_login(user)
    response = client.post("/billing/buy/", {"package": package.pk})
    assert response.status_code == 303, response.content
    return Order.objects.filter(user=user).latest("pk")


def stored_without_processing(fake_stripe, payload: str) -> "WebhookEvent":  # noqa: F821
    """Ingest as the view does, but no dispatcher or message ever runs it."""
    from payments.models import WebhookEvent
    from payments.webhooks import webhook_ingest

    result = webhook_ingest(
        provider_name="STRIPE",
        body=payload.encode(),
        headers={"Stripe-Signature": fake_stripe.sign(payload)},
    )
    return WebhookEvent.objects.get(pk=result.event_pk)


def paid_checkout_event(client, user, package, fake_stripe) -> tuple["Order", "WebhookEvent"]:  # noqa: F821
    """``user`` pays for ``package`` through Stripe; the webhook is stored, not processed."""
    order = start_stripe_checkout(client, user, package)
    client.logout()
    session = fake_stripe.pay(order.provider_order_id)
    return order, stored_without_processing(
        fake_stripe, fake_stripe.event("checkout.session.completed", session)
    )


def event_id(payload: str) -> str:
    return json.loads(payload)["id"]


def close_db_connections():
    """Threads open their own connections; close them so the test database can be dropped."""
    connections.close_all()


@pytest.fixture
def paid_order(client, user, packages, fake_stripe, deliver):
    """A Basic order (50 credits for $9.99) paid through Stripe and fulfilled by its webhook."""

    def make(package_name: str = "Basic", buyer=None):
        from payments.models import Order

        order = start_stripe_checkout(client, buyer or user, packages[package_name])
        client.logout()
        session = fake_stripe.pay(order.provider_order_id)
        deliver(fake_stripe.event("checkout.session.completed", session))
        order = Order.objects.get(pk=order.pk)
        assert order.status == "COMPLETED"
        return order

    return make


@pytest.fixture
def plans(db):
    """The demo membership plans (a transactional test's flush removes the migration's copies)."""
    from payments.demo import seed_plans
    from payments.models import PlanPrice, SubscriptionPlan

    return {p.code: p for p in seed_plans(plan_model=SubscriptionPlan, price_model=PlanPrice)}
