"""Demo data: the four credit packages and the four membership plans sold out of the box.

``seed`` is idempotent: a package that already exists (by name) is left as staff set it.
A data migration creates the same packages on a fresh database.
"""

from decimal import Decimal
from typing import TextIO

from .models import CreditPackage

DEMO_PACKAGES = [
    {
        "name": "Starter",
        "credits": 10,
        "price": Decimal("2.99"),
        "currency": "USD",
        "sort_order": 10,
    },
    {"name": "Basic", "credits": 50, "price": Decimal("9.99"), "currency": "USD", "sort_order": 20},
    {"name": "Pro", "credits": 150, "price": Decimal("24.99"), "currency": "USD", "sort_order": 30},
    {
        "name": "Power",
        "credits": 500,
        "price": Decimal("69.99"),
        "currency": "USD",
        "sort_order": 40,
    },
]


def seed(*, stdout: TextIO) -> list[CreditPackage]:
    """Create the demo packages that are missing; return all four."""
    packages = []
    for spec in DEMO_PACKAGES:
        package, created = CreditPackage.objects.get_or_create(
            name=spec["name"], defaults={k: v for k, v in spec.items() if k != "name"}
        )
        stdout.write(f"{'created' if created else 'exists '} package {package}\n")
        packages.append(package)
    from .models import PlanPrice, SubscriptionPlan

    for plan in seed_plans(plan_model=SubscriptionPlan, price_model=PlanPrice):
        stdout.write(f"plan {plan.code}\n")
    return packages


#: The demo membership plans: a free tier and three paid plans (prices per month in USD).
DEMO_PLANS = [
    {"code": "free", "name": "Free", "credits_per_period": 0, "rollover_cap": 0,
     "api_access": False, "membership_tier": "FREE", "sort_order": 0, "prices": {}},
    {"code": "basic", "name": "Basic", "credits_per_period": 100, "rollover_cap": 50,
     "api_access": False, "membership_tier": "BASIC", "sort_order": 10,
     "prices": {"USD": Decimal("9.00")}},
    {"code": "pro", "name": "Pro", "credits_per_period": 300, "rollover_cap": 150,
     "api_access": True, "membership_tier": "PRO", "sort_order": 20,
     "prices": {"USD": Decimal("24.00")}},
    {"code": "studio", "name": "Studio", "credits_per_period": 1000, "rollover_cap": 500,
     "api_access": True, "membership_tier": "PRO", "sort_order": 30,
     "prices": {"USD": Decimal("69.00")}},
]  # fmt: skip


def seed_plans(*, plan_model, price_model) -> list:
    """Create the demo plans that are missing (by code); staff edits are kept. The models
    are passed in so a data migration can use its historical ones."""
    plans = []
    for spec in DEMO_PLANS:
        fields = {k: v for k, v in spec.items() if k not in ("code", "prices")}
        plan, created = plan_model.objects.get_or_create(code=spec["code"], defaults=fields)
        if created:
            for currency, amount in spec["prices"].items():
                price_model.objects.create(plan=plan, currency=currency, amount=amount)
        plans.append(plan)
    return plans
