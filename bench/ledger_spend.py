"""Benchmark: spends per second and p99 latency of the credit ledger, against baselines.

    .venv/bin/python bench/ledger_spend.py               # everything (a few minutes)
    .venv/bin/python bench/ledger_spend.py --quick       # shorter runs, 10k rows only
    .venv/bin/python bench/ledger_spend.py --help

It creates (or reuses) its own database, ``credits_bench`` by default, migrates it, and
touches no other database. In the SAME run it measures one spend of 1 credit done by:

  service     credits.services.credits_spend (paid plan: the plain one-statement path)
  free        credits_spend for a free-tier user (regeneration checked in the same statement)
  raw         raw psycopg running the equivalent single CTE statement (autocommit, prepared)
  naive       Django select_for_update() + save() + two inserts in transaction.atomic()
  three       raw psycopg, BEGIN; UPDATE ... RETURNING; INSERT ledger; INSERT audit; COMMIT
              (the row lock held across all three statements and the commit)

at 1, 4, 16 and 64 concurrent clients, for random users and for one hot user, and prints
tps, p99 and the ratios service/raw, service/naive and service/three. Then it bulk-loads
ledgers of 10k and 1M rows (consistent chains, INSERT ... SELECT generate_series) and times
the history page (selector + template render, first and a deep page) and check_ledger.

Targets (2-core machine): service >= 0.7x raw at 16 clients on random users; service >=
1.0x three at 64 clients on one hot user.
"""

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    Result,
    ensure_database,
    median_seconds,
    run_clients,
    setup_django,
)

IMPLEMENTATIONS = ["service", "free", "raw", "naive", "three"]

