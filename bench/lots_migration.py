"""Migrating a big pre-lot ledger to lots, and check_ledger before and after.

Builds its own database (``credits_lots_bench`` unless --db says otherwise), migrates it,
steps the credits app back to 0012 (no lots), and bulk-loads ``--rows`` ledger entries
(1,000,000 by default) over ``--users`` users with ``INSERT ... SELECT generate_series``:
consistent per-user chains in time order, with purchases paid through orders (three
packages, three currencies; some purchases without an order), subscription grants, trials,
free-tier regenerations, bonuses, vouchers, spends, refunds of spends, staff adjustments both
ways, expiries and clawbacks. Each block of 20 entries of a user opens with a grant of 100
and takes at most 90 back, so no balance ever goes below zero.

Then it times, on the same data:

- check_ledger before the lots (the chain checks: the statement check_ledger ran before the
  lots existed),
- the data migration 0013 (every balance becomes lots),
- check_ledger after it (the chain checks and every lot invariant, one statement),

asserts both are clean, and prints the timings and what the lots hold. Run:

    .venv/bin/python bench/lots_migration.py [--rows 1000000] [--users 20000] [--server URL]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DEFAULT_SERVER, ensure_database, median_seconds, setup_django  # noqa: E402

LOAD_USERS = """
INSERT INTO accounts_user (password, last_login, is_superuser, email, name, status, membership_tier,
                           stripe_customer_id, is_staff, is_active, created_at, updated_at)
SELECT '!', NULL, false, 'lots-bench-' || g || '@example.com', 'Bench user ' || g, 'ACTIVE', 'FREE', '',
       false, true, now() - interval '400 days', now()
  FROM generate_series(1, %(users)s) AS g
"""

LOAD_PACKAGES = """
INSERT INTO payments_creditpackage (name, credits, price, currency, active, sort_order, created_at, updated_at)
VALUES ('Hundred (USD)', 100, 10.00, 'USD', true, 1, now(), now()),
       ('Hundred (EUR)', 100, 9.00, 'EUR', true, 2, now(), now()),
       ('Hundred (GBP)', 100, 8.00, 'GBP', true, 3, now(), now())
"""

# Entry k of the rn-th user (of n users) gets id (k - 1) * n + rn: ids follow time. Position
# j = (k - 1) %% 20 in its block: j = 0 grants 100 (a purchase for six users in ten, with an
# order unless rn is a multiple of 50; a subscription grant for one in ten; a trial then
# regenerations for the rest); j = 1 of the first block is the trial of the paying users;
# j in (4, 11) are spends refunded in full by j in (5, 12); other positions are drawn by a hash.
LOAD_LEDGER = """
INSERT INTO credits_ledgerentry (id, user_id, amount, kind, balance_before, balance_after, description, metadata,
                                 idempotency_key, source_type, source_id, reverses_id, created_at)
