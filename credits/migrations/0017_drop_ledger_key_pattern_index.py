from django.db import migrations

# Django gives every unique text column on PostgreSQL a second index for LIKE 'prefix%'
# (varchar_pattern_ops). Nothing looks a ledger key up by pattern (the admin searches it
# exactly; a repeat is found through the unique index), and on the append-only ledger that index
# was written on every entry and took half as much space as the table itself.
INDEX = "credits_ledgerentry_idempotency_key_3e28e170_like"


class Migration(migrations.Migration):
    # Dropped without blocking the writes to the ledger.
    atomic = False

    dependencies = [("credits", "0016_lot_grant_check_index")]

    operations = [
        migrations.RunSQL(
            sql=f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}",
            reverse_sql=(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX}"
                " ON credits_ledgerentry (idempotency_key varchar_pattern_ops)"
            ),
        ),
    ]
