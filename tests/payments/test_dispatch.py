"""Ingest only stores; the dispatcher queues due events, each once per claim, and rides out a
broker that is down. End to end with a real worker: tests/payments/test_worker.py."""

import base64
import json
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
import redis
from django.db import connection
from django.test import Client
from django.utils import timezone

from config.celery_app import app
from credits.models import CreditBalance
from generations.dispatch import should_run as jobs_should_run
from payments.dispatch import should_run, webhook_dispatcher
from payments.ledger import order_ledger_entries
from payments.models import Order, WebhookEvent
from payments.tasks import process_webhook_event
from payments.webhooks import webhook_dispatch, webhook_ingest
from tests.conftest import wait_until
from tests.payments.conftest import (
    paid_checkout_event,
    post_stripe,
    stored_without_processing,
)
from tests.payments.test_broker_outage import PrivateRedis

TASK = "payments.tasks.process_webhook_event"


@contextmanager
def broker_at(settings, url: str):
    """Tasks sent by this test go to a queue of its own on the broker at ``url`` (as in
    production: nothing runs in place); yields the queue's name."""
    queue = f"test-dispatch-{uuid.uuid4().hex[:12]}"
    names = ("task_always_eager", "task_default_queue", "broker_url", "broker_write_url")
    saved = {k: app.conf[k] for k in names}
    saved_pool = app._pool
    app.conf.update(
        task_always_eager=False, task_default_queue=queue, broker_url=url, broker_write_url=url
    )
    app._pool = None  # connections to ``url``, not the pool of the broker configured before
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield queue
    finally:
        app.conf.update(saved)
        app._pool = saved_pool


