"""Where a webhook's time goes, in one process: CPU profiles and SQL statements per event.

Builds the same database as bench/webhooks.py (``--db``, dropped and created again) with
``--events`` paid sandbox checkouts, then, in this process:

1. ingest: each signed delivery goes through the whole WSGI application (every middleware,
   the view, the INSERT; no broker message), against the bare view of the same settings;
   prints the CPU milliseconds per request of both and the statements one delivery runs;
2. dispatch: ``webhook_dispatch`` queues the stored events to the broker of ``--redis`` in
   batches, as the workers' dispatchers do; prints the time and statements per event;
3. processing: ``webhook_process`` of every stored event, one after the other, as one solo
   worker runs them; prints the milliseconds per event, the statements per event (each is a
   round trip to the database) and the statements themselves for one event.

``--profile ingest|process`` adds a cProfile of that part (functions by cumulative time, then
by their own time). Run:

    .venv/bin/python bench/webhooks_profile.py [--events 300] [--profile process]
        [--db credits_bench_webhooks] [--redis redis://127.0.0.1:6379/3]
"""

import argparse
import cProfile
import io
import pstats
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import webhooks as bench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="credits_bench_webhooks")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--profile", choices=["ingest", "process"])
    parser.add_argument("--top", type=int, default=45, help="lines of a cProfile")
    return parser.parse_args()


class Statements:
    """Counts the SQL statements run on the default connection (savepoints included) and
    the time each kind takes, from sending it to its answer."""

    def __init__(self):
        self.sql: list[str] = []
        self.seconds: dict[str, float] = {}

    def __call__(self, execute, sql, params, many, context):
        text = " ".join(str(sql).split())[:100]
        if text.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")):
            text = text.split('"')[0]
        self.sql.append(text)
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds[text] = self.seconds.get(text, 0.0) + time.perf_counter() - began


def wsgi_post(application, path: str, body: bytes, signature: str) -> int:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_SANDBOX_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status = []
    response = application(environ, lambda s, h, exc_info=None: status.append(s))
    b"".join(response)
    response.close()
    return int(status[0].split()[0])


def cpu_ms_per(fn, items) -> float:
    began = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - began) * 1000 / max(1, len(items))


