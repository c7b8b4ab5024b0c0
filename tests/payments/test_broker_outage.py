"""A worker outlives Redis going away while it runs a task, and the task's work still gets done."""

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.db import transaction
from django.test import Client

from config.celery_app import app
from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import Order, WebhookEvent
from payments.tasks import process_webhook_event, requeue_stuck_webhook_events
from payments.webhooks import webhook_ingest
from tests.conftest import (
    ARTIFACTS,
    WorkerProcess,
    tasks_sent_to_queue,
    test_database_url,
    wait_until,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


class PrivateRedis:
    """A redis-server of this test alone (the shared one is never stopped), persisted to disk
    as in production so a restart keeps the queues."""

    def __init__(self, directory: Path):
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.directory),
            ],
            stdout=open(self.directory / "redis.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Go away (SIGTERM: Redis writes its data and closes every connection)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


def send(task, *args, broker: str, queue: str):
    """Publish ``task`` to ``queue`` on ``broker`` (not through the app's pooled connection)."""
    with app.connection_for_write(broker) as connection:
        return task.apply_async(args=args, connection=connection, queue=queue)


def test_a_busy_worker_survives_redis_going_away_and_the_interrupted_work_completes(
    private_redis, fake_stripe, user, packages, settings, monkeypatch
):
    monkeypatch.setenv("PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS", "1")
    settings.PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS = 1
    buyer = Client()
    buyer.force_login(user)
    assert buyer.post("/billing/buy/", {"package": packages["Basic"].pk}).status_code == 303
    order = Order.objects.get(user=user)
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    with transaction.atomic():  # stored; its message is sent below, to the private broker
        event = webhook_ingest(
            provider_name="STRIPE",
            body=payload.encode(),
            headers={"Stripe-Signature": fake_stripe.sign(payload)},
        )
        transaction.get_connection().run_on_commit.clear()
    slow_stripe = fake_stripe.hold_next("GET", "/v1/checkout/sessions/")

    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": private_redis.url,
        "CELERY_DEFAULT_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        # The messages here are this test's own: the event is sent once, then swept.
        "PAYMENTS_WEBHOOK_DISPATCH_SECONDS": "0",
    }
    # The pool and concurrency of the compose worker and the README's command (prefork, 2).
    worker = WorkerProcess(
        env, queue, ARTIFACTS / "workers" / f"{queue}.log", pool="prefork", concurrency=2
    )
    settings.CELERY_BROKER_URL = private_redis.url
    with tasks_sent_to_queue(settings, queue):
        worker.start()
        try:
            send(process_webhook_event, event.event_pk, broker=private_redis.url, queue=queue)
            assert slow_stripe.arrived.wait(30), worker.log()[-2000:]  # the task is running

            private_redis.stop()
            wait_until(
                lambda: (
                    "Connection to broker lost" in worker.log() or worker.proc.poll() is not None
                ),
                timeout=30,
                message="the worker to notice",
            )
            private_redis.start()
            slow_stripe.release.set()
            wait_until(
                lambda: worker.log().count("Connected to ") >= 2 or worker.proc.poll() is not None,
                timeout=60,
                message=f"the worker to reconnect\n{worker.log()[-2000:]}",
            )
            assert worker.proc.poll() is None, f"the worker exited:\n{worker.log()[-3000:]}"
            assert "Unrecoverable error" not in worker.log()

            def swept_and_completed():
                send(requeue_stuck_webhook_events, broker=private_redis.url, queue=queue)
                return Order.objects.get(pk=order.pk).status == "COMPLETED"

            wait_until(
                swept_and_completed,
                timeout=60,
                interval=1,
                message=f"the interrupted work to complete\n{worker.log()[-2000:]}",
            )
            assert worker.proc.poll() is None
        finally:
            worker.stop()

    assert WebhookEvent.objects.get(pk=event.event_pk).status == "PROCESSED"
    assert CreditBalance.objects.get(user=user).balance == 50
    assert order_ledger_entries(order).count() == 1
