"""Every current balance becomes lots, so that ``balance == sum(remaining)`` holds from here on.

Set-based: one INSERT ... SELECT over the grant entries (a window per user), whatever the size
of the ledger. It writes lots only: no ledger entry, no lot movement, so the ledger's
append-only trigger stays on and no balance changes.

The rule (a summary of each user's history, not a replay):

- Each grant entry (every credit kind but REFUND, and positive ADJUSTMENT) is a candidate
  lot of its amount. Its category and source:
    * PURCHASE whose source is an order (``source_type = 'payments.order'``) found in the
      payments orders table: paid, source ``purchase``, cost basis the order's
      ``amount / credits`` in its currency;
    * TRIAL_GRANT: promotional ``trial``; REGENERATION: promotional ``regeneration``;
      BONUS: promotional ``bonus``; VOUCHER: promotional ``voucher``; positive ADJUSTMENT:
      promotional ``adjustment`` (staff gave them);
    * anything that cannot be told apart (a SUBSCRIPTION_GRANT, a PURCHASE without an order,
      or every PURCHASE when the orders table does not exist): paid ``opening`` with an
      unknown cost basis (0, no currency). Paid, so it burns after the promotional lots.
- What the user no longer holds (the grants' total minus the balance row's balance) is taken
  from the candidates in burn order: promotional before paid, then oldest first (every
  candidate has the same priority and none expires). A candidate keeps what is left of it;
  those left with credits become lots whose ``original`` and ``remaining`` are that amount
  (the grant's own amount stays in the ledger), with ``effective_at`` the grant's time.
  Users with a zero balance get no lot.
- Migrated lots never expire: their credits were granted without an expiry.
- ``credits_lotcutover`` records the last ledger entry written before the lots: entries up
  to it have no lot movements, and ``check_ledger`` holds them to the chain checks only.

The balance rows and the ledger are locked against writes (SHARE) while it runs. Run it with
the application's writers stopped, or deploy the code that writes lots at the same time:
an old process moving credits after it would leave its balance out of step with its lots
(``check_ledger`` reports it).

A balance larger than the user's grants (drift the ledger check reports) cannot be
attributed: the migration then stops and names the users.

Reversing it removes every lot and movement (back to the state 0012 made).
"""

from django.conf import settings
from django.db import migrations

CUTOVER_TABLE = """
CREATE TABLE credits_lotcutover (
    id smallint PRIMARY KEY CHECK (id = 1),
    last_entry_id bigint NOT NULL,
    migrated_at timestamptz NOT NULL DEFAULT now()
)
"""

GRANT = "(e.kind IN ({kinds}) OR (e.kind = 'ADJUSTMENT' AND e.amount > 0))"
GRANT_KINDS = "'BONUS', 'PURCHASE', 'REGENERATION', 'SUBSCRIPTION_GRANT', 'TRIAL_GRANT', 'VOUCHER'"
IS_GRANT = GRANT.format(kinds=GRANT_KINDS)

UNATTRIBUTABLE = f"""
SELECT b.user_id
  FROM credits_creditbalance b
  LEFT JOIN (SELECT e.user_id, sum(e.amount) AS granted
               FROM credits_ledgerentry e
              WHERE {IS_GRANT}
              GROUP BY e.user_id) g ON g.user_id = b.user_id
 WHERE b.balance > coalesce(g.granted, 0)
 ORDER BY b.user_id
 LIMIT 20
"""

# The order's cost basis, when the orders table exists.
WITH_ORDERS = """
  LEFT JOIN payments_order o
         ON e.kind = 'PURCHASE' AND e.source_type = 'payments.order' AND o.id = e.source_id
        AND o.user_id = e.user_id AND o.credits > 0
"""
NO_ORDERS = (
    "  LEFT JOIN (SELECT NULL::bigint AS id, NULL::numeric AS amount, NULL::bigint AS credits,"
)
NO_ORDERS += " NULL::varchar AS currency) o ON false\n"

