"""The database says which webhook events are due; the sweep queues every overdue one (the
fallback behind the workers' dispatcher, tests/payments/test_dispatch.py)."""

from datetime import timedelta

import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone

from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import Order, WebhookEvent
from payments.tasks import process_webhook_event, requeue_stuck_webhook_events
from payments.webhooks import SWEEP_GRACE, _lease, webhook_ingest
from tests.conftest import tasks_sent_to_queue
from tests.payments.conftest import paid_checkout_event, stored_without_processing

pytestmark = pytest.mark.django_db


def time_passes(*events: WebhookEvent) -> None:
    """Whatever each event waits for (its lease, its retry) is over, and so is the sweep's
    grace (the time it leaves a due event to the dispatcher)."""
    WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        next_attempt_at=timezone.now() - SWEEP_GRACE - timedelta(seconds=1)
    )


def test_the_sweep_requeues_every_overdue_event_received_or_failed(
    client, make_user, packages, fake_stripe
):
    first, second = make_user(), make_user()
    lost_order, lost = paid_checkout_event(client, first, packages["Basic"], fake_stripe)
    failed_order, failed = paid_checkout_event(client, second, packages["Starter"], fake_stripe)
    fake_stripe.fail_next("GET", "/v1/checkout/sessions/", status=500)
    process_webhook_event.delay(
        failed.pk
    )  # the provider answers 500; the retry was in a worker now gone
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (
        "FAILED",
        1,
    ) and "ProviderError" in failed.last_error
    assert failed.next_attempt_at > timezone.now()

    assert requeue_stuck_webhook_events() == 0  # the lost one is only just due; the other waits

    time_passes(lost, failed)
    assert requeue_stuck_webhook_events() == 2

    for event in (lost, failed):
        event.refresh_from_db()
        assert (event.status, event.next_attempt_at) == ("PROCESSED", None)
    assert (
        Order.objects.get(pk=lost_order.pk).status
        == Order.objects.get(pk=failed_order.pk).status
        == "COMPLETED"
    )
    assert CreditBalance.objects.get(user=first).balance == 50
    assert CreditBalance.objects.get(user=second).balance == 10
    assert requeue_stuck_webhook_events() == 0


def test_a_sweep_leases_what_it_queues_so_the_next_sweep_does_not_queue_it_again(
    client, user, packages, fake_stripe, settings
):
    _, event = paid_checkout_event(client, user, packages["Basic"], fake_stripe)
    time_passes(event)

    with tasks_sent_to_queue(settings, "test-sweep-lease") as queue:  # no worker reads it
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        assert requeue_stuck_webhook_events() == 1
        assert requeue_stuck_webhook_events() == 0
        assert broker.llen(queue) == 1
        broker.close()

    event.refresh_from_db()
    assert event.status == "RECEIVED"
    assert event.next_attempt_at > timezone.now() + timedelta(
        seconds=30
    )  # the lease (60 s by default)


def test_settled_and_given_up_events_are_never_due(
    client, make_user, packages, fake_stripe, settings
):
    settings.PAYMENTS_WEBHOOK_MAX_ATTEMPTS = 2
    _, processed = paid_checkout_event(client, make_user(), packages["Basic"], fake_stripe)
    process_webhook_event.delay(processed.pk)
    ignored = stored_without_processing(
        fake_stripe, fake_stripe.event("customer.created", {"id": "cus_1"})
    )
    process_webhook_event.delay(ignored.pk)
    _, given_up = paid_checkout_event(client, make_user(), packages["Starter"], fake_stripe)
    for _ in range(2):
        fake_stripe.fail_next("GET", "/v1/checkout/sessions/", status=500)
        process_webhook_event.delay(given_up.pk)

    rows = {row.pk: row for row in WebhookEvent.objects.all()}
    assert rows[processed.pk].status == "PROCESSED" and rows[ignored.pk].status == "IGNORED"
    # Out of attempts: FAILED with the error and no next attempt, which is what staff look for.
    assert (rows[given_up.pk].status, rows[given_up.pk].attempts) == ("FAILED", 2)
    assert "ProviderError" in rows[given_up.pk].last_error
    assert [row.next_attempt_at for row in rows.values()] == [None, None, None]

    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=3))
    assert requeue_stuck_webhook_events() == 0


def test_a_staff_replay_gives_a_given_up_event_fresh_attempts_and_makes_it_due(
    client, user, packages, fake_stripe, settings, django_capture_on_commit_callbacks
):
    from payments.webhooks import webhook_replay

    settings.PAYMENTS_WEBHOOK_MAX_ATTEMPTS = 1
    order, event = paid_checkout_event(client, user, packages["Basic"], fake_stripe)
    fake_stripe.fail_next("GET", "/v1/checkout/sessions/", status=500)
    process_webhook_event.delay(event.pk)
    event.refresh_from_db()
    assert (event.status, event.next_attempt_at) == ("FAILED", None)

    with django_capture_on_commit_callbacks() as queued:
        webhook_replay(event_pk=event.pk)
    event.refresh_from_db()
    # Due at once: a dispatcher queues it as it queues a new delivery.
    assert (event.status, event.attempts) == (
        "RECEIVED",
        0,
    ) and event.next_attempt_at <= timezone.now()

    queued[0]()  # with no broker (tasks run in place) it is processed on commit
    event.refresh_from_db()
    assert (event.status, event.attempts, event.next_attempt_at) == ("PROCESSED", 1, None)
    assert order_ledger_entries(order).count() == 1


def test_the_sweep_is_scheduled_by_name():
    from django.conf import settings

    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "payments.tasks.requeue_stuck_webhook_events" in names
    assert requeue_stuck_webhook_events.name == "payments.tasks.requeue_stuck_webhook_events"


def test_a_lease_or_backoff_under_a_second_is_refused_by_the_system_checks(settings):
    from django.core import checks

    settings.PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS = 0
    settings.PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS = 0

    errors = [e for e in checks.run_checks() if e.id == "payments.E010"]
    assert sorted(e.msg.split()[0] for e in errors) == [
        "PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS",
        "PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS",
    ]


def _commit_setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_lease_inside_a_callers_transaction_leaves_that_transaction_durable(
    client, make_user, packages, fake_stripe
):
    _order, event = paid_checkout_event(client, make_user(), packages["Basic"], fake_stripe)
    assert connection.in_atomic_block
    assert _lease(event.pk) is not None
    assert _commit_setting() == "on"  # the caller's commit still waits for the disk


@pytest.mark.django_db(transaction=True)
def test_a_lease_on_its_own_commits_and_changes_no_later_transaction(
    client, make_user, packages, fake_stripe
):
    _order, event = paid_checkout_event(client, make_user(), packages["Basic"], fake_stripe)
    # processed in place on commit (no broker here): due again, as a failed attempt leaves it
    WebhookEvent.objects.filter(pk=event.pk).update(status="FAILED", next_attempt_at=None)
    assert connection.get_autocommit() and not connection.in_atomic_block
    assert _lease(event.pk) is not None
    event.refresh_from_db()
    assert event.next_attempt_at > timezone.now()  # the lease is written
    assert _commit_setting() == "on"  # its setting ended with its own transaction
    with transaction.atomic():
        assert _commit_setting() == "on"
