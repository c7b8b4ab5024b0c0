"""One payment can be followed in the logs from the webhook request to the worker that fulfils it."""

import json

import pytest
from django.test import Client

from payments.models import Order, WebhookEvent
from tests.conftest import wait_until
from tests.payments.conftest import event_id, post_stripe
from tests.payments.test_worker import buy

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_logs_the_request_event_and_order_ids_of_a_payment_as_json(
    fake_stripe, user, packages, celery_worker_factory
):
    worker = celery_worker_factory(env={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"})
    order = buy(user, packages["Basic"])
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )

    response = post_stripe(Client(HTTP_X_REQUEST_ID="req-trail-42"), payload, fake=fake_stripe)

    assert response["X-Request-ID"] == "req-trail-42"
    wait_until(
        lambda: Order.objects.get(pk=order.pk).status == "COMPLETED",
        timeout=30,
        message=f"the worker to fulfil the order\n{worker.log()[-2000:]}",
    )
    event = WebhookEvent.objects.get(event_id=event_id(payload))
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    fulfilled = [
        line for line in lines if line["message"].startswith(f"order {order.pk} fulfilled")
    ]
    assert fulfilled, worker.log()[-2000:]
    assert fulfilled[0]["request_id"] == "req-trail-42"
    assert fulfilled[0]["webhook_event_id"] == event.event_id
    assert fulfilled[0]["order_id"] == str(order.pk)
