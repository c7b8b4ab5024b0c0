"""Webhook ingest under load, against a bare Django view measured in the same run.

Builds its own database (``credits_bench_webhooks``), migrates it, and creates ``--events``
paid sandbox checkouts (one PENDING order each). Serves the app with gunicorn (settings
``bench.webhooks_settings``: the app plus /bench/ok/, a view that only returns 200), then:

1. baseline: ``--senders`` concurrent senders POST the same bodies to /bench/ok/;
2. ingest: the same senders deliver the signed sandbox webhooks to /webhooks/sandbox/ (1 and
   2 take turns, saturated in ``--rounds`` rounds and then at the fixed ``--rate``),
   ``--duplicates`` of the deliveries being repeats of events already sent (so the
   unique-constraint path is exercised); ingest only stores them, due (it sends no broker
   message: the count of messages waiting afterwards is printed), and nothing processes them
   yet (no worker runs);
3. processing: one Celery worker process is started on the run's webhooks queue, as
   production runs it: its webhook dispatcher claims the due events in batches and queues
   them, its pool processes them, and the time until all are processed gives events per
   second (dispatch included).

It prints p50 / p99 / max latency and requests per second for both endpoints, their ratio,
the CPU each saturated request cost gunicorn, this machine's PostgreSQL and the senders, the
worker's rate, and checks the outcome (every order fulfilled once, every duplicate
acknowledged). Run:

    .venv/bin/python bench/webhooks.py [--events 1000] [--senders 50] [--duplicates 0.2]
        [--workers 2] [--threads 8] [--db credits_bench_webhooks] [--redis redis://127.0.0.1:6379/3]
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _app_root() -> Path:
    """The code under test: this checkout, or the tree given with --app-root (an earlier
    revision, for a before/after comparison in one run; see --compare-with)."""
    if "--app-root" in sys.argv:
        return Path(sys.argv[sys.argv.index("--app-root") + 1]).resolve()
    return ROOT


APP = _app_root()
sys.path.insert(0, str(APP))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="credits_bench_webhooks")
    parser.add_argument("--events", type=int, default=1000, help="distinct events (one order each)")
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument(
        "--duplicates", type=float, default=0.2, help="share of deliveries that are repeats"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument(
        "--rate",
        type=float,
        default=200,
        help="deliveries per second for the fixed-rate run (0 skips it)",
    )
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    )
    parser.add_argument(
        "--pool",
        default="threads",
        choices=["threads", "solo", "prefork"],
        help="the processing worker's pool: threads (as compose runs the webhooks worker) or "
        "solo (one task at a time)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="threads of the worker")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="the saturated run's rounds: bare view and ingest take turns, the median of the "
        "rounds' ratios is printed",
    )
    parser.add_argument("--app-root", default=str(ROOT), help="the code under test")
    parser.add_argument("--json-out", help="also write the figures to this file")
    parser.add_argument(
        "--worker-profile",
        metavar="FILE",
        help="run the processing worker under cProfile and write its profile to FILE",
    )
    parser.add_argument(
        "--compare-with",
        metavar="TREE",
        help="run the benchmark on TREE (an exported earlier revision) with a solo worker, "
        "then on this checkout with a solo and a threads worker, and print the ratios",
    )
    return parser.parse_args()


def pg_base() -> str:
    return os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")


def environment(args, queue: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "PAYPAL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.webhooks_settings",
        DATABASE_URL=f"{pg_base()}/{args.db}",
        REDIS_URL=args.redis,
        CELERY_BROKER_URL=args.redis,
        CELERY_DEFAULT_QUEUE=queue,
        # Queues of this run's own: the events go to "<queue>-webhooks" (config/queues.py).
        CELERY_QUEUE_PREFIX=f"{queue}-",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        # The sandbox provider is off unless DEBUG or this says otherwise.
        PAYMENTS_SANDBOX_ENABLED="true",
    )
    return env


def create_database(args) -> None:
    import psycopg

    with psycopg.connect(f"{pg_base()}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db}"')


def setup_django(env: dict) -> None:
    os.environ.update(env)
    import django

    django.setup()


def prepare(args) -> list[tuple[bytes, str]]:
    """Users, orders and paid sandbox checkouts; returns each event's (body, signature)."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from payments.models import CreditPackage, Order, SandboxPayment
    from payments.providers.sandbox import event_body, sign

    package = CreditPackage.objects.get(name="Basic")
    users = User.objects.bulk_create(
        [User(email=f"buyer{i}@bench.example", password="!") for i in range(args.events)]
    )
    from credits.services import balance_ensure

    for user in users:
        balance_ensure(user_id=user.pk)
    orders = Order.objects.bulk_create(
        [
            Order(
                user=u,
                package=package,
                amount=package.price,
                currency=package.currency,
                credits=package.credits,
                provider="SANDBOX",
            )
            for u in users
        ]
    )
    payments = SandboxPayment.objects.bulk_create(
        [
            SandboxPayment(
                token=uuid.uuid4().hex,
                order_ref=str(o.pk),
                description="Basic: 50 credits",
                amount=o.amount,
                currency=o.currency,
                status="paid",
                success_url="/",
                cancel_url="/",
            )
            for o in orders
        ]
    )
    for order, payment in zip(orders, payments):
        order.provider_order_id = payment.checkout_id
    Order.objects.bulk_update(orders, ["provider_order_id"])
    events = []
    for payment in payments:
        body = event_body(payment, "checkout.paid")
        events.append((body, sign(body)))
    return events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(
    args, env: dict, port: int, *, log_name: str = "bench-webhooks-gunicorn.log"
) -> subprocess.Popen:
    """gunicorn serving the code under test (``args.workers`` x ``args.threads``), once its
    /bench/ok/ answers; its output goes to var/``log_name``."""
    (APP / "var").mkdir(exist_ok=True)
    log = open(APP / "var" / log_name, "wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(args.workers),
            "-k",
            "gthread",
            "--threads",
            str(args.threads),
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
        ],
        cwd=APP,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/bench/ok/")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not start; see var/{log_name}")