BACKFILL = """
WITH candidates AS (
    SELECT e.id, e.user_id, e.amount, e.created_at, e.source_type, e.source_id,
           CASE WHEN e.kind = 'PURCHASE' AND o.id IS NOT NULL THEN 'purchase'
                WHEN e.kind = 'TRIAL_GRANT' THEN 'trial'
                WHEN e.kind = 'REGENERATION' THEN 'regeneration'
                WHEN e.kind = 'BONUS' THEN 'bonus'
                WHEN e.kind = 'VOUCHER' THEN 'voucher'
                WHEN e.kind = 'ADJUSTMENT' THEN 'adjustment'
                ELSE 'opening' END AS source,
           CASE WHEN e.kind IN ('PURCHASE', 'SUBSCRIPTION_GRANT') THEN 'paid'
                ELSE 'promotional' END AS category,
           CASE WHEN e.kind = 'PURCHASE' AND o.id IS NOT NULL
                THEN round(o.amount / o.credits, 6) ELSE 0 END AS cost_basis,
           CASE WHEN e.kind = 'PURCHASE' AND o.id IS NOT NULL THEN upper(o.currency) ELSE '' END AS currency
      FROM credits_ledgerentry e
{orders}
     WHERE {is_grant}
), ranked AS (
    SELECT c.*, b.balance,
           sum(c.amount) OVER (PARTITION BY c.user_id) AS granted,
           sum(c.amount) OVER (PARTITION BY c.user_id
                               ORDER BY c.category DESC, c.created_at, c.id
                               ROWS UNBOUNDED PRECEDING) AS through
      FROM candidates c
      JOIN credits_creditbalance b ON b.user_id = c.user_id AND b.balance > 0
), kept AS (
    -- What the user no longer holds (granted - balance) is taken in burn order: a candidate
    -- keeps what is left of it once everything before it and it itself have been used.
    SELECT r.*, LEAST(r.amount, GREATEST(0, r.through - (r.granted - r.balance))) AS keep
      FROM ranked r
)
INSERT INTO credits_creditlot (user_id, category, source, original, remaining, priority, effective_at,
                               expires_at, cost_basis, currency, source_type, source_id, grant_entry_id,
                               created_at)
SELECT user_id, category, source, keep, keep, {priority}, created_at, NULL, cost_basis, currency,
       source_type, source_id, id, now()
  FROM kept
 WHERE keep > 0
 ORDER BY user_id, id
"""

SOURCES = ["purchase", "trial", "regeneration", "bonus", "voucher", "adjustment", "opening"]
DEFAULT_PRIORITY = 100


def _priority_sql() -> str:
    """``CREDITS_LOT_PRIORITY`` per source as a CASE (the default for a source not set)."""
    configured = getattr(settings, "CREDITS_LOT_PRIORITY", None) or {}
    cases = " ".join(
        f"WHEN '{source}' THEN {int(configured.get(source, DEFAULT_PRIORITY))}"
        for source in SOURCES
    )
    return f"(CASE source {cases} ELSE {DEFAULT_PRIORITY} END)::smallint"


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        # Nothing moves credits while the balances are turned into lots.
        cursor.execute("LOCK TABLE credits_creditbalance, credits_ledgerentry IN SHARE MODE")
        cursor.execute(UNATTRIBUTABLE)
        stuck = [row[0] for row in cursor.fetchall()]
        if stuck:
            raise RuntimeError(
                "These users' balances exceed everything they were granted, so their credits "
                f"cannot be turned into lots: {stuck}. Run manage.py check_ledger and correct "
                "the drift first."
            )
        cursor.execute(CUTOVER_TABLE)
        cursor.execute(
            "INSERT INTO credits_lotcutover (id, last_entry_id)"
            " SELECT 1, coalesce(max(id), 0) FROM credits_ledgerentry"
        )
        has_orders = "payments_order" in connection.introspection.table_names(cursor)
        cursor.execute(
            BACKFILL.format(
                orders=WITH_ORDERS if has_orders else NO_ORDERS,
                is_grant=IS_GRANT,
                priority=_priority_sql(),
            )
        )
        cursor.execute("ANALYZE credits_creditlot")


def unbackfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        # Lots refuse DELETE and movements are append-only: lift that for this transaction.
        cursor.execute("ALTER TABLE credits_lotmovement DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE credits_creditlot DISABLE TRIGGER USER")
        cursor.execute("DELETE FROM credits_lotmovement")
        cursor.execute("DELETE FROM credits_creditlot")
        cursor.execute("ALTER TABLE credits_creditlot ENABLE TRIGGER USER")
        cursor.execute("ALTER TABLE credits_lotmovement ENABLE TRIGGER USER")
        cursor.execute("DROP TABLE IF EXISTS credits_lotcutover")


class Migration(migrations.Migration):
    dependencies = [("credits", "0012_lots")]

    operations = [migrations.RunPython(backfill, unbackfill, elidable=False)]
