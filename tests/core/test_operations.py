"""What an operator relies on: queues per kind of work, one beat, probes, metrics, request ids."""

import io

import pytest
import redis
from django.core.management import CommandError, call_command
from django.test import Client

from config.beat import BeatLock
from config.queues import EMAILS, GENERATIONS, MAINTENANCE, WEBHOOKS, queue_for, task_routes


@pytest.mark.parametrize(
    "task, queue",
    [
        ("payments.tasks.process_webhook_event", WEBHOOKS),
        ("payments.tasks.refund_closed_account_order", WEBHOOKS),
        ("generations.tasks.run_job", GENERATIONS),
        ("accounts.tasks.send_outbound_email", EMAILS),
        ("emails.tasks.deliver", EMAILS),
        ("notices.tasks.send_welcome_email", EMAILS),
        ("payments.tasks.requeue_stuck_webhook_events", MAINTENANCE),
        ("payments.tasks.reconcile_payments", MAINTENANCE),
        ("credits.tasks.expire_lots", MAINTENANCE),
        ("credits.tasks.purge_expired_idempotency_records", MAINTENANCE),
        ("generations.tasks.reap_stuck_jobs", MAINTENANCE),
        ("accounts.tasks.send_due_outbound_emails", MAINTENANCE),
    ],
)
def test_each_task_goes_to_the_queue_of_its_kind_of_work(task, queue):
    assert queue_for(task) == queue


def test_celery_routes_a_task_the_way_the_table_says():
    """Celery's own router, fed the production routes, agrees with ``queue_for``."""
    from celery import Celery

    app = Celery("routes-check", set_as_current=False)
    app.conf.task_routes = task_routes("prod-")
    router = app.amqp.router
    for task, queue in [
        ("payments.tasks.process_webhook_event", WEBHOOKS),
        ("generations.tasks.run_job", GENERATIONS),
        ("payments.tasks.reconcile_payments", MAINTENANCE),
    ]:
        assert router.route({}, task)["queue"].name == "prod-" + queue
    assert router.route({}, "something.tasks.unrouted")["queue"].name == "celery"


@pytest.fixture
def lock_redis(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.delete("test-beat-lock")
    client.close()


def test_a_second_beat_cannot_take_the_lock_until_the_first_lets_go(lock_redis):
    first = BeatLock(lock_redis, key="test-beat-lock", seconds=30)
    second = BeatLock(lock_redis, key="test-beat-lock", seconds=30)

    assert first.acquire()
    assert not second.acquire()
    assert first.renew() and not second.renew()
    assert not second.release()  # only the holder can release it
    assert second.holder() == first.token

    assert first.release()
    assert second.acquire()


def test_a_beat_lock_left_by_a_dead_scheduler_runs_out(lock_redis):
    dead = BeatLock(lock_redis, key="test-beat-lock", seconds=0.2)
    assert dead.acquire()
    standby = BeatLock(lock_redis, key="test-beat-lock", seconds=30)
    assert not standby.acquire()
    import time

    time.sleep(0.4)
    assert standby.acquire()
    assert not dead.renew()  # the old holder finds it lost the lock (and stops)


def test_health_answers_without_an_allowed_host_or_https():
    response = Client(HTTP_HOST="10.1.2.3:8000").get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_checks_the_database_migrations_cache_and_broker():
    response = Client(HTTP_HOST="10.1.2.3:8000").get("/readyz")

    assert response.status_code == 200, response.content
    checks = response.json()["checks"]
    assert set(checks) == {"database", "migrations", "cache", "broker"}
    assert checks["database"] == checks["migrations"] == checks["cache"] == "ok"


@pytest.mark.django_db
def test_readiness_fails_with_the_reason_when_the_broker_is_unreachable(monkeypatch):
    from celery import current_app

    # Celery reads the broker's address from these before its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "redis://127.0.0.1:1/0")
    saved = current_app.conf.task_always_eager
    current_app.conf.update(task_always_eager=False)
    try:
        response = Client(HTTP_HOST="10.1.2.3:8000").get("/readyz")
    finally:
        current_app.conf.update(task_always_eager=saved)

    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("failed:")


@pytest.mark.django_db
def test_metrics_count_webhooks_and_ledger_movements_and_show_waiting_work(
    make_user, django_capture_on_commit_callbacks
):
    from credits.services import credits_spend

    user = make_user(credits=10)
    with django_capture_on_commit_callbacks(execute=True):  # counted once committed
        credits_spend(user=user, amount=3, idempotency_key="metrics-spend")
    Client().post("/webhooks/sandbox/", data=b"{}", content_type="application/json")

    text = Client(HTTP_HOST="10.1.2.3:8000").get("/metrics").content.decode()

    assert 'credits_ledger_movements_total{kind="SPEND"}' in text
    assert 'credits_webhooks_received_total{outcome="rejected",provider="SANDBOX"}' in text
    assert "credits_webhooks_waiting 0.0" in text
    assert 'credits_generation_jobs{status="PENDING"} 0.0' in text
    assert "django_http_requests_latency_seconds_by_view_method" in text


def test_metrics_need_the_token_when_one_is_set(settings):
    settings.METRICS_TOKEN = "s3cret"
    client = Client(HTTP_HOST="10.1.2.3:8000")

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


@pytest.mark.django_db
def test_a_request_keeps_the_id_the_proxy_gave_it_or_gets_one():
    client = Client()
    given = client.get("/healthz/x", HTTP_X_REQUEST_ID="abc-123")
    made = client.get("/healthz/x", HTTP_X_REQUEST_ID="not a token\n")

    assert given["X-Request-ID"] == "abc-123"
    assert len(made["X-Request-ID"]) == 32


@pytest.mark.django_db(transaction=True)
def test_worker_health_finds_the_worker_of_this_host(celery_worker_process):
    out = io.StringIO()
    call_command("worker_health", timeout=10, stdout=out)
    assert out.getvalue().startswith("ok: ")


@pytest.mark.django_db
def test_worker_health_fails_when_no_worker_answers():
    with pytest.raises(CommandError, match="no worker"):
        call_command("worker_health", node="nobody@nowhere", timeout=1)
