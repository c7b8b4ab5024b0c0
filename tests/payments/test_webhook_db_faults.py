"""A database fault during webhook processing is recorded on the event and retried."""

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import Order, WebhookEvent
from payments.webhooks import WebhookRetry, webhook_ingest, webhook_process
from tests.conftest import test_database_url
from tests.payments.conftest import start_stripe_checkout

pytestmark = pytest.mark.django_db(transaction=True)


def paid_checkout_event(client, user, package, fake_stripe) -> tuple[Order, WebhookEvent]:
    """A paid checkout whose webhook is stored; its processing message never runs."""
    order = start_stripe_checkout(client, user, package)
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    with transaction.atomic():
        result = webhook_ingest(
            provider_name="STRIPE",
            body=payload.encode(),
            headers={"Stripe-Signature": fake_stripe.sign(payload)},
        )
        transaction.get_connection().run_on_commit.clear()
    return order, WebhookEvent.objects.get(pk=result.event_pk)


def terminate_backend_of_this_process() -> None:
    """The database server ends this process's connection (as a restart or failover would)."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(test_database_url(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]


def test_a_lost_database_connection_on_the_first_query_is_recorded_and_retried(
    client, user, packages, fake_stripe
):
    order, event = paid_checkout_event(client, user, packages["Basic"], fake_stripe)
    terminate_backend_of_this_process()

    with pytest.raises(WebhookRetry):
        webhook_process(event_pk=event.pk)

    event.refresh_from_db()
    assert (event.status, event.attempts) == ("FAILED", 1)
    assert "OperationalError" in event.last_error
    assert event.next_attempt_at > timezone.now()
    assert Order.objects.get(pk=order.pk).status == "PENDING"

    assert webhook_process(event_pk=event.pk) == "PROCESSED"  # the retry
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error, event.next_attempt_at) == (
        "PROCESSED",
        2,
        "",
        None,
    )
    assert Order.objects.get(pk=order.pk).status == "COMPLETED"
    assert CreditBalance.objects.get(user=user).balance == 50
    assert order_ledger_entries(order).count() == 1


def test_a_failure_the_database_could_not_take_is_recorded_by_the_next_attempt(
    client, user, packages, fake_stripe
):
    order, event = paid_checkout_event(client, user, packages["Basic"], fake_stripe)

    assert (
        webhook_process(
            event_pk=event.pk, unrecorded_error="OperationalError: the server went away"
        )
        == "PROCESSED"
    )

    event.refresh_from_db()
    assert (event.status, event.attempts) == ("PROCESSED", 2)
    assert Order.objects.get(pk=order.pk).status == "COMPLETED"
