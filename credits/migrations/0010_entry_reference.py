"""A ledger entry names what caused it by ``(source_type, source_id)`` instead of foreign keys
to payments' orders and generations' jobs, so ``credits`` depends on no app above it.

``order_id`` becomes ``("payments.order", order_id)`` and ``job_id`` becomes
``("generations.job", job_id)``; no entry has both (checked first: the migration stops
rather than lose one). The pair is written by one table rewrite (``ADD COLUMN ... GENERATED
ALWAYS AS ... STORED``, then ``DROP EXPRESSION`` keeps the values as plain columns), not by
an UPDATE of every linked row:

- the append-only trigger fires on UPDATE only, so it needs no exception, and it is
  replaced in the same transaction by one that refuses any change of the pair;
- the rewrite copies the rows in their physical order, which is the order of created_at,
  so the BRIN index on created_at stays as tight as it was (an UPDATE would move every
  linked row to the end of the table, mixing old dates into the newest block ranges), and
  the table does not double in size;
- every index is rebuilt by the rewrite; the two partial indexes on order_id and job_id go
  with their columns, replaced by one on (source_id, source_type). The one-refund-per-spend
  unique index is on ``reverses_id`` and is untouched.

The rewrite holds an ACCESS EXCLUSIVE lock on the ledger for about the time of a table
copy: on a large ledger, run it in a quiet window. The reverse migration puts the columns
back the same way; references to orders or jobs deleted since are then left empty (as
ON DELETE SET NULL did).
"""

from django.db import migrations, models

ORDER = "payments.order"
JOB = "generations.job"