WITH users AS (
    SELECT id AS uid, row_number() OVER (ORDER BY id) AS rn, count(*) OVER () AS n
      FROM accounts_user WHERE email LIKE 'lots-bench-%%'
), steps AS (
    SELECT u.uid, u.rn, u.n, s.k, (s.k - 1) %% 20 AS j, (s.k - 1) / 20 AS block, u.rn %% 10 AS plan,
           ((hashint8(u.uid * 1000003 + s.k)::bigint %% 100) + 100) %% 100 AS h,
           ((hashint8(u.uid * 1000003 + s.k - 1)::bigint %% 100) + 100) %% 100 AS h_prev
      FROM users u
      JOIN LATERAL generate_series(1, %(per_user)s + CASE WHEN u.rn <= %(extra)s THEN 1 ELSE 0 END) AS s(k) ON true
), typed AS (
    SELECT st.*, (st.k - 1) * st.n + st.rn AS eid,
           CASE
             WHEN j = 0 AND plan < 6 THEN 'PURCHASE'
             WHEN j = 0 AND plan = 6 THEN 'SUBSCRIPTION_GRANT'
             WHEN j = 0 AND k = 1 THEN 'TRIAL_GRANT'
             WHEN j = 0 THEN 'REGENERATION'
             WHEN j = 1 AND block = 0 AND plan <= 6 THEN 'TRIAL_GRANT'
             WHEN j IN (4, 11) THEN 'SPEND'
             WHEN j IN (5, 12) THEN 'REFUND'
             WHEN h < 60 THEN 'SPEND'
             WHEN h < 72 THEN 'REGENERATION'
             WHEN h < 80 THEN 'BONUS'
             WHEN h < 85 THEN 'VOUCHER'
             WHEN h < 94 THEN 'ADJUSTMENT'
             WHEN h < 97 THEN 'EXPIRY'
             ELSE 'CLAWBACK'
           END AS kind
      FROM steps st
), amounts AS (
    SELECT t.*,
           CASE
             WHEN j = 0 THEN 100
             WHEN kind = 'TRIAL_GRANT' THEN 10
             WHEN kind = 'REFUND' THEN 1 + h_prev %% 5
             WHEN kind = 'SPEND' THEN -(1 + h %% 5)
             WHEN kind = 'REGENERATION' THEN 1 + h %% 3
             WHEN kind = 'BONUS' THEN 5
             WHEN kind = 'VOUCHER' THEN 20
             WHEN kind = 'ADJUSTMENT' AND h < 90 THEN 10
             WHEN kind = 'ADJUSTMENT' THEN -(1 + h %% 3)
             WHEN kind = 'EXPIRY' THEN -(1 + h %% 2)
             ELSE -(1 + h %% 3)
           END AS amount,
           CASE
             WHEN kind = 'PURCHASE' AND rn %% 50 <> 0 THEN 'payments.order'
             WHEN kind = 'CLAWBACK' AND plan < 6 AND rn %% 50 <> 0 THEN 'payments.order'
             WHEN kind IN ('SPEND', 'REFUND') THEN 'generations.job'
           END AS source_type,
           CASE
             WHEN kind IN ('PURCHASE', 'CLAWBACK') THEN (block * 20) * n + rn
             WHEN kind = 'SPEND' THEN (k - 1) * n + rn
             WHEN kind = 'REFUND' THEN (k - 2) * n + rn
           END AS source_ref
      FROM typed t
), chained AS (
    SELECT a.*, sum(amount) OVER (PARTITION BY uid ORDER BY k) AS after
      FROM amounts a
)
SELECT eid, uid, amount, kind, after - amount, after, kind || ' ' || k, '{}'::jsonb,
       'lots-bench:' || eid, source_type,
       CASE WHEN source_type IS NULL THEN NULL ELSE source_ref END,
       CASE WHEN kind = 'REFUND' THEN eid - n END,
       timestamptz '2025-01-01' + eid * interval '10 seconds'
  FROM chained
 ORDER BY eid
"""

LOAD_ORDERS = """
INSERT INTO payments_order (id, user_id, package_id, status, amount, currency, credits, provider, provider_order_id,
                            provider_payment_id, amount_refunded, credits_clawed_back, credits_unrecovered,
                            dispute_id, dispute_status, created_at, updated_at, completed_at)
SELECT e.source_id, e.user_id, p.id, 'COMPLETED', p.price, p.currency, p.credits, 'SANDBOX', NULL,
       '', 0, 0, 0, '', '', e.created_at, e.created_at, e.created_at
  FROM credits_ledgerentry e
  JOIN (SELECT id, price, currency, credits, row_number() OVER (ORDER BY id) - 1 AS slot
          FROM payments_creditpackage) p ON p.slot = e.id % 3
 WHERE e.kind = 'PURCHASE' AND e.source_type = 'payments.order'
