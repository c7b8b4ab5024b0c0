"""How the ledger changelist behaves on a big ledger: ours against Django's defaults.

Builds its own database (``credits_bench_admin`` unless --db says otherwise), bulk-loads
``--rows`` ledger entries (1,000,000 by default) with ``INSERT ... SELECT generate_series``
as consistent per-user chains (balance_before + amount == balance_after, each entry
starting where the user's previous one ended, balance rows matching), then times the
ledger changelist page through Django's test client:

- ours: the project's LedgerEntryAdmin (estimated count on the unfiltered list, capped
  count when filtered, no full-table count, no facets);
- default: a plain ModelAdmin with the same columns and ``list_select_related`` on a second
  admin site, i.e. Django's paginator and ``show_full_result_count = True``.

For each page it prints the median time, the number of queries, and whether any
``COUNT(*)`` over the whole ledger table ran. Run:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/credits_bench_admin \\
        .venv/bin/python bench/admin_changelist.py [--rows 1000000] [--users 5000] [--repeat 5] [--reuse]
"""

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="credits_bench_admin")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database if it already holds --rows entries"
    )
    return parser.parse_args()


def admin_url(db: str) -> str:
    base = os.environ.get("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{db}")
    return base.rsplit("/", 1)[0]


def prepare_database(args) -> bool:
    """Create the bench database when needed; True when it must be (re)loaded."""
    import psycopg

    with psycopg.connect(f"{admin_url(args.db)}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.db]).fetchone()
        if exists and args.reuse:
            try:
                with psycopg.connect(f"{admin_url(args.db)}/{args.db}") as bench:
                    n = bench.execute("SELECT count(*) FROM credits_ledgerentry").fetchone()[0]
                if n == args.rows:
                    return False
            except psycopg.Error:
                pass
        if exists:
            conn.execute(f'DROP DATABASE "{args.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    return True


LOAD_USERS = """
INSERT INTO accounts_user (password, last_login, is_superuser, email, name, status, membership_tier,
                           stripe_customer_id, is_staff, is_active, created_at, updated_at)
SELECT '!', NULL, false, 'bench-' || g || '@example.com', 'Bench user ' || g, 'ACTIVE', 'FREE', '', false, true,
       now() - interval '400 days', now()
  FROM generate_series(1, %(users)s) AS g
"""

# Entry k of a user: k = 1 is a purchase of 1000 credits (0 -> 1000); after it, spends of 1
# (1000 -> 999) and bonuses of 1 (999 -> 1000) alternate, so every chain is consistent.
# Entries are spread over the last 365 days, in time order.
LOAD_LEDGER = """
INSERT INTO credits_ledgerentry (user_id, amount, kind, balance_before, balance_after, description, metadata,
                                 idempotency_key, created_at)
SELECT u.id,
       CASE WHEN s.k = 1 THEN 1000 WHEN s.k %% 2 = 0 THEN -1 ELSE 1 END,
       CASE WHEN s.k = 1 THEN 'PURCHASE' WHEN s.k %% 2 = 0 THEN 'SPEND' ELSE 'BONUS' END,
       CASE WHEN s.k = 1 THEN 0 WHEN s.k %% 2 = 0 THEN 1000 ELSE 999 END,
       CASE WHEN s.k = 1 THEN 1000 WHEN s.k %% 2 = 0 THEN 999 ELSE 1000 END,
       CASE WHEN s.k = 1 THEN 'Purchase' WHEN s.k %% 2 = 0 THEN 'Generation' ELSE 'Bonus' END,
       '{}'::jsonb,
       'bench:' || u.id || ':' || s.k,
       now() - interval '365 days' + (s.k * u.n_users + u.rn) * (interval '365 days' / (%(rows)s + u.n_users))
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn, count(*) OVER () AS n_users
          FROM accounts_user WHERE email LIKE 'bench-%%') AS u
  JOIN LATERAL generate_series(1, %(per_user)s + CASE WHEN u.rn <= %(extra)s THEN 1 ELSE 0 END) AS s(k) ON true
 ORDER BY s.k, u.rn
"""

LOAD_BALANCES = """
INSERT INTO credits_creditbalance (user_id, balance, lifetime_earned, lifetime_spent, spend_holds, version, updated_at)
SELECT user_id,
       (array_agg(balance_after ORDER BY id DESC))[1],
       sum(amount) FILTER (WHERE kind <> 'SPEND'),
       -coalesce(sum(amount) FILTER (WHERE kind = 'SPEND'), 0),
       0, count(*), now()
  FROM credits_ledgerentry GROUP BY user_id
ON CONFLICT (user_id) DO UPDATE SET balance = EXCLUDED.balance, lifetime_earned = EXCLUDED.lifetime_earned,
       lifetime_spent = EXCLUDED.lifetime_spent, version = EXCLUDED.version
"""


def load(args) -> float:
    from django.core.management import call_command
    from django.db import connection

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    per_user, extra = divmod(args.rows, args.users)
    with connection.cursor() as cursor:
        cursor.execute(LOAD_USERS, {"users": args.users})
        cursor.execute(LOAD_LEDGER, {"rows": args.rows, "per_user": per_user, "extra": extra})
        cursor.execute(LOAD_BALANCES)
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def check_chains() -> tuple[int, int]:
    """(broken links, balances that disagree with their ledger): both must be 0."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT count(*) FROM (
              SELECT balance_before, lag(balance_after, 1, 0::bigint) OVER (PARTITION BY user_id ORDER BY id) AS prev
                FROM credits_ledgerentry) t
             WHERE balance_before <> prev""")
        broken = cursor.fetchone()[0]
        cursor.execute("""
            SELECT count(*) FROM credits_creditbalance b
              JOIN (SELECT user_id, sum(amount) AS total FROM credits_ledgerentry GROUP BY user_id) l USING (user_id)
             WHERE b.balance <> l.total""")
        drift = cursor.fetchone()[0]
    return broken, drift


def install_urls():
    """Ours at /admin/, Django's defaults for the same model at /plain-admin/."""
    from django.conf import settings
    from django.contrib import admin
    from django.urls import clear_url_caches, include, path

    from credits.models import LedgerEntry

    plain_site = admin.AdminSite(name="plain")

    class PlainLedgerAdmin(admin.ModelAdmin):
        list_display = (
            "id",
            "created_at",
            "user",
            "kind",
            "amount",
            "balance_after",
            "source_type",
            "source_id",
            "created_by",
            "description",
        )
        list_select_related = ("user", "created_by")
        list_filter = ("kind", "created_at")
        search_fields = ("user__email", "idempotency_key")
        ordering = ("-id",)

    plain_site.register(LedgerEntry, PlainLedgerAdmin)
    module = types.ModuleType("bench_admin_urls")
    module.urlpatterns = [
        path("admin/", admin.site.urls),
        path("plain-admin/", plain_site.urls),
        path("staff/", include("backoffice.urls")),
    ]
    sys.modules["bench_admin_urls"] = module
    settings.ROOT_URLCONF = "bench_admin_urls"
    clear_url_caches()


def is_full_count(sql: str) -> bool:
    upper = sql.upper()
    return "COUNT(" in upper and 'FROM "CREDITS_LEDGERENTRY"' in upper and " WHERE " not in upper


def measure(client, url: str, repeat: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, captured = [], None
    client.get(url)  # warm: templates, caches, PostgreSQL's buffers
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
        captured = [q["sql"] for q in ctx.captured_queries]
    full = [q for q in captured if is_full_count(q)]
    counts = [q for q in captured if "COUNT(" in q.upper()]
    return {
        "median_ms": statistics.median(times) * 1000,
        "queries": len(captured),
        "full_counts": full,
        "counts": counts,
    }


def main() -> int:
    args = parse_args()
    os.environ["DATABASE_URL"] = f"{admin_url(args.db)}/{args.db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    must_load = prepare_database(args)

    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.DEBUG = False

    if must_load:
        print(
            f"loading {args.rows:,} ledger entries for {args.users:,} users into {args.db} ...",
            flush=True,
        )
        seconds = load(args)
        print(f"loaded in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)")
    else:
        print(f"reusing {args.db} with {args.rows:,} ledger entries")
    broken, drift = check_chains()
    print(f"chains: {broken} broken links, {drift} balances off their ledger")

    from django.contrib.auth import get_user_model
    from django.test import Client

    User = get_user_model()
    staff, _ = User.objects.get_or_create(
        email="bench-admin@example.com", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(staff)
    install_urls()

    pages = [
        ("first page, unfiltered", "credits/ledgerentry/"),
        ("page 50, unfiltered", "credits/ledgerentry/?p=50"),
        ("filtered: kind=SPEND", "credits/ledgerentry/?kind__exact=SPEND"),
        ("search: one user's email", "credits/ledgerentry/?q=bench-17%40example.com"),
    ]
    print()
    print(
        f"{'page':<28} {'admin':<8} {'median ms':>10} {'queries':>8}  full COUNT(*)  counting query"
    )
    for label, tail in pages:
        results = {}
        for name, prefix in (("default", "/plain-admin/"), ("ours", "/admin/")):
            url = prefix + tail
            if name == "ours":
                url = url.replace("kind__exact=", "kind=")
            r = measure(client, url, args.repeat)
            results[name] = r
            how = (
                (r["counts"][0][:60].replace("\n", " ") + "...")
                if r["counts"]
                else "none (planner estimate)"
            )
            print(
                f"{label:<28} {name:<8} {r['median_ms']:>10.1f} {r['queries']:>8}  "
                f"{'YES' if r['full_counts'] else 'no':<13}  {how}"
            )
        ratio = results["default"]["median_ms"] / results["ours"]["median_ms"]
        print(f"{'':<28} {'ratio':<8} {ratio:>9.1f}x  (default / ours)")

    # The streaming CSV export of the last 30 days of the ledger, read to the end.
    started = time.perf_counter()
    response = client.get("/staff/export/ledger.csv?period=30")
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    print(
        f"\nledger CSV export, last 30 days: {lines - 1:,} rows, {size / 1e6:.1f} MB in {seconds:.2f} s "
        f"({(lines - 1) / seconds:,.0f} rows/s), streamed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
