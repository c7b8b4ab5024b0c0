"""Ledger entries keep the staff's internal note apart from the customer-facing description.

(Also: the lifetime totals are labelled "received" and "spent", as every page calls them.)

Existing rows get NULL (no row is rewritten: the ledger is append-only), which marks them as
written before the two were kept apart. The append-only trigger now covers the new column.
"""

from django.db import migrations, models

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION credits_ledger_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credits_ledgerentry is append-only: DELETE of entry %% refused', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.user_id, NEW.amount, NEW.kind, NEW.balance_before, NEW.balance_after,
        NEW.description, NEW.metadata, NEW.idempotency_key, NEW.reverses_id, NEW.created_at{new_note})
       IS DISTINCT FROM
       (OLD.id, OLD.user_id, OLD.amount, OLD.kind, OLD.balance_before, OLD.balance_after,
        OLD.description, OLD.metadata, OLD.idempotency_key, OLD.reverses_id, OLD.created_at{old_note})
       OR (NEW.order_id IS DISTINCT FROM OLD.order_id AND NEW.order_id IS NOT NULL)
       OR (NEW.job_id IS DISTINCT FROM OLD.job_id AND NEW.job_id IS NOT NULL)
       OR (NEW.created_by_id IS DISTINCT FROM OLD.created_by_id AND NEW.created_by_id IS NOT NULL)
    THEN
        RAISE EXCEPTION 'credits_ledgerentry is append-only: UPDATE of entry %% refused', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""
PG_WITH_NOTE = _PG_FUNCTION.format(new_note=", NEW.internal_note", old_note=", OLD.internal_note")
PG_WITHOUT_NOTE = _PG_FUNCTION.format(new_note="", old_note="")


def _run(sql):
    def run(apps, schema_editor):
        schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("credits", "0007_trial_claims")]

    operations = [
        migrations.AlterField(
            model_name="creditbalance",
            name="lifetime_earned",
            field=models.BigIntegerField(default=0, verbose_name="lifetime received"),
        ),
        migrations.AlterField(
            model_name="creditbalance",
            name="lifetime_spent",
            field=models.BigIntegerField(default=0, verbose_name="lifetime spent"),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="internal_note",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.RunPython(
            _run(PG_WITH_NOTE),
            _run(PG_WITHOUT_NOTE),
        ),
    ]