def send_all(
    port: int, path: str, deliveries: list[tuple[bytes, str]], senders: int, rate: float = 0
) -> tuple[list, float, dict]:
    """POST every delivery with ``senders`` concurrent keep-alive connections.

    ``rate`` 0: each sender sends its next delivery as soon as the last one is answered (the
    server is saturated; latency is mostly queueing). ``rate`` > 0: delivery i is due at
    i / rate seconds, as a provider's deliveries arrive, and its latency is counted from when
    it was due, so a stalled server cannot hide its backlog.
    """
    latencies: list[float] = []
    statuses: dict = {}
    lock = threading.Lock()
    queue = list(reversed(list(enumerate(deliveries))))
    start = threading.Barrier(senders + 1)
    t0: list[float] = []

    def sender():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        while True:
            with lock:
                if not queue:
                    break
                index, (body, signature) = queue.pop()
            if rate:
                due = t0[0] + index / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                began = due
            else:
                began = time.perf_counter()
            conn.request(
                "POST",
                path,
                body=body,
                headers={"Content-Type": "application/json", "Sandbox-Signature": signature},
            )
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - began
            try:
                key = (response.status, json.loads(payload).get("status", "error"))
            except ValueError:
                key = (response.status, "not json")
            with lock:
                latencies.append(elapsed)
                statuses[key] = statuses.get(key, 0) + 1
        conn.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    t0.append(time.perf_counter())
    start.wait()
    began = t0[0]
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - began, statuses


