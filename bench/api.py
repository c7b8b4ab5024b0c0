"""The JSON API's overhead: GET /api/v1/balance and POST /api/v1/jobs beside bare views, one run.

Builds its own database (``credits_api_bench``), migrates it, and makes ``--clients`` members
of a plan with API access, each with plenty of credits and one personal API key. Serves the
app with gunicorn (settings ``bench.api_settings``: the rate limits out of the way, tasks sent
to an in-process broker nobody reads), then runs each case with ``--clients`` concurrent
keep-alive clients for ``--seconds``:

- ``bare view``: a Django view that only answers 200 (the server's floor);
- ``balance, direct`` / ``jobs, direct``: bare views calling the same services the API calls
  (``balance_refresh`` + ``credit_summary``; ``job_submit``) for a user named in a header;
- ``GET /api/v1/balance`` / ``POST /api/v1/jobs``: the API, with key check, scopes, rate-limit
  counters in Redis, schemas, and (for jobs) the Idempotency-Key claim and the key's spend row.

It prints requests per second, p50 and p99 for each, and the API's overhead over the direct
service call (extra milliseconds at p50 and p99, and the throughput ratio). Run:

    python bench/api.py [--clients 16] [--seconds 8] [--workers 2] [--threads 8]
        [--redis redis://127.0.0.1:6379/9]
"""

import argparse
import http.client
import json
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DEFAULT_SERVER, ensure_database, run_clients  # noqa: E402
from bench.webhooks import free_port, start_gunicorn, stop  # noqa: E402

PICTURE = {
    "operation": "image",
    "model": "procedural-svg",
    "prompt": "three red circles",
    "seed": 1,
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="credits_api_bench")
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", DEFAULT_SERVER))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    )
    return parser.parse_args()


def environment(args, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "PAYPAL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.api_settings",
        DATABASE_URL=url,
        REDIS_URL=args.redis,
        CELERY_BROKER_URL="memory://",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare(args, env: dict) -> list[tuple[int, str]]:
    """Migrate, seed plans and price rules, and make the members: ``[(user id, token)]``."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0, interactive=False)
    from accounts.models import User
    from api.keys import api_key_create
    from credits.services import credits_grant
    from generations.demo import install
    from generations.models import PriceRule
    from payments.demo import seed_plans
    from payments.models import PlanPrice, SubscriptionPlan
    from payments.subscription_models import Subscription

    install(PriceRule)
    pro = {p.code: p for p in seed_plans(plan_model=SubscriptionPlan, price_model=PlanPrice)}["pro"]
    members = []
    now = timezone.now()
    for n in range(args.clients):
        user = User.objects.create_user(f"bench-api-{n}@example.com", "bench-password-1")
        credits_grant(user=user, amount=10**8, kind="BONUS", idempotency_key=f"bench:{user.pk}")
        Subscription.objects.create(
            user=user,
            plan=pro,
            provider="sandbox",
            currency="USD",
            amount="24.00",
            status="ACTIVE",
            current_period_start=now,
            current_period_end=now + timezone.timedelta(days=30),
            started_at=now,
        )
        token = api_key_create(user=user, name="bench", scopes=["read", "generate"]).token
        members.append((user.pk, token))
    from django.db import connections

    connections.close_all()
    return members


def case(port: int, members, *, method: str, path: str, expect: int, api: bool, body=None):
    """A client factory: client ``n`` acts as member ``n`` over one keep-alive connection."""

    def make(n: int):
        user_id, token = members[n % len(members)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        run = uuid.uuid4().hex[:8]
        payload = json.dumps(body).encode() if body is not None else None

        def op(i: int) -> None:
            headers = {"Content-Type": "application/json"}
            if api:
                headers["Authorization"] = f"Bearer {token}"
                if method == "POST":
                    headers["Idempotency-Key"] = f"{run}-{n}-{i}"
            else:
                headers["X-Bench-User"] = str(user_id)
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != expect:
                raise RuntimeError(f"{path}: HTTP {response.status}")

        return op

    return make


def main() -> None:
    args = parse_args()
    url = ensure_database(args.server, args.db, fresh=True)
    env = environment(args, url)
    print(f"preparing {args.db}: {args.clients} members with API keys ...", flush=True)
    members = prepare(args, env)
    port = free_port()
    server = start_gunicorn(args, env, port, log_name="bench-api-gunicorn.log")
    cases = [
        ("bare view", dict(method="GET", path="/bench/ok/", expect=200, api=False)),
        ("balance, direct", dict(method="GET", path="/bench/balance/", expect=200, api=False)),
        ("GET /api/v1/balance", dict(method="GET", path="/api/v1/balance", expect=200, api=True)),
        ("jobs, direct", dict(method="POST", path="/bench/jobs/", expect=201, api=False, body=PICTURE)),
        ("POST /api/v1/jobs", dict(method="POST", path="/api/v1/jobs", expect=201, api=True, body=PICTURE)),
    ]  # fmt: skip
    results = {}
    try:
        # Every worker process answers each case once before the clock runs (first-request
        # imports and schema building are not what is measured).
        for _name, spec in cases:
            run_clients(case(port, members, **spec), clients=args.clients, seconds=1, warmup=2)
        for name, spec in cases:
            result = run_clients(
                case(port, members, **spec), clients=args.clients, seconds=args.seconds, warmup=1
            )
            results[name] = result
            print(
                f"  {name:<22} {result.tps:>8.0f} req/s  p50 {result.p50_ms:>7.1f} ms  "
                f"p99 {result.p99_ms:>7.1f} ms  errors {result.errors}",
                flush=True,
            )
    finally:
        stop(server)
    print(
        f"\ngunicorn {args.workers} workers x {args.threads} threads, {args.clients} concurrent "
        f"keep-alive clients, {args.seconds:g} s per case"
    )
    print(f"{'case':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, result in results.items():
        print(f"{name:<22} {result.tps:>8.0f} {result.p50_ms:>8.1f} {result.p99_ms:>8.1f}")
    for api_case, direct in (
        ("GET /api/v1/balance", "balance, direct"),
        ("POST /api/v1/jobs", "jobs, direct"),
    ):
        a, d = results[api_case], results[direct]
        print(
            f"API overhead, {api_case}: +{a.p50_ms - d.p50_ms:.1f} ms p50, "
            f"+{a.p99_ms - d.p99_ms:.1f} ms p99, throughput {a.tps / d.tps:.0%} of the direct call"
        )  # fmt: skip


if __name__ == "__main__":
    main()