_THREE_UPDATE = """
UPDATE credits_creditbalance
   SET balance = balance - %(amount)s, lifetime_spent = lifetime_spent + %(amount)s,
       version = version + 1, updated_at = now()
 WHERE user_id = %(uid)s AND balance >= %(amount)s AND spend_holds = 0
RETURNING balance
"""
_THREE_ENTRY = """
INSERT INTO credits_ledgerentry
       (user_id, amount, kind, balance_before, balance_after, description, metadata, idempotency_key,
        source_type, source_id, reverses_id, created_by_id, created_at)
VALUES (%(uid)s, -%(amount)s, 'SPEND', %(after)s + %(amount)s, %(after)s, '', '{}'::jsonb, %(key)s,
        NULL, NULL, NULL, NULL, now())
RETURNING id
"""
_THREE_AUDIT = """
INSERT INTO credits_auditlog (user_id, actor_id, action, success, metadata, error_message, created_at)
VALUES (%(uid)s, NULL, 'credits.spend', true, jsonb_build_object('kind', 'SPEND', 'amount', -%(amount)s,
        'ledger_entry_id', %(entry)s::bigint), '', now())
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("BENCH_SERVER", DEFAULT_SERVER),
        help="PostgreSQL server URL without a database (default %(default)s)",
    )
    parser.add_argument(
        "--database", default="credits_bench", help="the benchmark's own database (*_bench)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="drop and recreate the benchmark database first"
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="measured seconds per run (default 2)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="runs per implementation, interleaved forward and backward; the best counts (default 2)",
    )
    parser.add_argument("--clients", default="1,4,16,64", help="client counts (default 1,4,16,64)")
    parser.add_argument(
        "--impls", default=",".join(IMPLEMENTATIONS), help="which implementations to run"
    )
    parser.add_argument(
        "--workloads", default="random,hot", help="random users, one hot user, or both"
    )
    parser.add_argument(
        "--users", type=int, default=2000, help="users in the random-users workload"
    )
    parser.add_argument(
        "--sizes", default="10000,1000000", help="ledger sizes for the page and check timings"
    )
    parser.add_argument(
        "--skip-spends", action="store_true", help="only the page and check_ledger timings"
    )
    parser.add_argument("--skip-sizes", action="store_true", help="only the spend benchmark")
    parser.add_argument(
        "--quick", action="store_true", help="1.5 s runs and only the 10k-row ledger"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.sizes = 1.5, 1, "10000"

    url = ensure_database(args.server, args.database, fresh=args.fresh)
    setup_django(url)
    figures = {"machine": {"cpus": os.cpu_count()}, "spends": [], "sizes": []}
    if not args.skip_spends:
        figures["spends"] = bench_spends(args, url)
    if not args.skip_sizes:
        figures["sizes"] = bench_sizes([int(s) for s in args.sizes.split(",") if s])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


# --- spends -------------------------------------------------------------------------------------


def bench_spends(args, url: str) -> list[dict]:
    from django.db import connection

    users = make_users(args.users)
    hot = users[0]
    impls = [i for i in args.impls.split(",") if i]
    clients_list = [int(c) for c in args.clients.split(",") if c]
    print(
        f"\nSpends of 1 credit: {args.rounds} interleaved run(s) of {args.seconds:g} s per implementation "
        f"(best counts) after a 0.5 s warm-up; {args.users} users; PostgreSQL {connection.pg_version // 10000}; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    print(round_trips(users[1]))
    rows = []
    header = (
        f"{'workload':<8} {'clients':>7} | "
        + " | ".join(f"{i:>7} tps {'p99':>6}" for i in impls)
        + " | svc/raw svc/naive svc/three"
    )
    print(header)
    print("-" * len(header))
    run_id = uuid.uuid4().hex[:8]
    for workload in args.workloads.split(","):
        for clients in clients_list:
            results: dict[str, Result] = {}
            pick = (lambda rng: hot) if workload == "hot" else (lambda rng: rng.choice(users))
            for round_number in range(args.rounds):
                # Forward then backward, so a change in the machine's load hits every one alike.
                for impl in impls if round_number % 2 == 0 else impls[::-1]:
                    tag = f"{run_id}:{workload}:{clients}:{impl}:{round_number}"
                    result = run_clients(
                        OPERATIONS[impl](url=url, pick=pick, tag=tag),
                        clients=clients,
                        seconds=args.seconds,
                    )
                    if impl not in results or result.tps > results[impl].tps:
                        results[impl] = result
            svc = results.get("service")

            def ratio(base, results=results, svc=svc):
                other = results.get(base)
                return f"{svc.tps / other.tps:6.2f}x" if svc and other and other.tps else "     -"

            line = (
                f"{workload:<8} {clients:>7} | "
                + " | ".join(f"{results[i].tps:11.0f} {results[i].p99_ms:6.1f}" for i in impls)
                + f" | {ratio('raw'):>7} {ratio('naive'):>9} {ratio('three'):>9}"
            )
            errors = {i: r.errors for i, r in results.items() if r.errors}
            print(line + (f"   errors: {errors}" if errors else ""), flush=True)
            rows.append(
                {
                    "workload": workload,
                    "clients": clients,
                    **{
                        i: {
                            "tps": round(r.tps, 1),
                            "p99_ms": round(r.p99_ms, 2),
                            "p50_ms": round(r.p50_ms, 2),
                            "errors": r.errors,
                        }
                        for i, r in results.items()
                    },
                }
            )
    print("(tps = spends per second; p99 in milliseconds)")
    check = check_ledger_now()
    print(f"check_ledger after the spends: {check}")
    return rows


def make_users(count: int) -> list:
    """Bench users on a paid plan, each topped up to a large balance through the service."""
    from django.db import connection

    from accounts.models import User
    from credits.models import CreditBalance
    from credits.services import credits_grant

    existing = list(User.objects.filter(email__startswith="bench-").order_by("pk")[:count])
    if len(existing) < count:
        start = len(existing)
        User.objects.bulk_create(
            [
                User(email=f"bench-{i}@example.com", password="!", membership_tier=User.Tier.PRO)
                for i in range(start, count)
            ],
            batch_size=1000,
        )
        existing = list(User.objects.filter(email__startswith="bench-").order_by("pk")[:count])
        CreditBalance.objects.bulk_create(
            [CreditBalance(user=u) for u in existing], ignore_conflicts=True, batch_size=1000
        )
    low = set(
        CreditBalance.objects.filter(user__in=existing, balance__lt=100_000_000).values_list(
            "user_id", flat=True
        )
    )
    top_up = uuid.uuid4().hex[:8]
    for user in existing:
        if user.pk in low:
            credits_grant(
                user=user,
                amount=1_000_000_000,
                kind="BONUS",
                idempotency_key=f"bench-seed:{top_up}:{user.pk}",
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE credits_creditbalance")
    return existing


def round_trips(user) -> str:
    """How many statements one spend sends, for each implementation (by counting them)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from credits.services import credits_spend

    counts = {}
    free = free_copy(user)
    free.pk = user.pk
    for name, who in (("service (paid plan)", user), ("free tier, not due", free)):
        credits_spend(user=who, amount=1, idempotency_key=f"bench-rt-warm:{uuid.uuid4().hex}")
        with CaptureQueriesContext(connection) as queries:
            credits_spend(user=who, amount=1, idempotency_key=f"bench-rt:{uuid.uuid4().hex}")
        counts[name] = len(queries)
    with CaptureQueriesContext(connection) as queries:
        naive_spend(user.pk, f"bench-rt:{uuid.uuid4().hex}")
    counts["naive"] = len(queries)  # BEGIN, SELECT ... FOR UPDATE, UPDATE, two INSERTs, COMMIT
    counts["raw CTE"] = 1
    counts["three-statement"] = 5
    connection.close()
    return "statements per spend: " + ", ".join(f"{k} {v}" for k, v in counts.items())


