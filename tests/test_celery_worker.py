import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from credits.models import IdempotencyRecord
from credits.tasks import purge_expired_idempotency_records
from tests.conftest import wait_until


@pytest.mark.worker
def test_a_real_worker_runs_a_task_that_writes_to_postgresql(celery_worker_process):
    past = timezone.now() - timedelta(minutes=1)
    IdempotencyRecord.objects.create(key="old", expires_at=past)
    IdempotencyRecord.objects.create(key="fresh", expires_at=timezone.now() + timedelta(hours=1))

    result = purge_expired_idempotency_records.delay()

    wait_until(
        lambda: not IdempotencyRecord.objects.filter(key="old").exists(),
        message="the worker to purge",
    )
    assert IdempotencyRecord.objects.filter(key="fresh").exists()
    assert (
        f"Task credits.tasks.purge_expired_idempotency_records[{result.id}] succeeded"
        in celery_worker_process.log()
    )


def worker_sessions(name: str) -> list[int]:
    """Backend pids of the database sessions open under application name ``name``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid", [name]
        )
        return [pid for (pid,) in cursor.fetchall()]


@pytest.mark.worker
def test_a_worker_keeps_its_database_session_across_tasks_and_replaces_one_the_server_ended(
    celery_worker_factory,
):
    from django.db import connection

    name = f"kept-{uuid.uuid4().hex[:12]}"
    worker = celery_worker_factory(env={"DATABASE_CONN_MAX_AGE": "60", "PGAPPNAME": name})

    def run_tasks(count: int) -> None:
        done = worker.log().count("succeeded")
        for _ in range(count):
            purge_expired_idempotency_records.delay()
        wait_until(
            lambda: worker.log().count("succeeded") == done + count,
            message=f"{count} tasks to succeed",
        )

    run_tasks(1)
    sessions = worker_sessions(name)  # the tasks' (and the webhook dispatcher's, if it runs)
    assert sessions
    run_tasks(5)
    assert worker_sessions(name) == sessions  # the same sessions for every task, not one each

    with connection.cursor() as cursor:  # a restart, a failover or an operator ends them
        for session in sessions:
            cursor.execute("SELECT pg_terminate_backend(%s)", [session])
    wait_until(
        lambda: not set(worker_sessions(name)) & set(sessions), message="the sessions to end"
    )
    run_tasks(2)  # the next task finds its session gone and opens a new one; none fails
    assert worker_sessions(name)
    assert "Traceback" not in worker.log()