"""

LOAD_BALANCES = """
INSERT INTO credits_creditbalance (user_id, balance, lifetime_earned, lifetime_spent, spend_holds, version, updated_at)
SELECT user_id, sum(amount),
       coalesce(sum(amount) FILTER (WHERE kind NOT IN ('SPEND', 'REFUND')), 0),
       coalesce(-sum(amount) FILTER (WHERE kind IN ('SPEND', 'REFUND')), 0),
       0, count(*), now()
  FROM credits_ledgerentry GROUP BY user_id
ON CONFLICT (user_id) DO UPDATE SET balance = EXCLUDED.balance, lifetime_earned = EXCLUDED.lifetime_earned,
       lifetime_spent = EXCLUDED.lifetime_spent, version = EXCLUDED.version
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="credits_lots_bench")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="check_ledger runs to take the median of"
    )
    return parser.parse_args()


def migrate_credits(target: str) -> float:
    from django.core.management import call_command

    t0 = time.perf_counter()
    call_command("migrate", "credits", target, verbosity=0, interactive=False)
    return time.perf_counter() - t0


def load(args) -> float:
    from django.db import connection

    per_user, extra = divmod(args.rows, args.users)
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(LOAD_USERS, {"users": args.users})
        cursor.execute(LOAD_PACKAGES)
        cursor.execute(LOAD_LEDGER, {"per_user": per_user, "extra": extra})
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('credits_ledgerentry', 'id'), "
            "(SELECT max(id) FROM credits_ledgerentry))"
        )
        cursor.execute(LOAD_ORDERS)
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('payments_order', 'id'), "
            "(SELECT coalesce(max(id), 1) FROM payments_order))"
        )
        cursor.execute(LOAD_BALANCES)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def timed_check(repeat: int):
    from credits.ledger_check import ledger_check

    ledger_check()  # warm the cache once; then time it
    seconds = median_seconds(ledger_check, repeat=repeat)
    report = ledger_check()
    assert report.clean, report.drift[:5]
    return seconds, report


def describe() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT kind, count(*), sum(amount) FROM credits_ledgerentry GROUP BY kind ORDER BY kind
        """)
        kinds = cursor.fetchall()
        cursor.execute("""
            SELECT category, source, count(*), sum(remaining), sum(remaining * cost_basis)
              FROM credits_creditlot GROUP BY category, source ORDER BY category, source
        """)
        lots = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM payments_order")
        orders = cursor.fetchone()[0]
        cursor.execute(
            "SELECT sum(balance), count(*) FILTER (WHERE balance > 0) FROM credits_creditbalance"
        )
        held, holders = cursor.fetchone()
    lines = ["ledger by kind: " + ", ".join(f"{k} {n} ({int(s):+d})" for k, n, s in kinds)]
    lines.append(f"orders: {orders}; balances: {held} credits held by {holders} users")
    lines += [
        f"  lots {category}/{source}: {n} lots, {remaining} credits, worth {value or 0:.2f}"
        for category, source, n, remaining, value in lots
    ]
    return lines


def main() -> None:
    args = parse_args()
    url = ensure_database(args.server, args.db, fresh=True)
    setup_django(url)
    migrate_credits("0012_lots")
    load_s = load(args)

    from django.db import connection

    before_s, before = timed_check(args.repeat)
    assert not before.lots_checked
    migrate_s = migrate_credits("0013_lots_backfill")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE credits_creditlot")
    after_s, after = timed_check(args.repeat)
    assert after.lots_checked

    print(f"loaded {before.entries} ledger entries, {before.balances} balances in {load_s:.1f} s")
    for line in describe():
        print(line)
    print(f"check_ledger before the lots (chain checks):      {before_s:6.2f} s  clean")
    print(f"migration 0013 (balances -> {after.lots} lots):  {migrate_s:6.2f} s")
    print(f"check_ledger after (chains + lot invariants):     {after_s:6.2f} s  clean")
    print(f"after / before: {after_s / before_s:.2f}x")


if __name__ == "__main__":
    main()
