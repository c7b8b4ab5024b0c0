"""The PayPal webhook path end to end with a real Celery worker process (no eager tasks)."""

import pytest

from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import CreditPackage, Order, WebhookEvent
from tests.conftest import wait_until
from tests.payments.fake_paypal import demo_packages, fake_paypal  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("demo_packages")]


@pytest.fixture
def paypal_env(fake_paypal, monkeypatch):
    """The worker is another process: it reads PayPal's settings from the environment."""
    for name, value in fake_paypal.settings().items():
        monkeypatch.setenv(name, ",".join(value) if isinstance(value, list) else str(value))
    return fake_paypal


def test_a_pending_paypal_payment_completes_through_a_real_worker(
    client, user, paypal_env, celery_worker_process
):
    fake = paypal_env
    fake.capture_outcome = "PENDING"
    client.force_login(user)
    client.post(
        "/billing/buy/", {"package": CreditPackage.objects.get(name="Pro").pk, "provider": "PAYPAL"}
    )
    order = Order.objects.get(user=user)
    fake.approve(order.provider_order_id)
    client.get(f"/billing/paypal/return/?token={order.provider_order_id}&PayerID=X")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING

    capture_id = next(iter(fake.captures))
    fake.settle_capture(capture_id)
    delivery = fake.sign(fake.capture_event("PAYMENT.CAPTURE.COMPLETED", capture_id))
    headers = {k: v for k, v in delivery.headers.items() if k != "Content-Type"}
    for _ in range(3):  # PayPal retries: stored once, processed once
        response = client.post(
            "/webhooks/paypal/",
            data=delivery.body,
            content_type="application/json",
            headers=headers,
        )
        assert response.status_code == 200

    wait_until(
        lambda: Order.objects.get(pk=order.pk).status == Order.Status.COMPLETED,
        timeout=60,
        message=f"the worker to fulfil the order\n{celery_worker_process.log()[-3000:]}",
    )
    event = WebhookEvent.objects.get(provider="PAYPAL", event_id=delivery.event["id"])
    assert event.status == WebhookEvent.Status.PROCESSED and event.attempts == 1
    assert CreditBalance.objects.get(user=user).balance == 150
    assert order_ledger_entries(order).filter(kind="PURCHASE").count() == 1
    assert "payments.tasks.process_webhook_event" in celery_worker_process.log()
