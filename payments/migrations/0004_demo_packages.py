"""The four demo credit packages, so a fresh database has something to sell."""

from decimal import Decimal

from django.db import migrations

PACKAGES = [
    ("Starter", 10, Decimal("2.99"), 10),
    ("Basic", 50, Decimal("9.99"), 20),
    ("Pro", 150, Decimal("24.99"), 30),
    ("Power", 500, Decimal("69.99"), 40),
]


def create_packages(apps, schema_editor):
    CreditPackage = apps.get_model("payments", "CreditPackage")
    for name, credits, price, sort_order in PACKAGES:
        CreditPackage.objects.get_or_create(
            name=name,
            defaults={
                "credits": credits,
                "price": price,
                "currency": "USD",
                "sort_order": sort_order,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("payments", "0003_orders_disputes_refunds_sandbox")]

    # Reversing leaves the packages: orders may point at them.
    operations = [migrations.RunPython(create_packages, migrations.RunPython.noop)]
