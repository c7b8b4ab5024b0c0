"""The webhook path end to end with a real Celery worker process (no eager mode)."""

import re

import pytest
from django.test import Client

from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import Order, WebhookEvent
from payments.tasks import requeue_stuck_webhook_events
from payments.webhooks import webhook_ingest
from tests.conftest import wait_until
from tests.payments.conftest import event_id, post_stripe

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast_retries(monkeypatch, settings):
    """The worker reads its settings from the environment: retry after 1 s instead of 10 s."""
    monkeypatch.setenv("PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS", "1")
    settings.PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS = 1


def buy(user, package) -> Order:
    browser = Client()
    browser.force_login(user)
    assert browser.post("/billing/buy/", {"package": package.pk}).status_code == 303
    return Order.objects.get(user=user)


def test_a_worker_processes_a_delivered_event_once_and_duplicates_are_acknowledged(
    fake_stripe, fast_retries, user, packages, celery_worker_process
):
    order = buy(user, packages["Basic"])
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    stripe = Client()

    responses = [post_stripe(stripe, payload, fake=fake_stripe) for _ in range(3)]

    assert [r.json()["status"] for r in responses] == ["received", "duplicate", "duplicate"]
    wait_until(
        lambda: Order.objects.get(pk=order.pk).status == "COMPLETED",
        timeout=30,
        message=f"the worker to fulfil the order\n{celery_worker_process.log()[-2000:]}",
    )
    assert CreditBalance.objects.get(user=user).balance == 50
    assert order_ledger_entries(order).count() == 1
    event = WebhookEvent.objects.get(event_id=event_id(payload))
    assert (event.status, event.attempts) == ("PROCESSED", 1)
    assert "payments.tasks.process_webhook_event" in celery_worker_process.log()
    assert "webhook dispatcher started" in celery_worker_process.log()


def test_a_failed_attempt_is_recorded_and_retried_with_backoff(
    fake_stripe, fast_retries, user, packages, celery_worker_process
):
    order = buy(user, packages["Starter"])
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    fake_stripe.fail_next("GET", "/v1/checkout/sessions/", status=503)

    post_stripe(Client(), payload, fake=fake_stripe)

    event_row = lambda: WebhookEvent.objects.get(event_id=event_id(payload))  # noqa: E731
    wait_until(
        lambda: event_row().status == "PROCESSED",
        timeout=40,
        message=f"the retry to succeed\n{celery_worker_process.log()[-2000:]}",
    )
    event = event_row()
    assert event.attempts == 2 and "ProviderError" in celery_worker_process.log()
    assert CreditBalance.objects.get(user=user).balance == 10


def test_the_beat_sweep_runs_on_the_worker_and_queues_what_no_dispatcher_took(
    fake_stripe, user, packages, celery_worker_factory
):
    from datetime import timedelta

    from django.utils import timezone

    from payments.webhooks import SWEEP_GRACE

    # A worker without the dispatcher (as an older worker would run during a deploy).
    worker = celery_worker_factory({"PAYMENTS_WEBHOOK_DISPATCH_SECONDS": "0"})
    order = buy(user, packages["Basic"])
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    result = webhook_ingest(
        provider_name="STRIPE",
        body=payload.encode(),
        headers={"Stripe-Signature": fake_stripe.sign(payload)},
    )
    WebhookEvent.objects.filter(pk=result.event_pk).update(
        next_attempt_at=timezone.now() - SWEEP_GRACE - timedelta(seconds=1)
    )
    assert WebhookEvent.objects.get(pk=result.event_pk).status == "RECEIVED"
    assert "webhook dispatcher started" not in worker.log()

    requeue_stuck_webhook_events.delay()

    wait_until(
        lambda: Order.objects.get(pk=order.pk).status == "COMPLETED",
        timeout=30,
        message=f"the sweep to recover the event\n{worker.log()[-2000:]}",
    )
    assert WebhookEvent.objects.get(pk=result.event_pk).status == "PROCESSED"
    assert CreditBalance.objects.get(user=user).balance == 50
    assert "re-queued 1 overdue webhook events" in worker.log()


def test_a_paid_order_converges_after_the_worker_holding_its_retry_is_killed(
    fake_stripe, user, packages, celery_worker_factory, monkeypatch, settings
):
    # The retry waits 3 s in the worker's memory; the database makes the event overdue 1 s
    # later (the lease), and a dispatcher queues it again. Redis's visibility timeout (an
    # hour) never comes into it.
    for name, value in {
        "PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS": "3",
        "PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS": "1",
    }.items():
        monkeypatch.setenv(name, value)
        setattr(settings, name, int(value))
    first = celery_worker_factory()
    order = buy(user, packages["Basic"])
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    fake_stripe.fail_next("GET", "/v1/checkout/sessions/", status=500)

    post_stripe(Client(), payload, fake=fake_stripe)
    event_row = lambda: WebhookEvent.objects.get(event_id=event_id(payload))  # noqa: E731
    # The retry is held when the worker has received the task a second time (same task id).
    retry_held = lambda: (
        len(re.findall(r"process_webhook_event\[[\w-]+\] received", first.log())) >= 2
    )  # noqa: E731
    wait_until(
        lambda: event_row().status == "FAILED" and retry_held(),
        timeout=30,
        message=f"the first attempt to fail and its retry to wait in the worker\n{first.log()[-2000:]}",
    )
    first.kill()
    assert (event_row().attempts, Order.objects.get(pk=order.pk).status) == (1, "PENDING")

    second = celery_worker_factory()

    # The second worker's dispatcher queues the event again once its backoff and lease are
    # over; no sweep runs.
    wait_until(
        lambda: Order.objects.get(pk=order.pk).status == "COMPLETED",
        timeout=60,
        interval=0.2,
        message=f"the dispatcher to recover the event\n{second.log()[-2000:]}",
    )
    event = event_row()
    assert (event.status, event.attempts, event.next_attempt_at) == ("PROCESSED", 2, None)
    assert CreditBalance.objects.get(user=user).balance == 50
    assert order_ledger_entries(order).count() == 1
    assert "re-queued" not in second.log()
