"""The webhook path end to end with a real Celery worker process (no eager mode)."""

import pytest
from django.test import Client

from credits.models import CreditBalance, LedgerEntry
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
        fake_stripe, fast_retries, user, packages, celery_worker_process):
    order = buy(user, packages["Basic"])
    payload = fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    stripe = Client()

    responses = [post_stripe(stripe, payload, fake=fake_stripe) for _ in range(3)]

    assert [r.json()["status"] for r in responses] == ["received", "duplicate", "duplicate"]
    wait_until(lambda: Order.objects.get(pk=order.pk).status == "COMPLETED", timeout=30,
               message=f"the worker to fulfil the order\n{celery_worker_process.log()[-2000:]}")
    assert CreditBalance.objects.get(user=user).balance == 50
    assert LedgerEntry.objects.filter(order=order).count() == 1
    event = WebhookEvent.objects.get(event_id=event_id(payload))
    assert (event.status, event.attempts) == ("PROCESSED", 1)
    assert "payments.tasks.process_webhook_event" in celery_worker_process.log()


def test_a_failed_attempt_is_recorded_and_retried_with_backoff(fake_stripe, fast_retries, user, packages,
                                                               celery_worker_process):
    order = buy(user, packages["Starter"])
    payload = fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    fake_stripe.fail_next("GET", "/v1/checkout/sessions/", status=503)

    post_stripe(Client(), payload, fake=fake_stripe)

    event_row = lambda: WebhookEvent.objects.get(event_id=event_id(payload))  # noqa: E731
    wait_until(lambda: event_row().status == "PROCESSED", timeout=40,
               message=f"the retry to succeed\n{celery_worker_process.log()[-2000:]}")
    event = event_row()
    assert event.attempts == 2 and "ProviderError" in celery_worker_process.log()
    assert CreditBalance.objects.get(user=user).balance == 10


def test_the_beat_sweep_runs_on_the_worker_and_recovers_a_lost_message(fake_stripe, user, packages,
                                                                        celery_worker_process):
    from datetime import timedelta

    from django.utils import timezone

    order = buy(user, packages["Basic"])
    payload = fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    # Stored as the view stores it, but the processing message is lost (broker restarted).
    from django.db import transaction

    with transaction.atomic():
        result = webhook_ingest(provider_name="STRIPE", body=payload.encode(),
                                headers={"Stripe-Signature": fake_stripe.sign(payload)})
        transaction.get_connection().run_on_commit.clear()
    WebhookEvent.objects.filter(pk=result.event_pk).update(received_at=timezone.now() - timedelta(minutes=5))
    assert WebhookEvent.objects.get(pk=result.event_pk).status == "RECEIVED"

    requeue_stuck_webhook_events.delay()

    wait_until(lambda: Order.objects.get(pk=order.pk).status == "COMPLETED", timeout=30,
               message=f"the sweep to recover the event\n{celery_worker_process.log()[-2000:]}")
    assert WebhookEvent.objects.get(pk=result.event_pk).status == "PROCESSED"
    assert CreditBalance.objects.get(user=user).balance == 50