def _cpu_seconds(counts) -> float:
    """CPU seconds (user + system) used so far by the live processes for which
    ``counts(name, fields)`` is true (``fields``: those of /proc/<pid>/stat after the name)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()  # state, ppid, pgrp, ...
        if counts(name, fields):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group: the server's or the
    worker's own work, whatever else the machine runs at the same time."""
    return _cpu_seconds(lambda name, fields: int(fields[2]) == pgid)


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by this machine's PostgreSQL processes (backends, WAL writer,
    checkpointer); 0 when the database runs elsewhere."""
    return _cpu_seconds(lambda name, fields: name.endswith("(postgres"))


def cpu_now(server_pid: int) -> tuple[float, float, float]:
    """(server, PostgreSQL, this process's senders) CPU seconds so far."""
    own = os.times()
    return group_cpu_seconds(server_pid), postgres_cpu_seconds(), own.user + own.system


def waiting_messages(url: str, queue: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return client.llen(queue)
    finally:
        client.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_worker(
    env: dict, queue: str, pool: str, concurrency: int, profile: str | None = None
) -> tuple[subprocess.Popen, Path]:
    log_path = APP / "var" / "bench-webhooks-worker.log"
    worker_env = dict(env, LOG_LEVEL="WARNING")
    profiler = ["-m", "cProfile", "-o", str(Path(profile).resolve())] if profile else []
    proc = subprocess.Popen(
        [
            sys.executable,
            *profiler,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            f"{queue}-webhooks,{queue}",
            "-P",
            pool,
            "-c",
            str(1 if pool == "solo" else concurrency),
            "-l",
            "INFO",
            "-n",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=APP,
        env=worker_env,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if b" ready." in log_path.read_bytes():
            return proc, log_path
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"celery worker did not start:\n{log_path.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def row(name: str, latencies: list[float], seconds: float) -> str:
    ms = [x * 1000 for x in latencies]
    return (
        f"{name:<22} {statistics.median(ms):>8.1f} {percentile(ms, 90):>8.1f} {percentile(ms, 99):>8.1f} "
        f"{max(ms):>8.1f} {len(ms) / seconds:>9.0f}"
    )


def compare(args) -> None:
    """Before and after in one run: the same benchmark on an earlier tree and on this one."""
    runs = [
        ("before (solo)", args.compare_with, "solo"),
        ("after (solo)", str(ROOT), "solo"),
        ("after (threads)", str(ROOT), "threads"),
    ]
    results = {}
    for name, tree, pool in runs:
        out = ROOT / "var" / f"bench-webhooks-{pool}-{abs(hash(tree))}.json"
        command = [sys.executable, str(ROOT / "bench" / "webhooks.py"), "--app-root", tree]
        command += ["--pool", pool, "--json-out", str(out), "--db", args.db, "--redis", args.redis]
        command += ["--events", str(args.events), "--senders", str(args.senders)]
        command += ["--rate", str(args.rate), "--concurrency", str(args.concurrency)]
        command += ["--rounds", str(args.rounds)]
        print(f"\n===== {name}: {tree}", flush=True)
        # From the tree's own folder: importing Celery puts the working directory first on
        # the path, and the other tree's packages would shadow the ones under test.
        subprocess.run(command, check=True, cwd=tree)
        results[name] = json.loads(out.read_text())
    before = results["before (solo)"]
    print("\n===== before / after, same run")
    print(
        f"{'':<18} {'ingest/bare':>12} {'median':>7} {'CPU ratio':>10} {'paced p99 ms':>13} {'events/s':>10} "
        f"{'x before':>9} {'worker CPU ms/event':>20} {'ingest messages':>16}"
    )
    for name, r in results.items():
        print(
            f"{name:<18} {r['ingest_over_bare']:>11.2f}x "
            f"{r.get('ingest_over_bare_median', r['ingest_over_bare']):>6.2f}x "
            f"{r['bare_cpu_ms'] / r['ingest_cpu_ms']:>9.2f}x "
            f"{r.get('paced_ingest_p99_ms', 0):>13.1f} "
            f"{r['processed_per_s']:>10.1f} {r['processed_per_s'] / before['processed_per_s']:>8.1f}x "
            f"{r['worker_cpu_ms']:>20.2f} {r.get('messages_sent_by_ingest', 0):>16}"
        )


def main() -> None:
    args = parse_args()
    if args.compare_with:
        compare(args)
        return
    queue = f"bench-webhooks-{uuid.uuid4().hex[:8]}"
    env = environment(args, queue)
    print(f"preparing {args.db}: {args.events} paid sandbox checkouts ...", flush=True)
    create_database(args)
    setup_django(env)
    warm_n = args.senders * 4
    args.events += warm_n
    every = prepare(args)
    args.events -= warm_n
    events, warm_events = every[: args.events], every[args.events :]

    duplicates = int(round(len(events) * args.duplicates / (1 - args.duplicates)))
    rng = random.Random(7)
    deliveries = list(events)
    for _ in range(duplicates):  # a repeat lands somewhere after its original
        i = rng.randrange(len(events))
        deliveries.insert(rng.randrange(i + 1, len(deliveries) + 1), events[i])

    port = free_port()
    server = start_gunicorn(args, env, port)
    worker = None
    try:
        # Warm both paths on every server thread (database and broker connections opened),
        # with events of their own that the check below counts too.
        send_all(port, "/bench/ok/", warm_events, args.senders)
        send_all(port, "/webhooks/sandbox/", warm_events, args.senders)

        half = len(deliveries) // 2 if args.rate else len(deliveries)
        saturated, paced = deliveries[:half], deliveries[half:]
        # Saturated: bare view and ingest take turns in ``--rounds`` rounds, each on its own
        # share of the deliveries, so a burst of other work on the machine weighs on both
        # alike; the median of the rounds' ratios is the figure that holds from run to run.
        bare, ingest, statuses = [], [], {}
        bare_s = ingest_s = 0.0
        # CPU seconds of (server, PostgreSQL, senders) for each endpoint
        bare_cpus, ingest_cpus = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        round_ratios = []
        size = -(-len(saturated) // args.rounds)
        for start in range(0, len(saturated), size):
            part = saturated[start : start + size]
            cpu_0 = cpu_now(server.pid)
            b, b_s, _ = send_all(port, "/bench/ok/", part, args.senders)
            cpu_1 = cpu_now(server.pid)
            w, w_s, part_statuses = send_all(port, "/webhooks/sandbox/", part, args.senders)
            cpu_2 = cpu_now(server.pid)
            bare += b
            ingest += w
            bare_s, ingest_s = bare_s + b_s, ingest_s + w_s
            for i in range(3):
                bare_cpus[i] += cpu_1[i] - cpu_0[i]
                ingest_cpus[i] += cpu_2[i] - cpu_1[i]
            round_ratios.append((len(w) / w_s) / (len(b) / b_s))
            for key, count in part_statuses.items():
                statuses[key] = statuses.get(key, 0) + count
        if args.rate:
            bare_r, bare_r_s, _ = send_all(port, "/bench/ok/", paced, args.senders, rate=args.rate)
            ingest_r, ingest_r_s, paced_statuses = send_all(
                port, "/webhooks/sandbox/", paced, args.senders, rate=args.rate
            )
            for key, count in paced_statuses.items():
                statuses[key] = statuses.get(key, 0) + count

        from payments.models import WebhookEvent

        stored = WebhookEvent.objects.count() - len(warm_events)
        print(
            f"\ngunicorn {args.workers} workers x {args.threads} threads (gthread), {args.senders} concurrent "
            f"senders, {len(deliveries)} deliveries ({duplicates} duplicates = "
            f"{duplicates / len(deliveries):.0%}), {os.cpu_count()} CPU cores\n"
        )
        runs = [
            (
                f"saturated: {len(saturated)} deliveries, each sender back-to-back",
                bare,
                bare_s,
                ingest,
                ingest_s,
            )
        ]
        if args.rate:
            runs.append(
                (
                    f"fixed rate: {len(paced)} deliveries at {args.rate:.0f}/s, latency from when due",
                    bare_r,
                    bare_r_s,
                    ingest_r,
                    ingest_r_s,
                )
            )
        figures = {
            "bare_rps": len(bare) / bare_s,
            "ingest_rps": len(ingest) / ingest_s,
            "ingest_over_bare": (len(ingest) / ingest_s) / (len(bare) / bare_s),
            "ingest_over_bare_rounds": round_ratios,
            "ingest_over_bare_median": statistics.median(round_ratios),
            "bare_cpu_ms": bare_cpus[0] * 1000 / len(bare),
            "ingest_cpu_ms": ingest_cpus[0] * 1000 / len(ingest),
            "bare_postgres_cpu_ms": bare_cpus[1] * 1000 / len(bare),
            "ingest_postgres_cpu_ms": ingest_cpus[1] * 1000 / len(ingest),
            "bare_sender_cpu_ms": bare_cpus[2] * 1000 / len(bare),
            "ingest_sender_cpu_ms": ingest_cpus[2] * 1000 / len(ingest),
        }
        if args.rate:
            figures["paced_ingest_p99_ms"] = percentile(ingest_r, 99) * 1000
            figures["paced_bare_p99_ms"] = percentile(bare_r, 99) * 1000
        for title, bare_l, bare_t, ingest_l, ingest_t in runs:
            print(
                f"{title}\n{'':<22} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>9}"
            )
            print(row("bare Django view", bare_l, bare_t))
            print(row("webhook ingest", ingest_l, ingest_t))
            b, w = [x * 1000 for x in bare_l], [x * 1000 for x in ingest_l]
            print(
                f"{'ingest / bare':<22} {statistics.median(w) / statistics.median(b):>7.1f}x "
                f"{percentile(w, 90) / percentile(b, 90):>7.1f}x {percentile(w, 99) / percentile(b, 99):>7.1f}x\n"
            )
        print(
            "saturated ingest / bare view by round: "
            + ", ".join(f"{r:.2f}x" for r in round_ratios)
            + f" (median {figures['ingest_over_bare_median']:.2f}x)"
        )
        print(
            f"gunicorn CPU per saturated request: bare view {figures['bare_cpu_ms']:.2f} ms, "
            f"webhook ingest {figures['ingest_cpu_ms']:.2f} ms "
            f"({figures['bare_cpu_ms'] / figures['ingest_cpu_ms']:.2f}x)"
        )

        def cpu_parts(endpoint: str) -> str:
            return " + ".join(
                f"{figures[f'{endpoint}_{k}cpu_ms']:.2f}" for k in ("", "postgres_", "sender_")
            )

        print(
            "machine CPU per saturated request (gunicorn + PostgreSQL + senders): "
            f"bare view {cpu_parts('bare')} ms, webhook ingest {cpu_parts('ingest')} ms"
        )
        print(f"\nresponses: {dict(sorted(statuses.items()))}; stored events: {stored}")
        figures["messages_sent_by_ingest"] = waiting_messages(args.redis, f"{queue}-webhooks")
        print(
            f"broker messages sent by ingest (waiting before any worker runs): "
            f"{figures['messages_sent_by_ingest']}"
        )

        worker, worker_log = start_worker(
            env, queue, args.pool, args.concurrency, args.worker_profile
        )
        began, worker_cpu = time.perf_counter(), group_cpu_seconds(worker.pid)
        while True:
            pending = WebhookEvent.objects.filter(status="RECEIVED").count()
            if pending == 0 or time.perf_counter() - began > 600:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - began
        done = stored + len(warm_events) - pending
        pool = "solo" if args.pool == "solo" else f"{args.pool} x {args.concurrency}"
        print(
            f"one worker process ({pool} pool): {done} events processed in {elapsed:.2f} s = "
            f"{done / elapsed:.0f} events/s (each: queued by the worker's dispatcher unless "
            f"ingest sent it, re-read the sandbox payment, lock, grant, invoice, mark COMPLETED)"
        )

        figures["processed_per_s"] = done / elapsed
        figures["worker_cpu_ms"] = (group_cpu_seconds(worker.pid) - worker_cpu) * 1000 / done
        print(f"worker CPU per event: {figures['worker_cpu_ms']:.2f} ms")
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(figures))
        from credits.models import LedgerEntry
        from payments.models import Order

        completed = Order.objects.filter(status="COMPLETED").count()
        grants = LedgerEntry.objects.filter(kind="PURCHASE").count()
        failed = WebhookEvent.objects.exclude(status="PROCESSED").count()
        ok = (
            completed == grants == len(events) + len(warm_events)
            and stored == len(events)
            and failed == 0
            and statuses.get((200, "duplicate")) == duplicates
        )
        print(
            f"check: {completed} orders completed, {grants} purchase grants, "
            f"{statuses.get((200, 'duplicate'), 0)} duplicates acknowledged, {failed} events not processed: "
            f"{'OK' if ok else 'MISMATCH'}"
        )
        if not ok:
            sys.exit(1)
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
