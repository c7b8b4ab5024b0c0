"""Credit lots: every grant becomes a lot, and lot movements record what each entry drew or gave back.

- ``credits_creditlot``: one row per grant entry. Only ``remaining`` may change; a trigger
  refuses DELETE and any UPDATE of another column.
- ``credits_lotmovement``: append-only (a trigger refuses UPDATE and DELETE).
- ``LedgerKind.VOID`` (amount < 0) joins the sign-by-kind CHECK. As in 0009, the new CHECK is
  added NOT VALID (a brief lock) and validated in a separate step that lets writes go on while
  it reads the existing entries; this migration is therefore not atomic.

Existing balances become lots in 0013.
"""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models

SIGN_CHECK = "credits_entry_sign_by_kind"


def _sign_check(debit_kinds: str) -> str:
    return (
        f"CHECK ((kind IN ('BONUS', 'PURCHASE', 'REFUND', 'REGENERATION', 'SUBSCRIPTION_GRANT', 'TRIAL_GRANT',"
        f" 'VOUCHER') AND amount > 0) OR (kind IN ({debit_kinds}) AND amount < 0)"
        f" OR (kind = 'CLAWBACK' AND amount <= 0) OR (kind = 'ADJUSTMENT' AND NOT (amount = 0)))"
    )


NEW_SIGN_CHECK = _sign_check("'EXPIRY', 'FORFEIT', 'SPEND', 'VOID'")
OLD_SIGN_CHECK = _sign_check("'EXPIRY', 'FORFEIT', 'SPEND'")


def _swap_sign_check(check: str):
    def run(apps, schema_editor):
        schema_editor.execute(
            f"ALTER TABLE credits_ledgerentry DROP CONSTRAINT IF EXISTS {SIGN_CHECK}, "
            f"ADD CONSTRAINT {SIGN_CHECK} {check} NOT VALID"
        )
        schema_editor.execute(f"ALTER TABLE credits_ledgerentry VALIDATE CONSTRAINT {SIGN_CHECK}")

    return run


TRIGGERS = """
CREATE OR REPLACE FUNCTION credits_lot_only_remaining_changes() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credits_creditlot: DELETE of lot % refused', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.user_id, NEW.category, NEW.source, NEW.original, NEW.priority,
        NEW.effective_at, NEW.expires_at, NEW.cost_basis, NEW.currency, NEW.source_type,
        NEW.source_id, NEW.grant_entry_id, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.user_id, OLD.category, OLD.source, OLD.original, OLD.priority,
        OLD.effective_at, OLD.expires_at, OLD.cost_basis, OLD.currency, OLD.source_type,
        OLD.source_id, OLD.grant_entry_id, OLD.created_at)
    THEN
        RAISE EXCEPTION 'credits_creditlot: only remaining may change (lot %)', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER credits_lot_only_remaining_changes
BEFORE UPDATE OR DELETE ON credits_creditlot
FOR EACH ROW EXECUTE FUNCTION credits_lot_only_remaining_changes();

CREATE OR REPLACE FUNCTION credits_lotmovement_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'credits_lotmovement is append-only: % of movement % refused', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER credits_lotmovement_append_only
BEFORE UPDATE OR DELETE ON credits_lotmovement
FOR EACH ROW EXECUTE FUNCTION credits_lotmovement_append_only();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS credits_lotmovement_append_only ON credits_lotmovement;
DROP FUNCTION IF EXISTS credits_lotmovement_append_only();
DROP TRIGGER IF EXISTS credits_lot_only_remaining_changes ON credits_creditlot;
DROP FUNCTION IF EXISTS credits_lot_only_remaining_changes();
"""


