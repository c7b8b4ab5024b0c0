"""Ledger rows are append-only below the ORM: the database itself refuses UPDATE and DELETE.

The one UPDATE allowed is the ``ON DELETE SET NULL`` of a link (order, job, staff member)
when the linked row is deleted; every recorded fact stays as it was written.
"""

from django.db import migrations

PG_CREATE = """
CREATE OR REPLACE FUNCTION credits_ledger_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credits_ledgerentry is append-only: DELETE of entry %% refused', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.user_id, NEW.amount, NEW.kind, NEW.balance_before, NEW.balance_after,
        NEW.description, NEW.metadata, NEW.idempotency_key, NEW.reverses_id, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.user_id, OLD.amount, OLD.kind, OLD.balance_before, OLD.balance_after,
        OLD.description, OLD.metadata, OLD.idempotency_key, OLD.reverses_id, OLD.created_at)
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

CREATE TRIGGER credits_ledger_append_only
BEFORE UPDATE OR DELETE ON credits_ledgerentry
FOR EACH ROW EXECUTE FUNCTION credits_ledger_append_only();
"""

PG_DROP = """
DROP TRIGGER IF EXISTS credits_ledger_append_only ON credits_ledgerentry;
DROP FUNCTION IF EXISTS credits_ledger_append_only();
"""


def _run(sql):
    def run(apps, schema_editor):
        schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("credits", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run(PG_CREATE),
            _run(PG_DROP),
        )
    ]
