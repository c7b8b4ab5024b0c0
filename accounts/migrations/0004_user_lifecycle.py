from django.db import migrations, models


def mark_paying_users_active(apps, schema_editor):
    """Users who completed a payment before status was kept are ACTIVE, not TRIAL."""
    User = apps.get_model("accounts", "User")
    Order = apps.get_model("payments", "Order")
    paying = Order.objects.filter(completed_at__isnull=False).values("user_id")
    User.objects.filter(status="TRIAL", pk__in=paying).update(status="ACTIVE")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_site_name"),
        # Read only, for the backfill: the completed orders (accounts' code never imports payments).
        ("payments", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="deleted_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterModelOptions(
            name="user",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("export_user_data", "Can download a user's data"),
                    ("erase_user", "Can delete a user's account and erase their personal data"),
                ],
            },
        ),
        migrations.RunPython(mark_paying_users_active, migrations.RunPython.noop),
    ]