def free_copy(user):
    from accounts.models import User

    copy = User(pk=user.pk, email=user.email, membership_tier=User.Tier.FREE)
    return copy


def op_service(*, url, pick, tag, free=False):
    def make(number):
        from credits.services import credits_spend

        rng = random.Random(number)
        copies = {}

        def who(user):
            if not free:
                return user
            if user.pk not in copies:
                copies[user.pk] = free_copy(user)
            return copies[user.pk]

        def spend(i):
            credits_spend(user=who(pick(rng)), amount=1, idempotency_key=f"b:{tag}:{number}:{i}")

        return spend

    return make


def op_free(**kwargs):
    return op_service(free=True, **kwargs)


def op_raw(*, url, pick, tag):
    def make(number):
        import psycopg

        from credits.ledger_sql import _PG_MOVE, Movement

        conn = psycopg.connect(url, autocommit=True)
        rng = random.Random(number)

        def spend(i):
            m = Movement(
                user_id=pick(rng).pk,
                delta=-1,
                kind="SPEND",
                idempotency_key=f"b:{tag}:{number}:{i}",
                action="credits.spend",
                needs_no_holds=True,
            )
            if conn.execute(_PG_MOVE, m.params()).fetchone() is None:
                raise RuntimeError("refused")

        return spend

    return make


def naive_spend(user_id: int, key: str) -> None:
    from django.db import transaction
    from django.utils import timezone

    from credits.models import AuditLog, CreditBalance, LedgerEntry

    with transaction.atomic():
        row = CreditBalance.objects.select_for_update().get(user_id=user_id)
        if row.balance < 1 or row.spend_holds:
            raise RuntimeError("refused")
        row.balance -= 1
        row.lifetime_spent += 1
        row.version += 1
        row.save()
        [entry] = LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    user_id=user_id,
                    amount=-1,
                    kind="SPEND",
                    balance_before=row.balance + 1,
                    balance_after=row.balance,
                    idempotency_key=key,
                    created_at=timezone.now(),
                )
            ]
        )
        AuditLog.objects.create(
            user_id=user_id,
            action="credits.spend",
            metadata={"kind": "SPEND", "amount": -1, "ledger_entry_id": entry.pk},
        )


def op_naive(*, url, pick, tag):
    def make(number):
        rng = random.Random(number)
        return lambda i: naive_spend(pick(rng).pk, f"b:{tag}:{number}:{i}")

    return make


def op_three(*, url, pick, tag):
    def make(number):
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        rng = random.Random(number)

        def spend(i):
            params = {"uid": pick(rng).pk, "amount": 1, "key": f"b:{tag}:{number}:{i}"}
            with conn.transaction():
                row = conn.execute(_THREE_UPDATE, params).fetchone()
                if row is None:
                    raise RuntimeError("refused")
                params["after"] = row[0]
                params["entry"] = conn.execute(_THREE_ENTRY, params).fetchone()[0]
                conn.execute(_THREE_AUDIT, params)

        return spend

    return make


OPERATIONS = {
    "service": op_service,
    "free": op_free,
    "raw": op_raw,
    "naive": op_naive,
    "three": op_three,
}


def check_ledger_now() -> str:
    from credits.ledger_check import ledger_check

    t0 = time.perf_counter()
    report = ledger_check()
    state = "clean" if report.clean else f"DRIFT for {len(report.drift)} users"
    return f"{state} ({report.entries} entries, {time.perf_counter() - t0:.2f} s)"


# --- history page and check_ledger at 10k and 1M rows ---------------------------------------------


