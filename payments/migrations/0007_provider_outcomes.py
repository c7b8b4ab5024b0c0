from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("payments", "0006_webhook_next_attempt")]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="updated_at",
            field=models.DateTimeField(auto_now=True),
        ),
        migrations.AlterField(
            model_name="order",
            name="dispute_status",
            field=models.CharField(
                blank=True,
                choices=[
                    ("open", "Open"),
                    ("won", "Won"),
                    ("lost", "Lost"),
                    ("prevented", "Prevented"),
                    ("withdrawn", "Withdrawn (closed without a chargeback)"),
                ],
                default="",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="refund",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("requires_action", "Requires action"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("canceled", "Canceled"),
                ],
                max_length=24,
            ),
        ),
    ]
