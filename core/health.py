"""The readiness checks: the database answers, every migration is applied, the cache keeps a
value and the broker accepts a connection. Used by ``/readyz`` (config/probes.py) and by
``manage.py worker_health``."""

#: Once every migration is applied in this process's database, it stays so until a deploy
#: (a new process): the migration plan is worked out once, not on every probe.
_migrations_applied = False


def check_database() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_migrations() -> str:
    global _migrations_applied
    if _migrations_applied:
        return "ok"
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied")
    _migrations_applied = True
    return "ok"


def check_cache() -> str:
    from django.core.cache import cache

    key = "readyz-probe"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not keep a value")
    return "ok"


def check_broker() -> str:
    from celery import current_app

    if current_app.conf.task_always_eager:
        return "not used (tasks run in-process)"
    with current_app.connection_for_write(connect_timeout=3) as conn:
        conn.ensure_connection(max_retries=1)
    return "ok"


CHECKS = {
    "database": check_database,
    "migrations": check_migrations,
    "cache": check_cache,
    "broker": check_broker,
}


def readiness() -> tuple[bool, dict[str, str]]:
    """Run every check; returns (all passed, check -> "ok" or the reason it failed)."""
    results, ok = {}, True
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # noqa: BLE001 - any failure makes the process not ready
            ok = False
            results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
    return ok, results
