"""Demo data: the four credit packages the shop sells out of the box.

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
    return packages
