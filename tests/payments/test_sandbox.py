"""The offline sandbox provider: its own checkout page, signed webhooks, local refunds."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import OutboundEmail
from credits.models import CreditBalance
from payments.models import Order, SandboxPayment, WebhookEvent
from payments.providers import available_providers
from payments.providers.sandbox import event_body, sandbox_deliver, sandbox_finish, sign
from payments.refunds import order_refund
from payments.webhooks import webhook_ingest, webhook_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def checkout(client, user, packages, sandbox_only):
    """A signed-in buyer at the sandbox's checkout page for the Basic pack."""
    client.force_login(user)
    response = client.post("/billing/buy/", {"package": packages["Basic"].pk})
    assert response.status_code == 303
    assert response["Location"].startswith("/billing/sandbox/checkout/")
    return Order.objects.get(user=user), response["Location"]


def press(client, url, action, capture):
    with capture(execute=True):
        return client.post(url, {"action": action})


def test_the_sandbox_is_what_buyers_get_when_no_provider_is_configured(sandbox_only, settings):
    assert available_providers() == ["SANDBOX"]
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    assert available_providers() == ["STRIPE"]
    settings.PAYPAL_CLIENT_ID, settings.PAYPAL_CLIENT_SECRET = "id", "secret"
    assert available_providers() == ["STRIPE", "PAYPAL"]


def test_the_sandbox_stands_in_only_where_it_is_enabled(sandbox_only, settings, monkeypatch):
    monkeypatch.delenv("PAYMENTS_SANDBOX_ENABLED", raising=False)
    del settings.PAYMENTS_SANDBOX_ENABLED  # the default: on with DEBUG, off without
    settings.DEBUG = True
    assert available_providers() == ["SANDBOX"]
    settings.DEBUG = False
    assert available_providers() == []
    settings.PAYMENTS_SANDBOX_ENABLED = True
    assert available_providers() == ["SANDBOX"]
    settings.DEBUG, settings.PAYMENTS_SANDBOX_ENABLED = True, False
    assert available_providers() == []


def test_paying_on_the_sandbox_page_sends_a_signed_webhook_that_fulfils(
    client, checkout, django_capture_on_commit_callbacks
):
    order, url = checkout
    page = client.get(url).content.decode()
    assert "$9.99" in page and "Basic: 50 credits" in page

    response = press(client, url, "pay", django_capture_on_commit_callbacks)

    assert response.status_code == 303
    assert (
        response["Location"]
        == f"http://testserver/billing/orders/{order.pk}/success/?session_id={order.provider_order_id}"
    )
    order.refresh_from_db()
    assert order.status == "COMPLETED" and order.provider_payment_id.startswith("sbx_pi_")
    assert CreditBalance.objects.get(user=order.user).balance == 50
    event = WebhookEvent.objects.get()
    assert (event.provider, event.type, event.status) == ("SANDBOX", "checkout.paid", "PROCESSED")
    assert event.headers["sandbox-signature"].startswith("t=")
    assert "50 credits added" in client.get(response["Location"]).content.decode()


def test_a_declined_card_fails_the_order(client, checkout, django_capture_on_commit_callbacks):
    order, url = checkout

    response = press(client, url, "fail", django_capture_on_commit_callbacks)

    order.refresh_from_db()
    assert order.status == "FAILED"
    assert "The payment did not go through" in client.get(response["Location"]).content.decode()
    assert CreditBalance.objects.get(user=order.user).balance == 0


def test_cancelling_returns_to_the_cancel_page_and_closes_the_order(
    client, checkout, django_capture_on_commit_callbacks
):
    order, url = checkout

    response = press(client, url, "cancel", django_capture_on_commit_callbacks)

    assert response["Location"].endswith(f"/billing/orders/{order.pk}/cancel/")
    assert "Nothing was charged" in client.get(response["Location"]).content.decode()
    order.refresh_from_db()
    assert order.status == "CANCELLED"
    assert WebhookEvent.objects.get().type == "checkout.canceled"
    orders = client.get("/billing/orders/").content.decode()
    assert ">Cancelled<" in orders and "Expired" not in orders


def test_pressing_pay_twice_pays_once(client, checkout, django_capture_on_commit_callbacks):
    order, url = checkout

    press(client, url, "pay", django_capture_on_commit_callbacks)
    second = press(client, url, "pay", django_capture_on_commit_callbacks)

    assert second.status_code == 303
    assert WebhookEvent.objects.count() == 1
    assert CreditBalance.objects.get(user=order.user).balance == 50


def test_an_unknown_action_is_refused_and_changes_nothing(client, checkout):
    order, url = checkout

    response = client.post(url, {"action": "steal"})

    assert (
        response.status_code == 400 and "Choose Pay, Fail or Cancel." in response.content.decode()
    )
    assert SandboxPayment.objects.get().status == "open"


def test_a_forged_sandbox_webhook_is_refused(client, checkout):
    order, _ = checkout
    body = json.dumps(
        {
            "id": "evt_forged",
            "type": "checkout.paid",
            "data": {
                "order_ref": str(order.pk),
                "checkout_id": order.provider_order_id,
                "amount": "9.99",
                "currency": "USD",
            },
        }
    ).encode()

    forged = client.post(
        "/webhooks/sandbox/",
        data=body,
        content_type="application/json",
        HTTP_SANDBOX_SIGNATURE=sign(body, secret="not-the-secret"),
    )
    unsigned = client.post("/webhooks/sandbox/", data=body, content_type="application/json")
    stale = client.post(
        "/webhooks/sandbox/",
        data=body,
        content_type="application/json",
        HTTP_SANDBOX_SIGNATURE=sign(body, timestamp=1_000_000_000),
    )

    assert [r.status_code for r in (forged, unsigned, stale)] == [400, 400, 400]
    assert "Invalid signature" in forged.json()["error"] and "Stale" in stale.json()["error"]
    assert not WebhookEvent.objects.exists()
    order.refresh_from_db()
    assert order.status == "PENDING"


