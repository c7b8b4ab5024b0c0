"""Fixtures for the API tests: members of a plan with API access, their keys, and an HTTP
client that talks to the live test server."""

import pytest
import requests

from api.keys import api_key_create


@pytest.fixture
def api_plans(db):
    from payments.demo import seed_plans
    from payments.models import PlanPrice, SubscriptionPlan

    return {p.code: p for p in seed_plans(plan_model=SubscriptionPlan, price_model=PlanPrice)}


@pytest.fixture
def subscribe(api_plans):
    """Give ``user`` a live subscription to plan ``code`` (as the provider's events would)."""
    from django.utils import timezone

    from payments.subscription_models import Subscription

    def make(user, code: str = "pro", status: str = "ACTIVE"):
        now = timezone.now()
        return Subscription.objects.create(
            user=user,
            plan=api_plans[code],
            provider="sandbox",
            currency="USD",
            amount="24.00",
            status=status,
            current_period_start=now,
            current_period_end=now + timezone.timedelta(days=30),
            started_at=now,
        )

    return make


@pytest.fixture
def member(make_user, subscribe):
    """A user of the Pro plan (API access) with credits; ``member.token`` is a read+generate key."""
    user = make_user(credits=100)
    subscribe(user)
    issued = api_key_create(user=user, name="script", scopes=["read", "generate"])
    user.token = issued.token
    user.api_key = issued.key
    return user


class Api:
    """A requests session against the live server's /api/v1/."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs):
        return self.session.get(self.base + path, timeout=20, **kwargs)

    def post(self, path: str, json=None, *, key: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if key:
            headers["Idempotency-Key"] = key
        return self.session.post(self.base + path, json=json, headers=headers, timeout=20, **kwargs)


@pytest.fixture
def api_client(live_server):
    def make(token: str | None = None) -> Api:
        return Api(live_server.url, token)

    return make


from tests.generations.conftest import parked_queue, price_rules  # noqa: E402, F401
