"""A ledger kind for a balance forfeited when its account is deleted (FORFEIT, amount < 0).

The sign-by-kind CHECK gains the kind. The new CHECK is added NOT VALID (a brief lock; new
rows are checked from then on) and validated in a separate step that lets writes go on while
it reads the existing entries; nothing is rewritten.
"""

from django.db import migrations, models

NAME = "credits_entry_sign_by_kind"


def _check(debit_kinds: str) -> str:
    return (
        f"CHECK ((kind IN ('BONUS', 'PURCHASE', 'REFUND', 'REGENERATION', 'SUBSCRIPTION_GRANT', 'TRIAL_GRANT',"
        f" 'VOUCHER') AND amount > 0) OR (kind IN ({debit_kinds}) AND amount < 0)"
        f" OR (kind = 'CLAWBACK' AND amount <= 0) OR (kind = 'ADJUSTMENT' AND NOT (amount = 0)))"
    )


NEW_CHECK = _check("'EXPIRY', 'FORFEIT', 'SPEND'")
OLD_CHECK = _check("'EXPIRY', 'SPEND'")

SIGN_BY_KIND = models.CheckConstraint(
    condition=models.Q(
        models.Q(
            (
                "kind__in",
                [
                    "BONUS",
                    "PURCHASE",
                    "REFUND",
                    "REGENERATION",
                    "SUBSCRIPTION_GRANT",
                    "TRIAL_GRANT",
                    "VOUCHER",
                ],
            ),
            ("amount__gt", 0),
        ),
        models.Q(("kind__in", ["EXPIRY", "FORFEIT", "SPEND"]), ("amount__lt", 0)),
        models.Q(("kind", "CLAWBACK"), ("amount__lte", 0)),
        models.Q(("kind", "ADJUSTMENT"), models.Q(("amount", 0), _negated=True)),
        _connector="OR",
    ),
    name=NAME,
)


def _swap_pg(schema_editor, check: str) -> None:
    schema_editor.execute(
        f"ALTER TABLE credits_ledgerentry DROP CONSTRAINT IF EXISTS {NAME}, ADD CONSTRAINT {NAME} {check} NOT VALID"
    )
    schema_editor.execute(f"ALTER TABLE credits_ledgerentry VALIDATE CONSTRAINT {NAME}")


def forwards(apps, schema_editor):
    _swap_pg(schema_editor, NEW_CHECK)


def backwards(apps, schema_editor):
    # Refused while FORFEIT entries exist (the ledger is append-only).
    _swap_pg(schema_editor, OLD_CHECK)


class Migration(migrations.Migration):
    # The NOT VALID constraint and its validation run as separate transactions.
    atomic = False

    dependencies = [("credits", "0008_entry_internal_note")]

    operations = [
        migrations.AlterField(
            model_name="ledgerentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("TRIAL_GRANT", "Trial grant"),
                    ("PURCHASE", "Purchase"),
                    ("SUBSCRIPTION_GRANT", "Subscription grant"),
                    ("REGENERATION", "Free-tier regeneration"),
                    ("VOUCHER", "Voucher"),
                    ("BONUS", "Bonus"),
                    ("SPEND", "Spend"),
                    ("REFUND", "Refund"),
                    ("ADJUSTMENT", "Adjustment"),
                    ("CLAWBACK", "Clawback"),
                    ("EXPIRY", "Expiry"),
                    ("FORFEIT", "Forfeited balance"),
                ],
                max_length=24,
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="ledgerentry", name=NAME),
                migrations.AddConstraint(model_name="ledgerentry", constraint=SIGN_BY_KIND),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
