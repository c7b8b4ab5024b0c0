"""Benchmark: ``job_submit`` against a bare ``credits_spend``, measured in the same run.

    .venv/bin/python bench/job_submit.py [--seconds 5] [--rounds 5] [--clients 1,4]
        [--db credits_jobs_bench] [--redis redis://127.0.0.1:6379/3] [--profile]

It creates its own database (the name must end in ``_bench``), migrates it, gives a few
hundred users plenty of credits, and sends tasks to a Redis broker queue of its own that no
worker reads (purged at the end), so each submission pays for its real broker message.

For each number of concurrent clients it prints the rate and p50 / p99 latency of:

  spend       credits.services.credits_spend of the job's price (no transaction open)
  submit      generations.services.job_submit of a picture job (validate, price, lock the
              user, count running jobs, create the job, spend; the job is then due, and a
              worker's dispatcher sends its task)

and submit / spend (the two take turns, ``--rounds`` of ``--seconds / rounds`` each, so a
change in the machine's load while they run reaches both alike). Then what the dispatcher
spends per job to send the tasks of up to 2,000 of the submitted jobs (a worker's work,
outside the request). Then, for one submission and
one spend, the round trips to the database each makes (transaction control included), the SQL
statements it runs (statements sent in one message or one pipeline share a round trip; the
driver's own BEGIN and COMMIT are not among them) and its broker messages. ``--profile`` adds
a cProfile of a few hundred submissions (by cumulative, then by own time).
"""

import argparse
import os
import sys
import time
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    DEFAULT_SERVER,
    Result,
    ensure_database,
    run_clients,
    setup_django,
)

USERS = 400


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", DEFAULT_SERVER))
    parser.add_argument("--db", default="credits_jobs_bench")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    )
    parser.add_argument("--profile", action="store_true")
    return parser.parse_args()


def make_users():
    from accounts.models import User
    from credits.services import balance_ensure, credits_grant

    users = User.objects.bulk_create(
        [User(email=f"jobs{i}@bench.example", password="!") for i in range(USERS)]
    )
    for user in users:
        balance_ensure(user_id=user.pk)
        credits_grant(
            user=user, amount=10_000_000, kind="BONUS", idempotency_key=f"bench-grant-{user.pk}"
        )
    return [u.pk for u in users]


PICTURE = dict(operation="image", model="procedural-svg", prompt="two yellow stars", seed=4)


def spend_op(user_ids, amount):
    from accounts.models import User
    from credits.services import credits_spend

    def make(client):
        users = list(User.objects.filter(pk__in=user_ids[client::8]))
        run = uuid.uuid4().hex[:8]

        def op(i):
            credits_spend(
                user=users[i % len(users)],
                amount=amount,
                idempotency_key=f"bench-spend-{run}-{client}-{i}",
            )

        op(-1)  # warm the connection before the clock starts
        return op

    return make


def submit_op(user_ids):
    from accounts.models import User
    from generations.app_settings import app_settings
    from generations.models import GenerationJob
    from generations.services import JobRequest, job_submit

    request = JobRequest(**PICTURE)

    def make(client):
        users = list(User.objects.filter(pk__in=user_ids[client::8]))
        mine = [user.pk for user in users]
        # Each user is back every len(users) submissions: clearing this client's pending jobs
        # (no worker runs them) once every (limit - 1) rounds keeps every user under the
        # running-jobs limit, at a small fraction of a statement per submission.
        clear_every = len(users) * max(1, app_settings.MAX_RUNNING_JOBS - 1)
        failed = []

        def op(i):
            if i % clear_every == 0:
                GenerationJob.objects.filter(user_id__in=mine, status="PENDING").update(
                    status="CANCELLED"
                )
            user = users[i % len(users)]
            try:
                job_submit(user=user, request=request)
            except Exception:
                if not failed:
                    traceback.print_exc()
                failed.append(1)
                raise

        # Warm this client's connections (database, broker) before the clock starts.
        op(len(users) - 1)
        return op

    return make


def merged(total: Result | None, more: Result) -> Result:
    """``total`` and ``more`` as one run."""
    if total is None:
        return more
    return Result(
        ops=total.ops + more.ops,
        errors=total.errors + more.errors,
        seconds=total.seconds + more.seconds,
        latencies=total.latencies + more.latencies,
    )


def count_round_trips(fn) -> tuple[int, list[str], int]:
    """The round trips to the database ``fn`` makes, the SQL statements it sends (savepoints
    included; the driver's own BEGIN and COMMIT of a transaction are not seen here) and its
    broker messages."""
    from django.db import connection
    from kombu import Producer

    from core.db import RoundTrips

    statements: list[str] = []
    published = [0]
    original = Producer.publish

    def counting_publish(self, *args, **kwargs):
        published[0] += 1
        return original(self, *args, **kwargs)

    def wrapper(execute, sql, params, many, context):
        statements.append(" ".join(str(sql).split())[:90])
        return execute(sql, params, many, context)

    Producer.publish = counting_publish
    try:
        with connection.execute_wrapper(wrapper), RoundTrips() as trips:
            fn()
    finally:
        Producer.publish = original
    return trips.count, statements, published[0]


