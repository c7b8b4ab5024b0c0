"""Put back the one-refund-per-spend unique index where an earlier 0004 dropped it.

The first version of 0004 removed the plain index on ``reverses_id``, and the schema editor
dropped the partial unique index on that column with it. 0004 now keeps it; databases that
ran the earlier 0004 get it back here. IF NOT EXISTS makes this a no-op everywhere else.
"""

from django.db import migrations

RESTORE = (
    'CREATE UNIQUE INDEX IF NOT EXISTS "credits_one_refund_per_spend" '
    'ON "credits_ledgerentry" ("reverses_id") WHERE "kind" = \'REFUND\''
)


class Migration(migrations.Migration):
    dependencies = [("credits", "0004_lean_indexes_permanent_idempotency")]

    operations = [migrations.RunSQL(RESTORE, reverse_sql=migrations.RunSQL.noop)]
