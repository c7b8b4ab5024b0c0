"""The demo membership plans (a free tier and three paid plans), so a fresh database sells them."""

from django.db import migrations


def create_plans(apps, schema_editor):
    from payments.demo import seed_plans

    seed_plans(
        plan_model=apps.get_model("payments", "SubscriptionPlan"),
        price_model=apps.get_model("payments", "PlanPrice"),
    )


class Migration(migrations.Migration):
    dependencies = [("payments", "0009_subscriptions_and_plans")]

    # Reversing leaves the plans: subscriptions may point at them.
    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