def dispatcher_share(jobs: int = 2000) -> None:
    """What the submissions left to a worker: its dispatcher sends the jobs' tasks, a claim of
    up to a batch of jobs and their messages in one round trip each. Timed over ``jobs`` of
    the jobs the clients submitted (the clients cancel theirs between runs, so they are made
    due again first)."""
    from django.utils import timezone

    from generations.models import GenerationJob
    from generations.queue import dispatching, jobs_dispatch

    if not dispatching():
        print("\nno dispatcher (GENERATIONS_DISPATCH_SECONDS=0): each submission sent its task")
        return
    jobs_dispatch()  # the submissions not cancelled yet, and this process's broker connection
    pks = GenerationJob.objects.filter(status="CANCELLED").values_list("pk", flat=True)[:jobs]
    GenerationJob.objects.filter(pk__in=list(pks)).update(
        status="PENDING", resend_at=timezone.now()
    )
    sent, began = 0, time.perf_counter()
    while batch := jobs_dispatch():
        sent += batch
    elapsed = time.perf_counter() - began
    GenerationJob.objects.filter(status="PENDING").update(status="CANCELLED")
    print(
        f"\ndispatcher (in a worker, not in the request): {sent} jobs' tasks sent in "
        f"{elapsed:.2f} s, {elapsed / max(sent, 1) * 1000:.3f} ms per job"
    )


def main() -> None:
    args = parse_args()
    queue = f"bench-jobs-{uuid.uuid4().hex[:8]}"
    os.environ["CELERY_BROKER_URL"] = args.redis
    os.environ["REDIS_URL"] = args.redis
    os.environ["CELERY_DEFAULT_QUEUE"] = queue
    os.environ["CELERY_QUEUE_PREFIX"] = f"{queue}-"  # routed queues: <queue>-generations, ...
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    url = ensure_database(args.server, args.db, fresh=True)
    setup_django(url)
    from generations.models import GenerationJob
    from generations.pricing import estimate

    user_ids = make_users()
    price = estimate(operation="image", model="procedural-svg").credits
    print(f"{args.db}: {USERS} users; picture job price {price} credits; broker queue {queue}\n")

    # Import and set up everything a submission uses before the clients fork.
    warm = submit_op(user_ids)(0)
    warm(1)

    print(f"{'clients':>7} {'path':<8} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8}  submit/spend")
    for clients in [int(c) for c in args.clients.split(",")]:
        spend = submit = None
        rounds = max(1, args.rounds)
        for turn in range(rounds):
            timing = dict(clients=clients, seconds=args.seconds / rounds)
            timing["warmup"] = 2 if turn == 0 else 0.5
            spend = merged(spend, run_clients(spend_op(user_ids, price), **timing))
            submit = merged(submit, run_clients(submit_op(user_ids), **timing))
        print(
            f"{clients:>7} {'spend':<8} {spend.tps:>8.0f} {spend.p50_ms:>8.2f} {spend.p99_ms:>8.2f}"
        )
        print(
            f"{clients:>7} {'submit':<8} {submit.tps:>8.0f} {submit.p50_ms:>8.2f} "
            f"{submit.p99_ms:>8.2f}  {submit.p50_ms / spend.p50_ms:.1f}x (p50), "
            f"{spend.tps / submit.tps:.1f}x (rate)"
        )
        if spend.errors or submit.errors:
            print(f"        errors: spend {spend.errors}, submit {submit.errors}")

    dispatcher_share()

    from accounts.models import User
    from credits.services import credits_spend
    from generations.services import JobRequest, job_submit

    user = User.objects.get(pk=user_ids[0])
    GenerationJob.objects.filter(user_id=user.pk, status="PENDING").update(status="CANCELLED")
    request = JobRequest(**PICTURE)
    job_submit(user=user, request=request)  # warm
    GenerationJob.objects.filter(user_id=user.pk, status="PENDING").update(status="CANCELLED")
    for name, fn in (
        ("spend", lambda: credits_spend(user=user, amount=price, idempotency_key=uuid.uuid4().hex)),
        ("submit", lambda: job_submit(user=user, request=request)),
    ):
        trips, statements, published = count_round_trips(fn)
        GenerationJob.objects.filter(user_id=user.pk, status="PENDING").update(status="CANCELLED")
        print(
            f"\n{name}: {trips} database round trips, {len(statements)} SQL statements, "
            f"{published} broker message(s)"
        )
        for sql in statements:
            print(f"    {sql}")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        for _ in range(300):
            profiler.enable()
            job_submit(user=user, request=request)
            profiler.disable()
            GenerationJob.objects.filter(user_id=user.pk, status="PENDING").update(
                status="CANCELLED"
            )
        elapsed = time.perf_counter() - t0
        print(
            f"\nprofile: 300 submissions in {elapsed:.2f} s (clearing the jobs between them included)"
        )
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)

    from celery import current_app

    from config.queues import QUEUES

    with current_app.connection_for_write() as conn:
        for name in (queue, *(f"{queue}-{kind}" for kind in QUEUES)):
            conn.default_channel.queue_purge(name)


if __name__ == "__main__":
    main()
