import hashlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def claim_existing_trials(apps, schema_editor):
    """Every trial already granted claims its user's address (the first user keeps a shared one)."""
    from accounts.addresses import canonical_email

    LedgerEntry = apps.get_model("credits", "LedgerEntry")
    TrialClaim = apps.get_model("credits", "TrialClaim")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    granted = (
        LedgerEntry.objects.filter(kind="TRIAL_GRANT")
        .order_by("pk")
        .values_list("user_id", flat=True)
    )
    emails = dict(User.objects.filter(pk__in=granted).values_list("pk", "email"))
    claims, seen = [], set()
    for user_id in dict.fromkeys(granted):  # one trial entry per user, oldest first
        digest = hashlib.sha256(canonical_email(emails[user_id]).encode("utf-8")).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        claims.append(TrialClaim(address_digest=digest, user_id=user_id))
    TrialClaim.objects.bulk_create(claims, ignore_conflicts=True, batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("credits", "0006_ledger_created_at_brin")]

    operations = [
        migrations.CreateModel(
            name="TrialClaim",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("address_digest", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.OneToOneField(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="trial_claim",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.RunPython(claim_existing_trials, migrations.RunPython.noop),
    ]