def bench_sizes(sizes: list[int]) -> list[dict]:
    print("\nHistory page (selector + template render) and check_ledger by ledger size")
    print(
        f"{'rows':>10} | {'load s':>7} | {'page 1 ms':>9} | {'deep page ms':>12} | {'check_ledger s':>14} | "
        f"{'rows/s':>10}"
    )
    out = []
    for size in sizes:
        heavy, load = load_ledger(size)
        first, deep = time_history_page(heavy)
        from credits.ledger_check import ledger_check

        ledger_check()  # warm the cache once; then time it
        check = median_seconds(ledger_check, repeat=3 if size <= 100_000 else 1)
        report = ledger_check()
        assert report.clean and report.entries == size, (report.entries, report.drift[:3])
        print(
            f"{size:>10} | {load:7.1f} | {first * 1000:9.2f} | {deep * 1000:12.2f} | {check:14.2f} | "
            f"{size / check:10.0f}",
            flush=True,
        )
        out.append(
            {
                "rows": size,
                "load_s": round(load, 2),
                "page_ms": round(first * 1000, 2),
                "deep_page_ms": round(deep * 1000, 2),
                "check_ledger_s": round(check, 3),
            }
        )
    return out


def load_ledger(size: int):
    """Replace the ledger with ``size`` rows over 1000 users; one user holds a tenth of them.

    Each user's entries alternate +2 (BONUS) and -1 (SPEND), so the k-th entry leaves
    2*ceil(k/2) - floor(k/2); balances and lifetime totals are set to match.
    """
    from django.db import connection

    from accounts.models import User

    users = list(
        User.objects.filter(email__startswith="bench-")
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
    if len(users) < 1000:
        users = [u.pk for u in make_users(1000)]
    heavy, others = users[0], users[1:]
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE credits_ledgerentry, credits_auditlog CASCADE")
        cursor.execute(
            "UPDATE credits_creditbalance SET balance = 0, lifetime_earned = 0, lifetime_spent = 0"
        )
        heavy_rows = size // 10
        other_rows = size - heavy_rows
        after = "(2 * ((k + 1) / 2) - k / 2)"
        before = "(2 * (k / 2) - (k - 1) / 2)"
        insert = f"""
            INSERT INTO credits_ledgerentry (user_id, amount, kind, balance_before, balance_after, description,
                                             metadata, idempotency_key, created_at)
            SELECT uid, CASE WHEN k %% 2 = 1 THEN 2 ELSE -1 END, CASE WHEN k %% 2 = 1 THEN 'BONUS' ELSE 'SPEND' END,
                   {before}, {after}, 'bench row ' || g, '{{}}'::jsonb, 'bench-load:' || g || ':' || uid,
                   timestamptz '2025-01-01' + g * interval '1 second'
              FROM (SELECT g, %s::bigint[] AS u FROM generate_series(1, %s) AS g) s,
                   LATERAL (SELECT u[1 + (g - 1) %% array_length(u, 1)] AS uid,
                                   (g - 1) / array_length(u, 1) + 1 AS k) AS pick
        """
        cursor.execute(insert, [[heavy], heavy_rows])
        cursor.execute(insert.replace("'bench-load:'", "'bench-load-o:'"), [others, other_rows])
        cursor.execute("""
            UPDATE credits_creditbalance b
               SET balance = s.total, lifetime_earned = s.earned, lifetime_spent = s.spent
              FROM (SELECT user_id, sum(amount) AS total,
                           sum(amount) FILTER (WHERE amount > 0) AS earned,
                           coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS spent
                      FROM credits_ledgerentry GROUP BY user_id) s
             WHERE b.user_id = s.user_id
        """)
        cursor.execute("VACUUM ANALYZE credits_ledgerentry")
        cursor.execute("VACUUM ANALYZE credits_creditbalance")
    return User.objects.get(pk=heavy), time.perf_counter() - t0


def time_history_page(user) -> tuple[float, float]:
    """Median time of the credits page (view + template) for a user: the first and a deep page."""
    from django.contrib.sessions.backends.base import SessionBase
    from django.test import RequestFactory

    from credits.selectors import ledger_history
    from credits.views import history

    factory = RequestFactory()
    middle = ledger_history(user=user, limit=max(1, user.ledger_entries.count() // 2)).next_cursor

    def page(query):
        request = factory.get("/credits/", query)
        request.user = user
        request.session = SessionBase()
        response = history(request)
        assert response.status_code == 200 and b"data-entry-id" in response.content

    first = median_seconds(lambda: page({}), repeat=30)
    deep = median_seconds(lambda: page({"before": middle.encode()}), repeat=30)
    return first, deep


if __name__ == "__main__":
    main()
