"""Periodic task intervals are settings: a beat start keeps what the environment says."""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import redis

from tests.conftest import ARTIFACTS, ROOT, test_database_url, wait_until

SWEEP = "requeue-stuck-webhook-events"
SWEEP_VARIABLE = "BEAT_REQUEUE_STUCK_WEBHOOK_EVENTS_SECONDS"


def settings_schedule(**env) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process with ``env`` and print CELERY_BEAT_SCHEDULE."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.CELERY_BEAT_SCHEDULE))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
    )


def test_each_interval_is_read_from_its_environment_variable():
    result = settings_schedule(
        **{
            SWEEP_VARIABLE: "45",
            "BEAT_RECONCILE_PAYMENTS_SECONDS": "7200",
            "ACCOUNTS_EMAIL_SWEEP_INTERVAL": "120",
        }
    )

    assert result.returncode == 0, result.stderr
    schedule = json.loads(result.stdout.strip().splitlines()[-1])
    assert schedule[SWEEP] == {
        "task": "payments.tasks.requeue_stuck_webhook_events",
        "schedule": 45.0,
    }
    assert schedule["reconcile-payments"]["schedule"] == 7200.0
    assert schedule["send-due-account-emails"]["schedule"] == 120.0
    assert schedule["reap-stuck-generation-jobs"]["schedule"] == 60.0  # the default


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan"])
def test_an_interval_that_is_not_at_least_a_second_stops_the_settings_from_loading(value):
    result = settings_schedule(**{SWEEP_VARIABLE: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and SWEEP_VARIABLE in result.stderr


def test_the_webhook_sweep_runs_often_enough_for_a_paid_order_to_converge_within_two_minutes():
    from django.conf import settings

    from payments import app_settings

    interval = settings.CELERY_BEAT_SCHEDULE[SWEEP]["schedule"]
    # Worst case after a worker dies: the retry's backoff, the lease, then the next sweep.
    assert (
        app_settings.webhook_retry_base_seconds()
        + app_settings.webhook_stuck_after_seconds()
        + interval
        <= 120
    )


@pytest.mark.worker
def test_a_beat_start_sets_the_interval_from_the_environment_over_an_admin_edit(
    transactional_db, settings
):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    edited = IntervalSchedule.objects.create(every=999, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name=SWEEP, task="payments.tasks.requeue_stuck_webhook_events", interval=edited
    )
    queue = f"test-beat-{uuid.uuid4().hex[:8]}"
    log_path = ARTIFACTS / "workers" / f"{queue}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_DEFAULT_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        SWEEP_VARIABLE: "45",
    }
    with open(log_path, "ab") as log:
        beat = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "INFO",
                "--max-interval",
                "1",
                "--pidfile=",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: (
                PeriodicTask.objects.get(name=SWEEP).interval.every == 45 or beat.poll() is not None
            ),
            timeout=60,
            message=f"beat to write the schedule\n{log_path.read_text()[-2000:]}",
        )
        assert beat.poll() is None, log_path.read_text()[-2000:]
    finally:
        os.killpg(beat.pid, signal.SIGKILL)  # its state is in the database already
        beat.wait(20)
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        client.delete(queue)
        client.close()

    task = PeriodicTask.objects.get(name=SWEEP)
    assert (task.interval.every, task.interval.period) == (45, IntervalSchedule.SECONDS)
