"""Events whose processing message was lost are picked up again by the sweep."""

from datetime import timedelta

import pytest
from django.utils import timezone

from credits.models import CreditBalance
from payments.models import WebhookEvent
from payments.tasks import requeue_stuck_webhook_events
from payments.webhooks import webhook_ingest
from tests.payments.conftest import start_stripe_checkout

pytestmark = pytest.mark.django_db


def stored_without_processing(fake_stripe, payload: str) -> WebhookEvent:
    """Ingest as the view does, but the queued message never runs (the broker was down)."""
    result = webhook_ingest(provider_name="STRIPE", body=payload.encode(),
                            headers={"Stripe-Signature": fake_stripe.sign(payload)})
    return WebhookEvent.objects.get(pk=result.event_pk)


def test_the_sweep_requeues_events_stuck_in_received_for_over_a_minute(client, user, packages, fake_stripe):
    order = start_stripe_checkout(client, user, packages["Basic"])
    session = fake_stripe.pay(order.provider_order_id)
    stuck = stored_without_processing(fake_stripe, fake_stripe.event("checkout.session.completed", session))
    fresh = stored_without_processing(fake_stripe, fake_stripe.event("checkout.session.completed", session))
    WebhookEvent.objects.filter(pk=stuck.pk).update(received_at=timezone.now() - timedelta(minutes=2))
    WebhookEvent.objects.filter(pk=fresh.pk).update(received_at=timezone.now() - timedelta(seconds=20))

    assert requeue_stuck_webhook_events() == 1

    stuck.refresh_from_db()
    fresh.refresh_from_db()
    order.refresh_from_db()
    assert (stuck.status, fresh.status) == ("PROCESSED", "RECEIVED")
    assert order.status == "COMPLETED"
    assert CreditBalance.objects.get(user=user).balance == 50


def test_the_sweep_leaves_processed_failed_and_ignored_events_alone(fake_stripe):
    old = timezone.now() - timedelta(hours=1)
    for status in ("PROCESSED", "FAILED", "IGNORED"):
        WebhookEvent.objects.create(provider="STRIPE", event_id=f"evt_{status}", type="x", raw_body="{}",
                                    status=status)
    WebhookEvent.objects.update(received_at=old)

    assert requeue_stuck_webhook_events() == 0
    assert sorted(WebhookEvent.objects.values_list("status", flat=True)) == ["FAILED", "IGNORED", "PROCESSED"]


def test_the_sweep_is_scheduled_by_name():
    from django.conf import settings

    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "payments.tasks.requeue_stuck_webhook_events" in names
    assert requeue_stuck_webhook_events.name == "payments.tasks.requeue_stuck_webhook_events"