def queued(url: str, queue: str) -> list[tuple[str, list]]:
    """The (task, args) of every message waiting in ``queue``, oldest first."""
    client = redis.Redis.from_url(url)
    try:
        messages = [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
    finally:
        client.close()
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


class CountingListener:
    """A TCP port where a broker would be: counts the connections made to it and closes each
    at once (a client that used it would fail at once, not hang)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def dispatch_at_once(poll, *, limit: int, threads: int = 4) -> list[int]:
    """Run ``threads`` dispatchers at once, each calling ``poll(limit=limit)`` until it claims
    nothing; returns what each claim sent (an error in any of them fails the test)."""
    counts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def dispatcher():
        try:
            start.wait()
            while sent := poll(limit=limit):
                counts.append(sent)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    running = [threading.Thread(target=dispatcher) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join(60)
    assert errors == []
    return counts


@pytest.fixture
def listener():
    server = CountingListener()
    yield server
    server.close()


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.mark.django_db
def test_ingest_stores_the_event_due_at_once_and_never_touches_the_broker(
    settings, fake_stripe, listener, django_capture_on_commit_callbacks
):
    payloads = [fake_stripe.event("customer.created", {"id": f"cus_{i}"}) for i in range(3)]
    stripe = Client()

    # Whatever the request leaves to run on commit runs too, as it would in production.
    with broker_at(settings, listener.url), django_capture_on_commit_callbacks(execute=True):
        began = time.perf_counter()
        responses = [post_stripe(stripe, payload, fake=fake_stripe) for payload in payloads]
        responses.append(post_stripe(stripe, payloads[0], fake=fake_stripe))
        elapsed = time.perf_counter() - began

    assert [r.json()["status"] for r in responses] == ["received"] * 3 + ["duplicate"]
    assert listener.connections == 0
    assert elapsed < 2, f"four deliveries took {elapsed:.2f} s"
    events = WebhookEvent.objects.all()
    assert len(events) == 3
    assert {(e.status, e.attempts) for e in events} == {("RECEIVED", 0)}
    assert all(e.next_attempt_at <= timezone.now() for e in events)  # due: a dispatcher takes it


@pytest.mark.django_db
def test_the_dispatcher_queues_each_due_event_once_and_each_is_processed_once(
    client, make_user, packages, fake_stripe, settings
):
    users = [make_user() for _ in range(3)]
    with broker_at(settings, settings.CELERY_BROKER_URL) as queue:
        paid = [paid_checkout_event(client, u, packages["Basic"], fake_stripe) for u in users]
        assert queued(settings.CELERY_BROKER_URL, queue) == []  # ingest sent nothing

        assert webhook_dispatch() == 3
        assert webhook_dispatch() == 0  # claimed: leased forward, not due any more
        messages = queued(settings.CELERY_BROKER_URL, queue)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)

    assert sorted(messages) == sorted((TASK, [event.pk]) for _, event in paid)
    for event in WebhookEvent.objects.all():
        assert event.next_attempt_at > timezone.now()  # the lease
    # What a worker does with the messages, one of them delivered twice.
    for _, args in messages + messages[:1]:
        process_webhook_event.apply(args=args)
    for (order, event), user in zip(paid, users):
        event.refresh_from_db()
        assert (event.status, event.attempts, event.next_attempt_at) == ("PROCESSED", 1, None)
        assert order_ledger_entries(order).count() == 1
        assert CreditBalance.objects.get(user=user).balance == 50
    assert webhook_dispatch() == 0


@pytest.mark.django_db
def test_with_the_broker_down_the_claim_is_given_back_and_queued_once_it_is_back(
    client, user, packages, fake_stripe, settings, private_redis
):
    with broker_at(settings, private_redis.url) as queue:
        _, event = paid_checkout_event(client, user, packages["Basic"], fake_stripe)
        private_redis.stop()

        with pytest.raises(Exception):  # noqa: B017 - whatever kombu raises for a lost broker
            webhook_dispatch()
        event.refresh_from_db()
        assert (event.status, event.attempts) == ("RECEIVED", 0)
        assert event.next_attempt_at <= timezone.now()  # due again, not leased for a minute

        private_redis.start()
        assert webhook_dispatch() == 1
        assert queued(private_redis.url, queue) == [(TASK, [event.pk])]


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_thread_rides_out_a_broker_outage(
    client, user, packages, fake_stripe, settings, private_redis, caplog
):
    settings.PAYMENTS_WEBHOOK_DISPATCH_SECONDS = 0.05
    with broker_at(settings, private_redis.url) as queue:
        dispatcher = webhook_dispatcher().start()
        try:
            private_redis.stop()
            _, event = paid_checkout_event(client, user, packages["Basic"], fake_stripe)
            wait_until(
                lambda: "webhook dispatch failed" in caplog.text,
                timeout=30,
                message="the dispatcher to find the broker down",
            )
            assert WebhookEvent.objects.get(pk=event.pk).status == "RECEIVED"

            private_redis.start()
            wait_until(
                lambda: queued(private_redis.url, queue),
                timeout=30,
                message="the dispatcher to queue the event once the broker is back",
            )
        finally:
            dispatcher.stop()
        assert not dispatcher.thread.is_alive()
    assert queued(private_redis.url, queue) == [(TASK, [event.pk])]
    assert "webhook dispatch works again" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_dispatchers_running_at_once_never_queue_the_same_claim_twice(settings):
    now = timezone.now()
    WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                provider="STRIPE",
                event_id=f"evt_{i}",
                type="customer.created",
                raw_body="{}",
                signature_valid=True,
                normalized={"provider": "STRIPE", "event_id": f"evt_{i}", "kind": "ignored"},
                next_attempt_at=now,
            )
            for i in range(120)
        ]
    )
    with broker_at(settings, settings.CELERY_BROKER_URL) as queue:
        counts = dispatch_at_once(webhook_dispatch, limit=7)
        messages = queued(settings.CELERY_BROKER_URL, queue)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)

    assert sum(counts) == 120
    pks = sorted(args[0] for _, args in messages)
    assert pks == sorted(WebhookEvent.objects.values_list("pk", flat=True))  # each once


@pytest.mark.parametrize(
    ("should_run", "setting", "queues", "seconds", "runs"),
    [
        (should_run, "PAYMENTS_WEBHOOK_DISPATCH_SECONDS", ["webhooks"], 0.2, True),
        (should_run, "PAYMENTS_WEBHOOK_DISPATCH_SECONDS", ["webhooks", "maintenance"], 0.2, True),
        (should_run, "PAYMENTS_WEBHOOK_DISPATCH_SECONDS", ["generations"], 0.2, False),
        (should_run, "PAYMENTS_WEBHOOK_DISPATCH_SECONDS", ["maintenance"], 0.2, False),
        (should_run, "PAYMENTS_WEBHOOK_DISPATCH_SECONDS", ["webhooks"], 0, False),
        (jobs_should_run, "GENERATIONS_DISPATCH_SECONDS", ["generations"], 0.2, True),
        (jobs_should_run, "GENERATIONS_DISPATCH_SECONDS", ["generations", "emails"], 0.2, True),
        (jobs_should_run, "GENERATIONS_DISPATCH_SECONDS", ["webhooks"], 0.2, False),
        (jobs_should_run, "GENERATIONS_DISPATCH_SECONDS", ["generations"], 0, False),
    ],
)
def test_only_workers_reading_the_queue_of_a_dispatchers_task_run_that_dispatcher(
    settings, should_run, setting, queues, seconds, runs
):
    from celery import Celery

    from config.queues import task_routes

    setattr(settings, setting, seconds)
    worker_app = Celery("routing", set_as_current=False)
    worker_app.conf.update(
        broker_url="memory://",
        task_always_eager=False,
        task_routes=task_routes(),  # the production routing
        task_default_queue="maintenance",
    )
    worker_app.amqp.queues.select(queues)  # what `celery worker -Q ...` reads
    assert should_run(worker_app) is runs


@pytest.mark.django_db
def test_a_busy_dispatcher_queues_batches_and_each_event_is_processed_once(
    client, make_user, packages, fake_stripe, settings, monkeypatch
):
    from payments import webhooks
    from payments.tasks import process_webhook_events

    # As under load: a claim this large goes out in batches (here of at most two events).
    monkeypatch.setattr(webhooks, "SPREAD", 1)
    monkeypatch.setattr(webhooks, "BATCH_MAX", 2)
    users = [make_user() for _ in range(3)]
    with broker_at(settings, settings.CELERY_BROKER_URL) as queue:
        paid = [paid_checkout_event(client, u, packages["Basic"], fake_stripe) for u in users]
        broken = WebhookEvent.objects.create(
            provider="stripe",
            event_id="evt_unreadable",
            type="checkout.session.completed",
            normalized={"kind": "not-a-kind"},
            next_attempt_at=timezone.now(),
        )
        assert webhook_dispatch() == 4
        messages = queued(settings.CELERY_BROKER_URL, queue)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)

    pks = sorted([event.pk for _, event in paid] + [broken.pk])
    assert [task for task, _ in messages] == ["payments.tasks.process_webhook_events"] * 2
    assert sorted(pk for _, (batch,) in messages for pk in batch) == pks
    assert all(len(batch) == 2 for _, (batch,) in messages)
    # What a worker does with the messages, one of them delivered twice.
    outcomes = [process_webhook_events.apply(args=args).get() for _, args in messages]
    process_webhook_events.apply(args=messages[0][1])
    assert sorted(o for batch in outcomes for o in batch) == ["FAILED"] + ["PROCESSED"] * 3
    for (order, event), user in zip(paid, users):
        event.refresh_from_db()
        assert (event.status, event.attempts, event.next_attempt_at) == ("PROCESSED", 1, None)
        assert order_ledger_entries(order).count() == 1
        assert CreditBalance.objects.get(user=user).balance == 50
    broken.refresh_from_db()
    assert (broken.status, broken.attempts) == ("FAILED", 1)  # recorded, due again later
    assert "not-a-kind" in broken.last_error and broken.next_attempt_at > timezone.now()

    # Run by a worker (not in place), a failed attempt gets its own retry message.
    with broker_at(settings, settings.CELERY_BROKER_URL) as queue:
        assert process_webhook_events([broken.pk]) == ["FAILED"]
        retried = queued(settings.CELERY_BROKER_URL, queue)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)
    assert retried == [(TASK, [broken.pk, ""])]
    broken.refresh_from_db()
    assert (broken.status, broken.attempts) == ("FAILED", 2)


def test_messages_sent_together_wait_for_the_block_and_keep_their_order(settings):
    from core.queue import sent_together, task_send

    email_task = "accounts.tasks.send_outbound_email"
    with broker_at(settings, settings.CELERY_BROKER_URL) as queue:
        with sent_together():
            task_send(TASK, args=[1])
            task_send(email_task, args=[7])
            task_send(TASK, args=[2], countdown=30)
            task_send(TASK, args=[3])
            with sent_together():  # nested: sent with the outer block
                task_send(TASK, args=[4])
            assert queued(settings.CELERY_BROKER_URL, queue) == []
        messages = queued(settings.CELERY_BROKER_URL, queue)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)

    assert messages == [(TASK, [1]), (email_task, [7]), (TASK, [2]), (TASK, [3]), (TASK, [4])]
