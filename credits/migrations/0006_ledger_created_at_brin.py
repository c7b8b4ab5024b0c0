"""A BRIN index on the ledger's created_at, for reads by period over the whole ledger (the
staff dashboard and the ledger CSV export). The ledger is append-only, so rows arrive in
created_at order and a BRIN index stays tiny and costs next to nothing on insert, which a
B-tree on the hot spend path would not."""

from django.db import migrations

CREATE = "CREATE INDEX IF NOT EXISTS credits_ledger_created_brin ON credits_ledgerentry USING brin (created_at)"
DROP = "DROP INDEX IF EXISTS credits_ledger_created_brin"


def _run(sql):
    def run(apps, schema_editor):
        schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("credits", "0005_restore_one_refund_per_spend")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]
