"""Shared pieces of the benchmark scripts: their own database, Django, and a client harness.

Clients run as threads spread over a few forked processes (so the client side is not one
interpreter lock), each thread with its own database connection. Every client runs the
same operation in a loop for a fixed time after a short warm-up; the harness returns the
operations per second and the latency percentiles.
"""

import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"


def database_url(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def ensure_database(server: str, name: str, *, fresh: bool) -> str:
    """Create the benchmark's own database (dropping it first when ``fresh``); nothing else."""
    import psycopg
    from psycopg import sql

    if "bench" not in name.split("_")[1:]:
        raise SystemExit(
            f"refusing to use {name!r}: the benchmark database's name must have a _bench part "
            "(credits_bench, credits_bench_2)"
        )
    with psycopg.connect(database_url(server, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server, name)


def setup_django(url: str) -> None:
    """Point Django at the benchmark database, migrate it quietly, and keep connections open."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DATABASES["default"]["CONN_MAX_AGE"] = None
    settings.DEBUG = False
    call_command("migrate", verbosity=0, interactive=False)


@dataclass
class Result:
    ops: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def tps(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    @property
    def p50_ms(self) -> float:
        return self.percentile(0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return self.percentile(0.99) * 1000


def run_clients(
    make_operation: Callable[[int], Callable[[int], None]],
    *,
    clients: int,
    seconds: float,
    warmup: float = 0.5,
    processes: int | None = None,
) -> Result:
    """Run ``clients`` concurrent loops of ``make_operation(client_number)(iteration)``.

    ``make_operation`` is called inside the client's own thread (open connections there).
    An operation that raises counts as an error and is not timed.
    """
    from django.db import connections

    processes = processes or min(clients, 4)
    connections.close_all()  # nothing open crosses the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 0.3 + 0.05 * clients
    per_process = [list(range(p, clients, processes)) for p in range(processes)]
    workers = [
        ctx.Process(
            target=_process_main, args=(make_operation, numbers, start_at, warmup, seconds, queue)
        )
        for numbers in per_process
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=seconds + warmup + 120) for _ in workers]
    for worker in workers:
        worker.join(30)
    failures = [r for r in results if isinstance(r, str)]
    if failures:
        raise RuntimeError("a benchmark client failed:\n" + failures[0])
    latencies = [lat for r in results for lat in r[2]]
    return Result(
        ops=sum(r[0] for r in results),
        errors=sum(r[1] for r in results),
        seconds=seconds,
        latencies=latencies,
    )


def _process_main(make_operation, numbers, start_at, warmup, seconds, queue):
    import traceback

    from django.db import connections

    out = {"ops": 0, "errors": 0, "latencies": [], "failure": None}
    lock = threading.Lock()

    def client(number):
        try:
            operation = make_operation(number)
            ops, errors, latencies = 0, 0, []
            measure_from, stop_at = start_at + warmup, start_at + warmup + seconds
            while time.time() < start_at:
                time.sleep(0.001)
            i = 0
            perf = time.perf_counter
            while True:
                now = time.time()
                if now >= stop_at:
                    break
                t0 = perf()
                try:
                    operation(i)
                except Exception:  # noqa: BLE001 - counted, the run goes on
                    errors += now >= measure_from
                else:
                    if now >= measure_from:
                        ops += 1
                        latencies.append(perf() - t0)
                i += 1
            with lock:
                out["ops"] += ops
                out["errors"] += errors
                out["latencies"].extend(latencies)
        except Exception:  # noqa: BLE001 - reported to the parent
            out["failure"] = traceback.format_exc()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(n,)) for n in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(out["failure"] or (out["ops"], out["errors"], out["latencies"]))


def median_seconds(fn: Callable[[], object], *, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - t0)
    return statistics.median(timings)