class Profile:
    """cProfile of one part, printed by cumulative and by own time."""

    def __init__(self, top: int):
        self.top = top
        self.profiler = cProfile.Profile()

    def start(self):
        self.profiler.enable()

    def stop(self):
        self.profiler.disable()

    def print(self, per: int):
        stats = pstats.Stats(self.profiler, stream=io.StringIO())
        for order in ("cumulative", "tottime"):
            stats.stream = io.StringIO()
            stats.sort_stats(order).print_stats(self.top)
            print(stats.stream.getvalue())
        print(f"own time by package, ms per {'request' if per else 'event'} (profiled):")
        packages: dict[str, float] = {}
        for (filename, _, name), (_, _, own, _, _) in stats.stats.items():
            package = _package(filename, name)
            packages[package] = packages.get(package, 0.0) + own
        for package, own in sorted(packages.items(), key=lambda item: -item[1])[: self.top // 2]:
            print(f"    {own * 1000 / per:7.2f}  {package}")


def _package(filename: str, name: str) -> str:
    if "site-packages/" in filename:
        parts = filename.split("site-packages/")[1].split("/")
        return "/".join(parts[:3]) if parts[0] == "django" else parts[0]
    if filename.startswith(("~", "<")):
        return name
    if filename.startswith(str(ROOT)):
        return filename[len(str(ROOT)) + 1 :]
    return "python: " + filename.rsplit("/", 1)[-1]


def _drop_queue(url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.delete(queue)
    client.close()


def main() -> None:
    args = parse_args()
    queue = f"bench-webhooks-{uuid.uuid4().hex[:8]}"
    env = bench.environment(args, queue)
    print(f"preparing {args.db}: {args.events} paid sandbox checkouts ...", flush=True)
    bench.create_database(args)
    bench.setup_django(env)
    warm_n = 20
    args.events += warm_n
    every = bench.prepare(args)
    events, warm = every[warm_n:], every[:warm_n]

    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    from payments.models import WebhookEvent
    from payments.webhooks import webhook_process

    application = get_wsgi_application()
    for body, signature in warm:
        wsgi_post(application, "/bench/ok/", body, signature)
        wsgi_post(application, "/webhooks/sandbox/", body, signature)

    # 1. ingest
    bare = cpu_ms_per(lambda e: wsgi_post(application, "/bench/ok/", *e), events)
    profile = Profile(args.top) if args.profile == "ingest" else None
    statements = Statements()
    first = events[0]
    with connection.execute_wrapper(statements):
        assert wsgi_post(application, "/webhooks/sandbox/", *first) == 200
    if profile:
        profile.start()
    ingest = cpu_ms_per(lambda e: wsgi_post(application, "/webhooks/sandbox/", *e), events[1:])
    if profile:
        profile.stop()
    print(
        f"\ningest, CPU per request in this process: bare view {bare:.2f} ms, webhook ingest "
        f"{ingest:.2f} ms ({bare / ingest:.2f}x); {len(statements.sql)} SQL statement(s):"
    )
    for sql in statements.sql:
        print(f"    {sql}")
    if profile:
        profile.print(len(events) - 1)

    # 2. dispatch: what the workers' dispatchers do with the stored events (claim a batch in
    # one statement, send its messages in one pipelined round trip)
    from payments.webhooks import webhook_dispatch

    webhook_dispatch(limit=1)  # opens the producer and its broker connection
    dispatched = 0
    statements = Statements()
    began, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(statements):
        while sent := webhook_dispatch():
            dispatched += sent
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    print(
        f"\ndispatch, {dispatched} due events in batches of up to 200: "
        f"{wall * 1000 / max(1, dispatched):.3f} ms per event, of which CPU in this process "
        f"{cpu * 1000 / max(1, dispatched):.3f} ms; {len(statements.sql)} SQL statement(s) "
        f"(the last one finding nothing)"
    )
    print(
        f"messages waiting in the queue: {bench.waiting_messages(args.redis, f'{queue}-webhooks')}"
    )
    _drop_queue(args.redis, f"{queue}-webhooks")  # no worker runs here

    # 3. processing
    pks = list(
        WebhookEvent.objects.filter(status="RECEIVED").order_by("pk").values_list("pk", flat=True)
    )
    for pk in pks[:warm_n]:
        webhook_process(event_pk=pk)
    pks = pks[warm_n:]
    statements = Statements()
    with connection.execute_wrapper(statements):
        webhook_process(event_pk=pks[0])
    one = list(statements.sql)
    profile = Profile(args.top) if args.profile == "process" else None
    statements = Statements()
    began, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(statements):
        if profile:
            profile.start()
        for pk in pks[1:]:
            webhook_process(event_pk=pk)
        if profile:
            profile.stop()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    n = len(pks) - 1
    done = WebhookEvent.objects.filter(pk__in=pks, status="PROCESSED").count()
    print(
        f"\nprocessing, {n} events one after the other: {wall * 1000 / n:.2f} ms per event "
        f"({n / wall:.0f} events/s), of which CPU in this process {cpu * 1000 / n:.2f} ms; "
        f"{len(statements.sql) / n:.1f} SQL statements per event (+ BEGIN/COMMIT); "
        f"{done + 1} of {n + 1} processed"
    )
    print(f"statements of one event ({len(one)}), with the mean ms each took over the run:")
    for sql in one:
        print(f"    {statements.seconds.get(sql, 0) * 1000 / n:6.2f}  {sql}")
    if profile:
        profile.print(n)
    connection.close()


if __name__ == "__main__":
    main()
