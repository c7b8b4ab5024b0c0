from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("payments", "0007_provider_outcomes")]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="status",
            field=models.CharField(
                choices=[
                    ("PENDING", "Pending"),
                    ("COMPLETED", "Completed"),
                    ("FAILED", "Failed"),
                    ("EXPIRED", "Expired"),
                    ("CANCELLED", "Cancelled"),
                    ("REFUNDED", "Refunded"),
                    ("PARTIALLY_REFUNDED", "Partially refunded"),
                    ("DISPUTED", "Disputed"),
                ],
                default="PENDING",
                max_length=24,
            ),
        ),
    ]
