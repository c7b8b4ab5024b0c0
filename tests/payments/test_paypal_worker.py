"""The PayPal webhook path and auto top-up end to end with a real Celery worker process (no
eager tasks)."""

import pytest

from credits.models import CreditBalance
from credits.services import credits_spend
from payments.ledger import order_ledger_entries
from payments.models import AutoTopUpAttempt, CreditPackage, Order, WebhookEvent
from tests.conftest import wait_until
from tests.payments.fake_paypal import demo_packages, fake_paypal  # noqa: F401
from tests.payments.test_auto_topup import save_paypal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("demo_packages")]


def deliver(client, delivery, *, times: int) -> None:
    """Post one signed PayPal webhook ``times`` times, as PayPal's retries would."""
    headers = {k: v for k, v in delivery.headers.items() if k != "Content-Type"}
    for _ in range(times):
        response = client.post(
            "/webhooks/paypal/",
            data=delivery.body,
            content_type="application/json",
            headers=headers,
        )
        assert response.status_code == 200


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
    deliver(client, delivery, times=3)  # PayPal retries: stored once, processed once

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


def test_an_auto_top_up_from_a_saved_paypal_account_is_paid_through_a_real_worker_once(
    client, make_user, paypal_env, demo_packages, celery_worker_process
):
    """The spend's crossing queues the charge on commit; the worker creates the PayPal order
    with the saved vault id; the capture's webhook, delivered twice, grants nothing more."""
    fake = paypal_env
    user = make_user(credits=40)
    save_paypal(client, user, fake, demo_packages)
    credits_spend(user=user, amount=15, idempotency_key="job-1")  # 40 -> 25, below 30

    wait_until(
        lambda: AutoTopUpAttempt.objects.filter(user=user, status="SUCCEEDED").exists(),
        timeout=60,
        message=f"the worker to pay the top-up\n{celery_worker_process.log()[-3000:]}",
    )
    order = AutoTopUpAttempt.objects.get(user=user).order
    assert CreditBalance.objects.get(user=user).balance == 75
    (capture_id,) = fake.captures
    delivery = fake.sign(fake.capture_event("PAYMENT.CAPTURE.COMPLETED", capture_id))
    deliver(client, delivery, times=2)
    wait_until(
        lambda: WebhookEvent.objects.filter(
            event_id=delivery.event["id"], status__in=("PROCESSED", "IGNORED")
        ).exists(),
        timeout=60,
        message=f"the worker to process the webhook\n{celery_worker_process.log()[-3000:]}",
    )
    assert CreditBalance.objects.get(user=user).balance == 75
    assert order_ledger_entries(order).filter(kind="PURCHASE").count() == 1
    assert [
        c.headers["paypal-request-id"] for c in fake.calls_to("POST", r"^/v2/checkout/orders$")
    ] == [f"autotopup-{order.pk}"]
    assert "payments.tasks.run_auto_topup" in celery_worker_process.log()