def test_a_genuine_webhook_for_an_unpaid_checkout_does_not_fulfil(
    client, checkout, django_capture_on_commit_callbacks
):
    """Even correctly signed, a 'paid' event is checked against the provider's own record."""
    order, _ = checkout
    payment = SandboxPayment.objects.get()
    body = json.dumps(
        {
            "id": "evt_replayed",
            "type": "checkout.paid",
            "data": {
                "order_ref": str(order.pk),
                "checkout_id": payment.checkout_id,
                "payment_id": payment.payment_id,
                "amount": "9.99",
                "currency": "USD",
            },
        }
    ).encode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/webhooks/sandbox/",
            data=body,
            content_type="application/json",
            HTTP_SANDBOX_SIGNATURE=sign(body),
        )

    order.refresh_from_db()
    assert order.status == "PENDING"
    assert WebhookEvent.objects.get().status == "FAILED"


def test_sandbox_refunds_succeed_locally_and_claw_back(
    client, checkout, make_user, django_capture_on_commit_callbacks
):
    order, url = checkout
    press(client, url, "pay", django_capture_on_commit_callbacks)
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="refund_order"))
    staff = type(staff).objects.get(pk=staff.pk)

    order = order_refund(
        order=Order.objects.get(pk=order.pk),
        amount=Decimal("9.99"),
        reason="Test refund",
        staff_user=staff,
        idempotency_key="sbx-refund-1",
    )

    assert (order.status, order.credits_clawed_back) == ("REFUNDED", 50)
    assert SandboxPayment.objects.get().amount_refunded == Decimal("9.99")
    assert CreditBalance.objects.get(user=order.user).balance == 0


def test_the_sandbox_checkout_page_is_gone_when_a_real_provider_is_configured(
    client, checkout, settings
):
    _, url = checkout
    settings.STRIPE_SECRET_KEY = "sk_live_something"

    assert client.get(url).status_code == 404
    assert client.post(url, {"action": "pay"}).status_code == 404
    assert SandboxPayment.objects.get().status == "open"


def test_delivery_falls_back_in_process_when_the_app_cannot_be_reached(
    checkout, django_capture_on_commit_callbacks
):
    order, _ = checkout
    payment = SandboxPayment.objects.get()
    SandboxPayment.objects.filter(pk=payment.pk).update(status="paid")
    payment.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        how = sandbox_deliver(payment=payment, webhook_url="http://127.0.0.1:9/webhooks/sandbox/")

    assert how == "in-process"
    order.refresh_from_db()
    assert order.status == "COMPLETED"


@pytest.mark.django_db(transaction=True)
def test_delivery_goes_over_http_when_the_app_is_reachable(
    live_server, user, packages, sandbox_only
):
    from payments.orders import order_create, order_start_checkout

    order = order_create(user=user, package=packages["Starter"], provider="SANDBOX")
    order_start_checkout(order=order, success_url="http://x/s", cancel_url="http://x/c")
    payment = SandboxPayment.objects.get()
    SandboxPayment.objects.filter(pk=payment.pk).update(status="paid")
    payment.refresh_from_db()

    how = sandbox_deliver(payment=payment, webhook_url=f"{live_server.url}/webhooks/sandbox/")

    assert how == "http"
    order.refresh_from_db()
    assert order.status == "COMPLETED"
    assert CreditBalance.objects.get(user=user).balance == 10


def test_a_paid_checkout_event_is_processed_in_a_fixed_handful_of_statements(
    checkout, django_capture_on_commit_callbacks
):
    """Lease and read the event, find the order, ask the provider; then, in one transaction:
    lock the event, lock the order (reading the buyer, the billing profile and what goes with
    the order along), grant (the balance row's lock and the movement, sent together), save
    the order and the buyer, number and store the invoice, store the receipt, settle the
    event. The receipt's PDF is drawn when it is sent."""
    order, _ = checkout
    payment = SandboxPayment.objects.get(order_ref=str(order.pk))
    sandbox_finish(token=payment.token, outcome="paid")
    body = event_body(SandboxPayment.objects.get(pk=payment.pk), "checkout.paid")
    with django_capture_on_commit_callbacks(execute=False):
        event = webhook_ingest(
            provider_name="SANDBOX", body=body, headers={"Sandbox-Signature": sign(body)}
        )

    with CaptureQueriesContext(connection) as statements:
        assert webhook_process(event_pk=event.event_pk) == "PROCESSED"

    sql = [query["sql"] for query in statements.captured_queries]
    # The grant's savepoint and the savepoint standing in for the transaction in this test.
    work = [s for s in sql if "SAVEPOINT" not in s]
    assert len(work) <= 13, "\n".join(work)
    receipt = OutboundEmail.objects.get(kind="receipt")
    assert receipt.attachments == [
        {
            "filename": f"{order.invoice.number}.pdf",
            "mimetype": "application/pdf",
            "renderer": "payments.invoice_pdf",
            "key": order.invoice.number,
        }
    ]
