"""Scale test on one machine: the production shape under a mixed load, with its books checked.

    .venv/bin/python bench/scale.py [--seconds 40] [--orders 600] [--web 2] [--senders 16]
        [--job-clients 3] [--page-clients 4] [--db credits_scale_bench] [--redis redis://127.0.0.1:6379/3]

Builds its own database, starts a real PgBouncer in transaction pooling in front of PostgreSQL
(tests/pgbouncer.py; every process below reaches the database through it), gunicorn with
``--web`` processes of threaded workers (gunicorn.conf.py, as production runs them), and one
Celery worker per queue as compose runs them (webhooks: a thread pool; generations: prefork;
maintenance: solo). Then, at the same time for ``--seconds``:

  webhook storm  ``--senders`` senders deliver the signed purchase webhooks of ``--orders`` paid
                 sandbox checkouts, a fifth of them twice;
  job flood      ``--job-clients`` clients submit picture jobs (job_submit through PgBouncer);
  page traffic   ``--page-clients`` clients load the credits history page of a signed-in user.

It waits for the workers to drain, checks that every order was granted exactly once, every job
settled and that check_ledger is clean, and prints each component's throughput per process
and its CPU use (from /proc), so the resource that saturates first is the one nearest 100 %
of a core (or the machine's cores all busy).
"""

import argparse
import http.client
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DEFAULT_SERVER, ensure_database  # noqa: E402
from bench.webhooks import free_port, stop  # noqa: E402
from tests.pgbouncer import PgBouncer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", DEFAULT_SERVER))
    parser.add_argument("--db", default="credits_scale_bench")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--web", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--job-clients", type=int, default=3)
    parser.add_argument("--page-clients", type=int, default=4)
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    )
    return parser.parse_args()


# --- processes and their CPU ----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children that exited... plus its live children."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK
    except (OSError, IndexError):
        return 0.0
    for child in children(pid):
        total += cpu_seconds(child)
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def postgres_backends(db: str) -> list[int]:
    import psycopg

    with psycopg.connect(f"{DEFAULT_SERVER}/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [db]
        ).fetchall()
    return [r[0] for r in rows]


