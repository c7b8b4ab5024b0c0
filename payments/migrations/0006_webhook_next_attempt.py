"""Webhook events say in the database when they are next due (``next_attempt_at``).

Events already stored and not settled become due at once: RECEIVED ones from when they
arrived, FAILED ones now (one more attempt, after which the usual rules apply: processed,
retried with backoff, or FAILED for good with no next attempt).
"""

import django.utils.timezone
from django.db import migrations, models
from django.db.models import F, Q


def schedule_unsettled_events(apps, schema_editor):
    WebhookEvent = apps.get_model("payments", "WebhookEvent")
    WebhookEvent.objects.filter(status__in=["PROCESSED", "IGNORED"]).update(next_attempt_at=None)
    WebhookEvent.objects.filter(status="RECEIVED").update(next_attempt_at=F("received_at"))
    WebhookEvent.objects.filter(status="FAILED").update(next_attempt_at=django.utils.timezone.now())


class Migration(migrations.Migration):
    dependencies = [("payments", "0005_order_completed_at_index")]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True),
        ),
        migrations.RunPython(schedule_unsettled_events, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="webhookevent",
            index=models.Index(
                condition=Q(status__in=["RECEIVED", "FAILED"]),
                fields=["next_attempt_at"],
                name="payments_webhook_due",
            ),
        ),
    ]