class Migration(migrations.Migration):
    # The NOT VALID CHECK and its validation run as separate transactions.
    atomic = False

    dependencies = [
        ("credits", "0011_audit_actions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CreditLot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "category",
                    models.CharField(
                        choices=[("paid", "Paid"), ("promotional", "Promotional")], max_length=16
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("purchase", "Purchase"),
                            ("subscription", "Subscription period"),
                            ("rollover", "Rollover"),
                            ("trial", "Trial"),
                            ("bonus", "Bonus"),
                            ("voucher", "Voucher"),
                            ("regeneration", "Free-tier regeneration"),
                            ("adjustment", "Staff adjustment"),
                            ("opening", "Opening balance"),
                        ],
                        max_length=16,
                    ),
                ),
                ("original", models.BigIntegerField()),
                ("remaining", models.BigIntegerField()),
                ("priority", models.SmallIntegerField()),
                (
                    "effective_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("cost_basis", models.DecimalField(decimal_places=6, default=0, max_digits=14)),
                ("currency", models.CharField(blank=True, default="", max_length=3)),
                ("source_type", models.CharField(blank=True, max_length=40, null=True)),
                ("source_id", models.BigIntegerField(blank=True, null=True)),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="LotMovement",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("credits", models.BigIntegerField()),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={
                "ordering": ["id"],
            },
        ),
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
                    ("VOID", "Voided"),
                ],
                max_length=24,
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="ledgerentry", name=SIGN_CHECK),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.CheckConstraint(
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
                            models.Q(
                                ("kind__in", ["EXPIRY", "FORFEIT", "SPEND", "VOID"]),
                                ("amount__lt", 0),
                            ),
                            models.Q(("kind", "CLAWBACK"), ("amount__lte", 0)),
                            models.Q(
                                ("kind", "ADJUSTMENT"), models.Q(("amount", 0), _negated=True)
                            ),
                            _connector="OR",
                        ),
                        name="credits_entry_sign_by_kind",
                    ),
                ),
            ],
        ),
        migrations.RunPython(_swap_sign_check(NEW_SIGN_CHECK), _swap_sign_check(OLD_SIGN_CHECK)),
        migrations.AddField(
            model_name="creditlot",
            name="grant_entry",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lot",
                to="credits.ledgerentry",
            ),
        ),
        migrations.AddField(
            model_name="creditlot",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="credit_lots",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="lotmovement",
            name="entry",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lot_movements",
                to="credits.ledgerentry",
            ),
        ),
        migrations.AddField(
            model_name="lotmovement",
            name="lot",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="movements",
                to="credits.creditlot",
            ),
        ),
        migrations.AddField(
            model_name="lotmovement",
            name="returns",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="returned_by",
                to="credits.lotmovement",
            ),
        ),
        migrations.AddIndex(
            model_name="creditlot",
            index=models.Index(
                models.F("user"),
                models.F("priority"),
                models.F("expires_at"),
                models.OrderBy(models.F("category"), descending=True),
                models.F("effective_at"),
                models.F("id"),
                condition=models.Q(("remaining__gt", 0)),
                name="credits_lot_burn_order",
            ),
        ),
        migrations.AddIndex(
            model_name="creditlot",
            index=models.Index(fields=["user", "id"], name="credits_lot_user"),
        ),
        migrations.AddIndex(
            model_name="creditlot",
            index=models.Index(
                condition=models.Q(("source_id__isnull", False)),
                fields=["source_type", "source_id"],
                name="credits_lot_source",
            ),
        ),
        migrations.AddIndex(
            model_name="creditlot",
            index=models.Index(
                condition=models.Q(("expires_at__isnull", False), ("remaining__gt", 0)),
                fields=["expires_at"],
                name="credits_lot_expiring",
            ),
        ),
        migrations.AddConstraint(
            model_name="creditlot",
            constraint=models.CheckConstraint(
                condition=models.Q(("original__gt", 0)), name="credits_lot_original_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="creditlot",
            constraint=models.CheckConstraint(
                condition=models.Q(("remaining__gte", 0), ("remaining__lte", models.F("original"))),
                name="credits_lot_remaining_range",
            ),
        ),
        migrations.AddConstraint(
            model_name="creditlot",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("expires_at__isnull", True),
                    ("expires_at__gt", models.F("effective_at")),
                    _connector="OR",
                ),
                name="credits_lot_expires_after_effective",
            ),
        ),
        migrations.AddConstraint(
            model_name="creditlot",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("cost_basis__gte", 0),
                    models.Q(
                        models.Q(("category", "promotional"), _negated=True),
                        models.Q(("cost_basis", 0), ("currency", "")),
                        _connector="OR",
                    ),
                ),
                name="credits_lot_cost_basis",
            ),
        ),
        migrations.AddConstraint(
            model_name="creditlot",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("source_id__isnull", True), ("source_type__isnull", True)),
                    models.Q(("source_id__isnull", False), ("source_type__isnull", False)),
                    _connector="OR",
                ),
                name="credits_lot_source_pair",
            ),
        ),
        migrations.AddIndex(
            model_name="lotmovement",
            index=models.Index(
                condition=models.Q(("returns__isnull", False)),
                fields=["returns"],
                name="credits_lotmove_returns",
            ),
        ),
        migrations.AddConstraint(
            model_name="lotmovement",
            constraint=models.CheckConstraint(
                condition=models.Q(("credits", 0), _negated=True), name="credits_lotmove_nonzero"
            ),
        ),
        migrations.AddConstraint(
            model_name="lotmovement",
            constraint=models.CheckConstraint(
                condition=models.Q(("returns__isnull", True), ("credits__gt", 0), _connector="OR"),
                name="credits_lotmove_return_positive",
            ),
        ),
        migrations.RunSQL(TRIGGERS, DROP_TRIGGERS),
    ]