def redis_pid() -> int | None:
    out = subprocess.run(["pgrep", "-o", "redis-server"], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out.strip() else None


def start(command: list[str], env: dict, log: str) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=open(ROOT / "var" / log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def worker(queue: str, prefix: str, pool: str, concurrency: int, env: dict) -> subprocess.Popen:
    return start(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", prefix + queue]
        + ["-P", pool, "-c", str(concurrency), "-l", "WARNING", "-n", f"{prefix}{queue}@%h"]
        + ["--without-gossip", "--without-mingle"],
        env,
        f"scale-{queue}.log",
    )


# --- the load -------------------------------------------------------------------------------


def run_for(seconds: float, threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)


def webhook_storm(port, deliveries, senders, stop_at, counts):
    lock = threading.Lock()
    pending = list(reversed(deliveries))

    def sender():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            with lock:
                if not pending:
                    return
                body, signature = pending.pop()
            conn.request(
                "POST",
                "/webhooks/sandbox/",
                body=body,
                headers={"Content-Type": "application/json", "Sandbox-Signature": signature},
            )
            response = conn.getresponse()
            response.read()
            with lock:
                counts[response.status] = counts.get(response.status, 0) + 1

    return [threading.Thread(target=sender) for _ in range(senders)]


def page_traffic(port, cookie, clients, stop_at, counts):
    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            conn.request("GET", "/credits/", headers={"Cookie": cookie, "Host": "127.0.0.1"})
            response = conn.getresponse()
            response.read()
            key = f"page {response.status}"
            counts[key] = counts.get(key, 0) + 1

    return [threading.Thread(target=client) for _ in range(clients)]


def job_flood(user_ids, clients, stop_at, counts):
    from django.db import connections

    from accounts.models import User
    from generations.services import JobRequest, job_submit

    request = JobRequest(operation="image", model="procedural-svg", prompt="stars", seed=4)

    def client(n):
        users = list(User.objects.filter(pk__in=user_ids[n::clients]))
        i = 0
        try:
            while time.monotonic() < stop_at:
                user = users[i % len(users)]
                i += 1
                try:
                    job_submit(user=user, request=request)
                    counts["jobs submitted"] = counts.get("jobs submitted", 0) + 1
                except Exception as exc:  # noqa: BLE001 - a refusal (too many running) is normal
                    key = f"job refused: {type(exc).__name__}"
                    counts[key] = counts.get(key, 0) + 1
                    time.sleep(0.05)
        finally:
            connections.close_all()

    return [threading.Thread(target=client, args=(n,)) for n in range(clients)]


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    direct = ensure_database(args.server, args.db, fresh=True)
    bouncer = PgBouncer(
        host="127.0.0.1", port=5432, user="postgres", workdir=Path(f"/tmp/scale-pgb-{os.getpid()}")
    ).start()
    prefix = f"scale-{uuid.uuid4().hex[:6]}-"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "PAYPAL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.webhooks_settings",
        DATABASE_URL=bouncer.url(args.db),
        DATABASE_PGBOUNCER="true",
        CREDITS_PREPARED_STATEMENTS="true" if bouncer.prepared_statements else "false",
        DATABASE_CONN_MAX_AGE="60",
        REDIS_URL=args.redis,
        CELERY_BROKER_URL=args.redis,
        CELERY_QUEUE_PREFIX=prefix,
        CELERY_DEFAULT_QUEUE=prefix + "default",
        PAYMENTS_SANDBOX_ENABLED="true",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    # Migrate straight to PostgreSQL (as compose's migrate service does); everything after
    # goes through PgBouncer, this script's own queries included.
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": direct},
        check=True,
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    import bench.webhooks as bw
    from accounts.models import User
    from credits.services import credits_grant

    print(f"preparing: {args.orders} paid checkouts, job and page users ...", flush=True)
    events = bw.prepare(argparse.Namespace(events=args.orders))
    deliveries = list(events)
    rng = random.Random(3)
    for _ in range(len(events) // 5):
        deliveries.insert(rng.randrange(len(deliveries)), events[rng.randrange(len(events))])
    job_users = User.objects.bulk_create(
        [User(email=f"flood{i}@bench.example", password="!") for i in range(60)]
    )
    for u in job_users:
        credits_grant(user=u, amount=100_000, kind="BONUS", idempotency_key=f"flood-{u.pk}")
    reader = User.objects.create_user("reader@bench.example", "x" * 12)
    for i in range(60):
        credits_grant(user=reader, amount=1, kind="BONUS", idempotency_key=f"reader-{i}")
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store["_auth_user_id"] = str(reader.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = reader.get_session_auth_hash()
    store.create()
    cookie = f"{settings.SESSION_COOKIE_NAME}={store.session_key}"
    connections.close_all()

    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    procs = {
        "web (gunicorn)": start(
            [str(gunicorn), "config.wsgi:application", "-b", f"127.0.0.1:{port}"]
            # threaded workers as production runs them (gunicorn.conf.py, read from ROOT)
            + ["-w", str(args.web), "--log-level", "warning"],
            env,
            "scale-web.log",
        ),
        "worker webhooks (threads x 8)": worker("webhooks", prefix, "threads", 8, env),
        "worker generations (prefork x 2)": worker("generations", prefix, "prefork", 2, env),
        "worker maintenance (solo)": worker("maintenance", prefix, "solo", 1, env),
    }
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        time.sleep(5)  # the workers connect
        pids = {name: p.pid for name, p in procs.items()}
        extra = {"pgbouncer": bouncer.process.pid, "redis": redis_pid()}
        before = {n: cpu_seconds(p) for n, p in {**pids, **extra}.items() if p}
        pg_before = sum(cpu_seconds(p) for p in postgres_backends(args.db))
        machine_before = machine_busy()

        counts: dict = {}
        stop_at = time.monotonic() + args.seconds
        began = time.monotonic()
        threads = (
            webhook_storm(port, deliveries, args.senders, stop_at, counts)
            + page_traffic(port, cookie, args.page_clients, stop_at, counts)
            + job_flood([u.pk for u in job_users], args.job_clients, stop_at, counts)
        )
        run_for(args.seconds, threads)
        wall = time.monotonic() - began
        after = {n: cpu_seconds(p) for n, p in {**pids, **extra}.items() if p}
        pg_after = sum(cpu_seconds(p) for p in postgres_backends(args.db))
        machine_after = machine_busy()

        from generations.models import GenerationJob
        from payments.models import Order, WebhookEvent

        drain_began = time.monotonic()
        while time.monotonic() - drain_began < 600:
            waiting = WebhookEvent.objects.exclude(status__in=["PROCESSED", "IGNORED"]).count()
            active = GenerationJob.objects.filter(status__in=["PENDING", "PROCESSING"]).count()
            if not waiting and not active:
                break
            time.sleep(0.5)
        drained = time.monotonic() - drain_began

        processed = WebhookEvent.objects.filter(status="PROCESSED").count()
        jobs_done = GenerationJob.objects.filter(status="COMPLETED").count()
        cpus = os.cpu_count()
        print(
            f"\n{args.seconds:.0f} s of load on {cpus} cores, all database traffic through "
            f"PgBouncer {'.'.join(map(str, bouncer_version()))} (transaction pooling)"
        )
        print(f"requests and submissions: {dict(sorted(counts.items(), key=str))}")
        print(f"drained in {drained:.1f} s after the load stopped\n")
        pages = counts.get("page 200", 0)
        ingested = counts.get(200, 0)
        rows = [
            ("web (gunicorn)", f"{(ingested + pages) / wall / args.web:.0f} req/s per process"),
            ("worker webhooks (threads x 8)", f"{processed / (wall + drained):.0f} events/s"),
            ("worker generations (prefork x 2)", f"{jobs_done / (wall + drained) / 2:.1f} jobs/s"),
            ("worker maintenance (solo)", "sweeps"),
            ("pgbouncer", ""),
            ("redis", ""),
        ]
        print(f"{'component':<34} {'throughput':<28} {'CPU (% of one core)':>20}")
        usage = {}
        for name, throughput in rows:
            if name in after:
                usage[name] = (after[name] - before[name]) / wall * 100
                print(f"{name:<34} {throughput:<28} {usage[name]:>19.0f}%")
        usage["postgresql (this database)"] = (pg_after - pg_before) / wall * 100
        print(
            f"{'postgresql (this database)':<34} {'':<28} {usage['postgresql (this database)']:>19.0f}%"
        )
        total = sum(usage.values())
        busy = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
        print(f"{'all of the above':<34} {'':<28} {total:>19.0f}%")
        print(f"{'the whole machine (every process)':<34} {'':<28} {busy * cpus * 100:>19.0f}%")
        top = max(usage, key=usage.get)
        if busy > 0.9:
            print(
                f"saturates first: the machine's {cpus} cores ({busy:.0%} busy); of this stack, "
                f"{top} uses the most ({usage[top]:.0f}% of a core)"
            )
        else:
            print(f"saturates first: {top} ({usage[top]:.0f}% of a core)")

        orders = Order.objects.filter(status="COMPLETED").count()
        from credits.ledger_check import ledger_check
        from credits.models import LedgerEntry

        grants = LedgerEntry.objects.filter(kind="PURCHASE").count()
        report = ledger_check()
        ok = (
            orders == grants == args.orders
            and report.clean
            and not WebhookEvent.objects.exclude(status="PROCESSED").exists()
        )
        print(
            f"\ncheck: {orders} orders completed, {grants} purchase grants for {args.orders} "
            f"orders, {jobs_done} jobs completed, check_ledger "
            f"{'clean' if report.clean else 'DRIFT'} ({report.entries} entries): "
            f"{'OK' if ok else 'MISMATCH'}"
        )
        if not ok:
            sys.exit(1)
    finally:
        for p in procs.values():
            stop(p)
        connections.close_all()
        bouncer.stop()
        import redis

        client = redis.Redis.from_url(args.redis)
        for key in client.keys(prefix + "*"):
            client.delete(key)


def bouncer_version():
    from tests.pgbouncer import version

    return version()


if __name__ == "__main__":
    main()