_FUNCTION = """
CREATE OR REPLACE FUNCTION credits_ledger_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credits_ledgerentry is append-only: DELETE of entry %% refused', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.user_id, NEW.amount, NEW.kind, NEW.balance_before, NEW.balance_after,
        NEW.description, NEW.metadata, NEW.idempotency_key, NEW.reverses_id, NEW.created_at,
        NEW.internal_note{new_links})
       IS DISTINCT FROM
       (OLD.id, OLD.user_id, OLD.amount, OLD.kind, OLD.balance_before, OLD.balance_after,
        OLD.description, OLD.metadata, OLD.idempotency_key, OLD.reverses_id, OLD.created_at,
        OLD.internal_note{old_links}){set_null_links}
       OR (NEW.created_by_id IS DISTINCT FROM OLD.created_by_id AND NEW.created_by_id IS NOT NULL)
    THEN
        RAISE EXCEPTION 'credits_ledgerentry is append-only: UPDATE of entry %% refused', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""
# The pair never changes (it is a fact about the entry, not a link the database maintains).
FUNCTION_WITH_SOURCE = _FUNCTION.format(
    new_links=", NEW.source_type, NEW.source_id",
    old_links=", OLD.source_type, OLD.source_id",
    set_null_links="",
)
# As 0008 left it: order and job may only be set to NULL (their ON DELETE SET NULL).
FUNCTION_WITH_LINKS = _FUNCTION.format(
    new_links="",
    old_links="",
    set_null_links="""
       OR (NEW.order_id IS DISTINCT FROM OLD.order_id AND NEW.order_id IS NOT NULL)
       OR (NEW.job_id IS DISTINCT FROM OLD.job_id AND NEW.job_id IS NOT NULL)""",
)

BOTH_SET = (
    "SELECT count(*) FROM credits_ledgerentry WHERE order_id IS NOT NULL AND job_id IS NOT NULL"
)

FORWARDS = [
    f"""
    ALTER TABLE credits_ledgerentry
        ADD COLUMN source_type varchar(40) GENERATED ALWAYS AS (
            CASE WHEN order_id IS NOT NULL THEN '{ORDER}' WHEN job_id IS NOT NULL THEN '{JOB}' END) STORED,
        ADD COLUMN source_id bigint GENERATED ALWAYS AS (COALESCE(order_id, job_id)) STORED
    """,
    """
    ALTER TABLE credits_ledgerentry
        ALTER COLUMN source_type DROP EXPRESSION,
        ALTER COLUMN source_id DROP EXPRESSION,
        DROP COLUMN order_id,
        DROP COLUMN job_id,
        ADD CONSTRAINT credits_entry_source_pair
            CHECK ((source_type IS NULL AND source_id IS NULL) OR (source_type IS NOT NULL AND source_id IS NOT NULL))
    """,
    FUNCTION_WITH_SOURCE,
    "CREATE INDEX credits_ledger_source ON credits_ledgerentry (source_id, source_type) WHERE source_id IS NOT NULL",
]

BACKWARDS = [
    f"""
    ALTER TABLE credits_ledgerentry
        ADD COLUMN order_id bigint GENERATED ALWAYS AS (
            CASE WHEN source_type = '{ORDER}' THEN source_id END) STORED,
        ADD COLUMN job_id bigint GENERATED ALWAYS AS (
            CASE WHEN source_type = '{JOB}' THEN source_id END) STORED
    """,
    # The old function first: emptying references to deleted rows is an UPDATE of the pair.
    FUNCTION_WITH_LINKS,
    """
    ALTER TABLE credits_ledgerentry
        ALTER COLUMN order_id DROP EXPRESSION,
        ALTER COLUMN job_id DROP EXPRESSION,
        DROP CONSTRAINT credits_entry_source_pair,
        DROP COLUMN source_type,
        DROP COLUMN source_id
    """,
    """
    UPDATE credits_ledgerentry e SET order_id = NULL
     WHERE order_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM payments_order o WHERE o.id = e.order_id)
    """,
    """
    UPDATE credits_ledgerentry e SET job_id = NULL
     WHERE job_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM generations_generationjob j WHERE j.id = e.job_id)
    """,
    """
    ALTER TABLE credits_ledgerentry
        ADD CONSTRAINT credits_ledgerentry_order_id_fk_payments_order_id FOREIGN KEY (order_id)
            REFERENCES payments_order (id) DEFERRABLE INITIALLY DEFERRED,
        ADD CONSTRAINT credits_ledgerentry_job_id_fk_generations_generationjob_id FOREIGN KEY (job_id)
            REFERENCES generations_generationjob (id) DEFERRABLE INITIALLY DEFERRED
    """,
    'CREATE INDEX "credits_ledger_order" ON "credits_ledgerentry" ("order_id") WHERE "order_id" IS NOT NULL',
    'CREATE INDEX "credits_ledger_job" ON "credits_ledgerentry" ("job_id") WHERE "job_id" IS NOT NULL',
]


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(BOTH_SET)
        (both,) = cursor.fetchone()
    if both:
        raise RuntimeError(
            f"{both} ledger entries name both an order and a job; an entry has one source. "
            "Nothing was changed."
        )
    for statement in FORWARDS:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    for statement in BACKWARDS:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("credits", "0009_ledger_forfeit")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="ledgerentry", name="credits_ledger_order"),
                migrations.RemoveIndex(model_name="ledgerentry", name="credits_ledger_job"),
                migrations.RemoveField(model_name="ledgerentry", name="order"),
                migrations.RemoveField(model_name="ledgerentry", name="job"),
                migrations.AddField(
                    model_name="ledgerentry",
                    name="source_type",
                    field=models.CharField(blank=True, max_length=40, null=True),
                ),
                migrations.AddField(
                    model_name="ledgerentry",
                    name="source_id",
                    field=models.BigIntegerField(blank=True, null=True),
                ),
                migrations.AddIndex(
                    model_name="ledgerentry",
                    index=models.Index(
                        condition=models.Q(("source_id__isnull", False)),
                        fields=["source_id", "source_type"],
                        name="credits_ledger_source",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("source_id__isnull", True), ("source_type__isnull", True)),
                            models.Q(("source_id__isnull", False), ("source_type__isnull", False)),
                            _connector="OR",
                        ),
                        name="credits_entry_source_pair",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
