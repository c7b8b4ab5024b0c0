"""Benchmark: spends per second and p99 latency of the credit ledger, against baselines.

    .venv/bin/python bench/ledger_spend.py               # everything (a few minutes)
    .venv/bin/python bench/ledger_spend.py --quick       # shorter runs, 10k rows only
    .venv/bin/python bench/ledger_spend.py --help

It creates (or reuses) its own database, ``credits_bench`` by default, migrates it, and
touches no other database. In the SAME run it measures one spend of 1 credit done by:

  service     credits.services.credits_spend, paid plan, users holding one lot
  free        credits_spend for the same users on the free tier (regeneration checked in the
              same statement; nothing is due, as for almost every spend)
  lots5       credits_spend, paid plan, users holding five live lots of different expiries
  capped      credits_spend, paid plan, users with daily and monthly spending caps and a
              low-balance alert set (never reached: every spend checks and counts them)
  raw         raw psycopg sending the service's own statements (the balance row's lock, then the
              spend, one implicit transaction in one round trip; prepared)
  naive       Django select_for_update() + save() + two inserts in transaction.atomic()
  three       raw psycopg, BEGIN; UPDATE ... RETURNING; INSERT ledger; INSERT audit; COMMIT
              (the row lock held across all three statements and the commit)

at 1, 4, 16 and 64 concurrent clients, for random users and for one hot user, and prints
tps, p99 and the ratios service/raw, service/three, service/naive, free/service and
lots5/service and capped/service. The two baselines (naive, three) keep no lots: they spend from users of their
own, which check_ledger therefore reports, and which the line after the table leaves out.
Then it bulk-loads ledgers of 10k and 1M rows (consistent chains with their lots and lot
movements, INSERT ... SELECT generate_series) and times the history page (selector +
template render, first and a deep page) and check_ledger, interleaved with the check as it
was before the lots (its chain-only statement, same snapshot and settings) over the same
rows, and prints full / chain-only (wall and server CPU). ``--reuse-ledger`` keeps a ledger
of the right size loaded by an earlier run.

Targets (2-core machine): service >= 0.8x raw at 16 clients on random users; service >=
1.0x three at 64 clients on one hot user; lots5 >= 0.7x service; free >= 0.9x service at 16
and 64 clients; capped >= 0.85x service; check_ledger at 1M rows within 2x of the chain-only check timed beside it.
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

IMPLEMENTATIONS = ["service", "free", "lots5", "capped", "raw", "naive", "three"]
#: Which users each implementation spends from (see ``make_users``).
GROUPS = {
    "free": "bench-free",
    "lots5": "bench5-",
    "capped": "benchc-",
    "naive": "benchb-",
    "three": "benchb-",
}
#: (numerator, denominator, target) of the ratios printed after each row.
RATIOS = [
    ("service", "raw", 0.8),
    ("service", "three", 1.0),
    ("service", "naive", None),
    ("free", "service", 0.9),
    ("lots5", "service", 0.7),
    ("capped", "service", 0.85),
]

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
        "--reuse-ledger",
        action="store_true",
        help="keep a ledger of the right size this benchmark loaded before instead of reloading it",
    )
    parser.add_argument(
        "--check-rounds",
        type=int,
        default=3,
        help="interleaved runs of check_ledger and the chain-only check at 1M (default 3)",
    )
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
        figures["sizes"] = bench_sizes(
            [int(s) for s in args.sizes.split(",") if s],
            reuse=args.reuse_ledger,
            rounds=args.check_rounds,
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


# --- spends -------------------------------------------------------------------------------------


def bench_spends(args, url: str) -> list[dict]:
    from django.db import connection

    groups = {
        "bench-": make_users(args.users),
        "bench5-": make_users(args.users, prefix="bench5-", lots=5),
        "benchb-": make_users(args.users, prefix="benchb-"),
        "benchc-": capped(make_users(args.users, prefix="benchc-")),
    }
    # The same users on the free tier, as a request would hold them (loaded before the
    # clock starts, like the paid ones)
    groups["bench-free"] = [free_copy(user) for user in groups["bench-"]]
    users = groups["bench-"]
    impls = [i for i in args.impls.split(",") if i]
    clients_list = [int(c) for c in args.clients.split(",") if c]
    ratios = [r for r in RATIOS if r[0] in impls and r[1] in impls]
    print(
        f"\nSpends of 1 credit: {args.rounds} interleaved run(s) of {args.seconds:g} s per implementation "
        f"(best counts) after a 0.5 s warm-up; {args.users} users per group; PostgreSQL "
        f"{connection.pg_version // 10000}; {os.cpu_count()} CPUs; load average {load()}"
    )
    print(lots_held(groups))
    print(round_trips(users[1], groups["benchb-"][1]))
    rows = []
    header = (
        f"{'workload':<8} {'clients':>7} | "
        + " | ".join(f"{i:>7} tps {'p99':>6}" for i in impls)
        + " | "
        + " ".join(f"{f'{a}/{b}':>13}" for a, b, _ in ratios)
    )
    print(header)
    print("-" * len(header))
    run_id = uuid.uuid4().hex[:8]
    for workload in args.workloads.split(","):
        for clients in clients_list:
            results: dict[str, Result] = {}
            for round_number in range(args.rounds):
                # Forward then backward, so a change in the machine's load hits every one alike.
                for impl in impls if round_number % 2 == 0 else impls[::-1]:
                    group = groups[GROUPS.get(impl, "bench-")]
                    tag = f"{run_id}:{workload}:{clients}:{impl}:{round_number}"
                    result = run_clients(
                        OPERATIONS[impl](url=url, pick=picker(workload, group), tag=tag),
                        clients=clients,
                        seconds=args.seconds,
                    )
                    if impl not in results or result.tps > results[impl].tps:
                        results[impl] = result

            def ratio(a, b, results=results):
                x, y = results.get(a), results.get(b)
                return f"{x.tps / y.tps:12.2f}x" if x and y and y.tps else f"{'-':>13}"

            line = (
                f"{workload:<8} {clients:>7} | "
                + " | ".join(f"{results[i].tps:11.0f} {results[i].p99_ms:6.1f}" for i in impls)
                + " | "
                + " ".join(ratio(a, b) for a, b, _ in ratios)
            )
            errors = {i: r.errors for i, r in results.items() if r.errors}
            print(line + (f"   errors: {errors}" if errors else ""), flush=True)
            rows.append(
                {
                    "workload": workload,
                    "clients": clients,
                    "load": os.getloadavg()[0],
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
    print("targets: " + ", ".join(f"{a}/{b} >= {t:g}x" for a, b, t in ratios if t))
    print(f"load average after the spends: {load()}")
    baseline = {u.pk for u in groups["benchb-"]}
    print(f"check_ledger after the spends: {check_ledger_now(leave_out=baseline)}")
    return rows


def capped(users: list) -> list:
    """Give ``users`` spending caps and a low-balance alert far from anything a run reaches."""
    from credits.models import CreditBalance

    CreditBalance.objects.filter(user__in=users).update(
        daily_cap=10**15, monthly_cap=10**15, low_balance_threshold=1, low_balance_armed=True
    )
    return users


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def picker(workload: str, users: list):
    if workload == "hot":
        hot = users[0]
        return lambda rng: hot
    return lambda rng: rng.choice(users)


def make_users(count: int, *, prefix: str = "bench-", lots: int = 1) -> list:
    """Bench users on a paid plan, each holding ``lots`` live lots with plenty of credits.

    The first lot never expires; the others expire one to four years from now, so a spend
    ranks them all and draws from the soonest to expire. A user whose balance has run low
    (after many runs) is topped up with one more lot.
    """
    from datetime import timedelta

    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from accounts.models import User
    from credits.models import CreditBalance, CreditLot
    from credits.services import credits_grant

    def listed():
        return list(User.objects.filter(email__startswith=prefix).order_by("pk")[:count])

    existing = listed()
    if len(existing) < count:
        User.objects.bulk_create(
            [
                User(email=f"{prefix}{i}@example.com", password="!", membership_tier=User.Tier.PRO)
                for i in range(len(existing), count)
            ],
            batch_size=1000,
        )
        existing = listed()
        CreditBalance.objects.bulk_create(
            [CreditBalance(user=u) for u in existing], ignore_conflicts=True, batch_size=1000
        )
    low = set(
        CreditBalance.objects.filter(user__in=existing, balance__lt=100_000_000).values_list(
            "user_id", flat=True
        )
    )
    held = dict(
        CreditLot.objects.filter(user__in=existing, remaining__gt=0)
        .values_list("user_id")
        .annotate(n=Count("id"))
    )
    top_up = uuid.uuid4().hex[:8]
    now = timezone.now()
    for user in existing:
        wanted = 1 if user.pk in low else 0
        wanted = max(wanted, lots - held.get(user.pk, 0))
        for n in range(wanted):
            has = held.get(user.pk, 0) + n
            credits_grant(
                user=user,
                amount=1_000_000_000 // lots,
                kind="BONUS",
                idempotency_key=f"bench-seed:{top_up}:{user.pk}:{n}",
                expires_at=None if has == 0 else now + timedelta(days=365 * has),
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE credits_creditbalance")
        cursor.execute("VACUUM ANALYZE credits_creditlot")
    return existing


def lots_held(groups: dict) -> str:
    """How many live lots the users of each group hold (min-max)."""
    from django.db.models import Count, Max, Min

    from credits.models import CreditLot

    parts = []
    for prefix, users in groups.items():
        counts = (
            CreditLot.objects.filter(user__in=users, remaining__gt=0)
            .values("user_id")
            .annotate(n=Count("id"))
            .aggregate(lo=Min("n"), hi=Max("n"))
        )
        parts.append(f"{prefix}* {counts['lo']}-{counts['hi']}")
    return "live lots per user: " + ", ".join(parts)


def round_trips(user, baseline_user) -> str:
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
        naive_spend(baseline_user.pk, f"bench-rt:{uuid.uuid4().hex}")
    counts["naive"] = len(queries)  # BEGIN, SELECT ... FOR UPDATE, UPDATE, two INSERTs, COMMIT
    counts["raw"] = 2  # the lock and the CTE, one implicit transaction
    counts["three-statement"] = 5
    connection.close()
    return "statements per spend (service and raw send theirs in one round trip): " + ", ".join(
        f"{k} {v}" for k, v in counts.items()
    )


def free_copy(user):
    from accounts.models import User

    copy = User(pk=user.pk, email=user.email, membership_tier=User.Tier.FREE)
    return copy


def op_service(*, url, pick, tag):
    def make(number):
        from credits.services import credits_spend

        rng = random.Random(number)

        def spend(i):
            credits_spend(user=pick(rng), amount=1, idempotency_key=f"b:{tag}:{number}:{i}")

        return spend

    return make


def op_raw(*, url, pick, tag):
    def make(number):
        import psycopg

        from credits.ledger_sql import (
            _LOCK_BALANCE,
            _LOCK_FOR_MOVEMENT,
            _PLANS_GENERIC,
            DRAW,
            Movement,
            _bound,
            statement_for,
        )

        # Bound as the service binds it: $n placeholders worked out once, so psycopg does not
        # scan the long statement again on every execution.
        conn = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.RawCursor)
        rng = random.Random(number)
        # The service's own statement and parameters, built once; each spend changes the user
        # and the key only.
        sql, params = statement_for(
            Movement(
                user_id=0,
                delta=-1,
                kind="SPEND",
                idempotency_key="",
                action="credits.spend",
                needs_no_holds=True,
            ),
            mode=DRAW,
        )

        lock_sql, _ = _bound(_LOCK_FOR_MOVEMENT, {"uid": 0})
        first_lock_sql, _ = _bound(_LOCK_BALANCE, {"uid": 0})
        prepared = set()

        def spend(i):
            params["uid"] = pick(rng).pk
            params["key"] = f"b:{tag}:{number}:{i}"
            raw_sql, values = _bound(sql, params)
            first = raw_sql not in prepared
            # as the service sends it: the balance row's lock, then the statement, one round
            # trip; on the connection's first spend, the statement run for no user before them
            with conn.pipeline():  # one implicit transaction, up to the Sync at its end
                if first:
                    conn.execute(_PLANS_GENERIC, prepare=True)
                    conn.execute(*_bound(sql, {**params, "uid": ~params["uid"]}), prepare=True)
                lock = first_lock_sql if first else lock_sql
                conn.execute(lock, [params["uid"]], prepare=True)
                cursor = conn.execute(raw_sql, values, prepare=True)
            rows = cursor.fetchall()
            prepared.add(raw_sql)
            if not any(row[6] == params["key"] for row in rows):
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
    "free": op_service,  # the same spend, by users on the free tier (see GROUPS)
    "lots5": op_service,  # the same spend, by users holding five lots (see GROUPS)
    "capped": op_service,  # the same spend, by users with caps and an alert set
    "raw": op_raw,
    "naive": op_naive,
    "three": op_three,
}


def check_ledger_now(*, leave_out: set[int] = frozenset()) -> str:
    """check_ledger's verdict, leaving out ``leave_out`` (the baselines' users, which keep no lots)."""
    from credits.ledger_check import ledger_check

    t0 = time.perf_counter()
    report = ledger_check()
    seconds = time.perf_counter() - t0
    drift = [d for d in report.drift if d.user_id not in leave_out]
    state = "clean" if not drift else f"DRIFT for {len(drift)} users, first {drift[0]}"
    left = f", {len(report.drift) - len(drift)} baseline users left out" if leave_out else ""
    return f"{state} ({report.entries} entries{left}, {seconds:.2f} s)"


# --- history page and check_ledger at 10k and 1M rows ---------------------------------------------


def bench_sizes(sizes: list[int], *, reuse: bool = False, rounds: int = 3) -> list[dict]:
    print("\nHistory page (selector + template render) and check_ledger by ledger size")
    print(
        "check_ledger beside the check as it was before the lots (the chain-only statement,\n"
        "credits.ledger_check._PG_CHECK, with the same snapshot and settings), over the same rows,\n"
        f"interleaved, {rounds} runs each at 1M ({max(rounds, 5)} below), medians; wall = client\n"
        "clock, cpu = the server backend's CPU time (when the server runs on this machine);\n"
        "target: full / chain-only <= 2x at 1M"
    )
    print(
        f"{'rows':>10} | {'load s':>7} | {'page 1 ms':>9} | {'deep page ms':>12} | {'check_ledger s':>14} | "
        f"{'chain-only s':>12} | {'wall ratio':>10} | {'cpu ratio':>9} | {'rows/s':>10} | load avg"
    )
    out = []
    for size in sizes:
        heavy, load = load_ledger(size, reuse=reuse)
        first, deep = time_history_page(heavy)
        from credits.ledger_check import ledger_check

        report = ledger_check()  # warms the cache
        assert report.clean and report.entries == size, (report.entries, report.drift[:3])
        assert chain_only_check() == [], "the chain-only check found drift"
        runs = rounds if size > 100_000 else max(rounds, 5)
        serial = time_checks(runs, workers=0)
        check, chain = serial["full"]["wall"], serial["chain"]["wall"]
        print(
            f"{size:>10} | {load:7.1f} | {first * 1000:9.2f} | {deep * 1000:12.2f} | {check:14.2f} | "
            f"{chain:12.2f} | {check / chain:9.2f}x | {cpu_ratio(serial)} | {size / check:10.0f} | "
            f"{load_average()}",
            flush=True,
        )
        # The same with the server's parallel workers (both checks alike); the server CPU
        # column then counts the leader process only, so it is left out.
        parallel = time_checks(runs, workers=None)
        p_check, p_chain = parallel["full"]["wall"], parallel["chain"]["wall"]
        print(
            f"{'parallel':>10} | {'':7} | {'':9} | {'':12} | {p_check:14.2f} | {p_chain:12.2f} | "
            f"{p_check / p_chain:9.2f}x | {'-':>9} | {size / p_check:10.0f} | {load_average()}",
            flush=True,
        )
        out.append(
            {
                "rows": size,
                "load_s": round(load, 2),
                "page_ms": round(first * 1000, 2),
                "deep_page_ms": round(deep * 1000, 2),
                "check_ledger_s": round(check, 3),
                "chain_only_s": round(chain, 3),
                "ratio": round(check / chain, 2),
                "serial": serial,
                "parallel": parallel,
                "load_average": os.getloadavg(),
            }
        )
    return out


def cpu_ratio(timed: dict) -> str:
    full, chain = timed["full"]["cpu"], timed["chain"]["cpu"]
    return f"{full / chain:8.2f}x" if full and chain else f"{'-':>9}"


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def chain_only_check() -> list:
    """The whole check as it was before the lots: its statement, snapshot and settings.

    The statement is ``_PG_CHECK`` (the chain, sums and totals against the balance rows; the
    lot-aware check still runs it before migration 0013); it runs as ``ledger_check`` runs
    its own, in a read-only REPEATABLE READ transaction with the same work_mem and without
    JIT, followed by the same counts, so the two differ only in what they check.
    """
    from django.db import connection, transaction

    from credits.ledger_check import _PG_CHECK, _PG_COUNTS

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_PG_CHECK)
        drift = cursor.fetchall()
        cursor.execute(_PG_COUNTS)
        cursor.fetchone()
    return drift


def time_checks(rounds: int, *, workers: int | None) -> dict:
    """Median wall and server CPU seconds of check_ledger and of the chain-only check, interleaved.

    ``workers``: the parallel workers either may use (the session's
    max_parallel_workers_per_gather); None leaves the server's setting.
    """
    import statistics

    from django.db import connection

    from credits.ledger_check import ledger_check

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        if workers is None:
            cursor.execute("RESET max_parallel_workers_per_gather")
        else:
            cursor.execute(
                "SELECT set_config('max_parallel_workers_per_gather', %s, false)", [str(workers)]
            )

    def backend_cpu() -> float | None:
        try:  # the server's process, when it runs on this machine
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    runs = {"full": ledger_check, "chain": chain_only_check}
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for n in range(rounds):
        # Forward then backward, so a change in the machine's load hits both alike.
        for name in list(runs) if n % 2 == 0 else list(runs)[::-1]:
            c0, t0 = backend_cpu(), time.perf_counter()
            runs[name]()
            wall[name].append(time.perf_counter() - t0)
            c1 = backend_cpu()
            cpu[name].append(c1 - c0 if c0 is not None and c1 is not None else None)
    with connection.cursor() as cursor:
        cursor.execute("RESET max_parallel_workers_per_gather")
    return {
        name: {
            "wall": statistics.median(wall[name]),
            "cpu": statistics.median(cpu[name]) if None not in cpu[name] else None,
            "walls": [round(x, 3) for x in wall[name]],
            "cpus": [round(x, 2) for x in cpu[name]] if None not in cpu[name] else None,
        }
        for name in runs
    }


def load_ledger(size: int, *, reuse: bool = False):
    """Replace the ledger with ``size`` rows over 1000 users of its own; one holds a tenth of them.

    With ``reuse``, a ledger this function loaded before with the same number of rows (and
    nothing else) is kept as it is, and the load time reported is 0.

    Each user's entries alternate +2 (BONUS) and -1 (SPEND), so the k-th entry leaves
    2*ceil(k/2) - floor(k/2); balances and lifetime totals are set to match. Each BONUS
    creates a lot of 2 (promotional, never expiring), and the j-th SPEND draws its credit
    from the user's ((j + 1) / 2)-th lot, the oldest with credits left, as burn order says:
    one lot movement per spend, and each lot's remaining set to match.
    """
    from django.db import connection, transaction

    from accounts.models import User

    # Users of their own: the spend benchmark's users keep the lots they were given.
    users = list(
        User.objects.filter(email__startswith="benchl-")
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
    if len(users) < 1000:
        users = [u.pk for u in make_users(1000, prefix="benchl-")]
    heavy, others = users[0], users[1:]
    if reuse and loaded_ledger_rows() == size:
        return User.objects.get(pk=heavy), 0.0
    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
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
            CREATE TEMPORARY TABLE bench_numbered ON COMMIT DROP AS
            SELECT id, user_id, kind, created_at,
                   row_number() OVER (PARTITION BY user_id, kind ORDER BY id) AS n
              FROM credits_ledgerentry
        """)
        cursor.execute("""
            INSERT INTO credits_creditlot
                   (user_id, category, source, original, remaining, priority, effective_at, expires_at,
                    cost_basis, currency, source_type, source_id, grant_entry_id, created_at)
            SELECT g.user_id, 'promotional', 'bonus', 2,
                   2 - greatest(0, least(2, coalesce(s.spends, 0) - (2 * g.n - 2))), 100,
                   g.created_at, NULL, 0, '', NULL, NULL, g.id, g.created_at
              FROM bench_numbered g
              LEFT JOIN (SELECT user_id, count(*) AS spends FROM bench_numbered
                          WHERE kind = 'SPEND' GROUP BY user_id) s ON s.user_id = g.user_id
             WHERE g.kind = 'BONUS'
        """)
        cursor.execute("""
            INSERT INTO credits_lotmovement (entry_id, lot_id, credits, returns_id, created_at)
            SELECT d.id, l.id, -1, NULL, d.created_at
              FROM bench_numbered d
              JOIN bench_numbered g ON g.user_id = d.user_id AND g.kind = 'BONUS' AND g.n = (d.n + 1) / 2
              JOIN credits_creditlot l ON l.grant_entry_id = g.id
             WHERE d.kind = 'SPEND'
        """)
        cursor.execute("""
            UPDATE credits_creditbalance b
               SET balance = s.total, lifetime_earned = s.earned, lifetime_spent = s.spent
              FROM (SELECT user_id, sum(amount) AS total,
                           sum(amount) FILTER (WHERE amount > 0) AS earned,
                           coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS spent
                      FROM credits_ledgerentry GROUP BY user_id) s
             WHERE b.user_id = s.user_id
        """)
    with connection.cursor() as cursor:
        for table in ("ledgerentry", "creditbalance", "creditlot", "lotmovement"):
            cursor.execute(f"VACUUM ANALYZE credits_{table}")
    return User.objects.get(pk=heavy), time.perf_counter() - t0


def loaded_ledger_rows() -> int | None:
    """How many rows the ledger holds when ``load_ledger`` wrote all of them; None otherwise."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE idempotency_key NOT LIKE 'bench-load%%')"
            " FROM credits_ledgerentry"
        )
        rows, others = cursor.fetchone()
    return rows if rows and not others else None


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
