"""Buying with PayPal: the real paypal-server-sdk against a fake PayPal over HTTP."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from credits.models import CreditBalance
from payments.exceptions import ProviderError
from payments.ledger import order_ledger_entries
from payments.models import CreditPackage, Invoice, Order, WebhookEvent
from payments.providers.paypal import PayPalProvider
from payments.refunds import order_refund
from tests.payments.fake_paypal import demo_packages, fake_paypal  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_packages")]


def balance(user) -> int:
    return CreditBalance.objects.filter(user=user).values_list("balance", flat=True).first() or 0


def purchases(order) -> int:
    return order_ledger_entries(order).filter(kind="PURCHASE").count()


def start_checkout(client, user, package_name="Basic", **extra):
    client.force_login(user)
    package = CreditPackage.objects.get(name=package_name)
    response = client.post("/billing/buy/", {"package": package.pk, "provider": "PAYPAL", **extra})
    order = Order.objects.filter(user=user).latest("pk")
    return response, order


def return_from_paypal(client, order):
    return client.get(
        f"/billing/paypal/return/?token={order.provider_order_id}&PayerID=FAKEPAYER1234"
    )


def post_webhook(client, delivery):
    headers = {k: v for k, v in delivery.headers.items() if k != "Content-Type"}
    return client.post(
        "/webhooks/paypal/", data=delivery.body, content_type="application/json", headers=headers
    )


def test_buying_opens_a_paypal_order_for_the_server_side_price(client, user, fake_paypal):
    response, order = start_checkout(client, user, amount="0.01", credits="99999")

    assert response.status_code == 303
    paypal_order = fake_paypal.orders[order.provider_order_id]
    assert response["Location"] == f"{fake_paypal.url}/checkoutnow?token={order.provider_order_id}"
    unit = paypal_order["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "USD", "value": "9.99"}
    assert unit["custom_id"] == str(order.pk)
    assert unit["invoice_id"] == f"credits-order-{order.pk}"
    context = paypal_order["_experience"]
    assert context["return_url"] == "http://testserver/billing/paypal/return/"
    assert context["cancel_url"] == f"http://testserver/billing/orders/{order.pk}/cancel/"
    create = fake_paypal.calls_to("POST", r"^/v2/checkout/orders$")
    assert [c.headers.get("paypal-request-id") for c in create] == [f"order-{order.pk}-create"]
    assert (
        order.status == Order.Status.PENDING
        and order.credits == 50
        and order.amount == Decimal("9.99")
    )


def test_a_second_order_gets_its_own_invoice_id(client, user, fake_paypal):
    _, first = start_checkout(client, user)
    _, second = start_checkout(client, user)
    invoices = {o["purchase_units"][0]["invoice_id"] for o in fake_paypal.orders.values()}
    assert invoices == {f"credits-order-{first.pk}", f"credits-order-{second.pk}"}


def test_returning_from_paypal_captures_and_grants_once(client, user, fake_paypal):
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)

    response = return_from_paypal(client, order)
    assert response.status_code == 302
    assert response["Location"] == f"/billing/orders/{order.pk}/success/"
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    capture_id = next(iter(fake_paypal.captures))
    assert order.provider_payment_id == capture_id
    assert balance(user) == 50 and purchases(order) == 1
    assert Invoice.objects.get(order=order).amount_paid == Decimal("9.99")
    captures = fake_paypal.calls_to("POST", "/capture$")
    assert [c.headers.get("paypal-request-id") for c in captures] == [f"order-{order.pk}-capture"]

    # Reloading the return page (or the back button) changes nothing and asks PayPal nothing more.
    calls = len(fake_paypal.calls)
    assert return_from_paypal(client, order).status_code == 302
    assert len(fake_paypal.calls) == calls and balance(user) == 50 and purchases(order) == 1

    page = client.get(f"/billing/orders/{order.pk}/success/")
    assert b"50 credits added" in page.content


def test_a_pending_capture_waits_for_the_completed_webhook(
    client, user, fake_paypal, django_capture_on_commit_callbacks
):
    fake_paypal.capture_outcome = "PENDING"
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)

    return_from_paypal(client, order)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and balance(user) == 0
    assert b"Confirming your payment" in client.get(f"/billing/orders/{order.pk}/success/").content

    capture_id = next(iter(fake_paypal.captures))
    with django_capture_on_commit_callbacks(execute=True):
        pending = post_webhook(
            client,
            fake_paypal.sign(fake_paypal.capture_event("PAYMENT.CAPTURE.PENDING", capture_id)),
        )
    assert pending.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and balance(user) == 0

    fake_paypal.settle_capture(capture_id)
    completed = fake_paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", capture_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(client, fake_paypal.sign(completed)).status_code == 200
        # PayPal delivers again (a retry after a slow answer): acknowledged, not processed twice.
        again = post_webhook(client, fake_paypal.sign(completed))
    assert again.json()["status"] == "duplicate"
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert balance(user) == 50 and purchases(order) == 1
    assert (
        WebhookEvent.objects.get(event_id=completed["id"]).status == WebhookEvent.Status.PROCESSED
    )


def test_a_declined_capture_fails_the_order(client, user, fake_paypal):
    fake_paypal.capture_outcome = "DECLINED"
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)

    return_from_paypal(client, order)
    order.refresh_from_db()
    assert order.status == Order.Status.FAILED and balance(user) == 0
    assert b"did not go through" in client.get(f"/billing/orders/{order.pk}/success/").content


def test_a_declined_funding_source_sends_the_buyer_back_to_paypal(client, user, fake_paypal):
    fake_paypal.capture_outcome = "INSTRUMENT_DECLINED"
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)

    response = return_from_paypal(client, order)
    assert response.status_code == 302
    assert response["Location"] == f"{fake_paypal.url}/checkoutnow?token={order.provider_order_id}"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and balance(user) == 0


def test_the_approved_webhook_captures_when_the_buyer_never_returns(
    client, user, fake_paypal, django_capture_on_commit_callbacks
):
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)  # ...and the buyer closes the tab

    approved = fake_paypal.sign(
        fake_paypal.order_event("CHECKOUT.ORDER.APPROVED", order.provider_order_id)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(client, approved).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and balance(user) == 50
    assert len(fake_paypal.captures) == 1

    # The buyer comes back after all: nothing more is captured or granted.
    return_from_paypal(client, order)
    assert len(fake_paypal.captures) == 1 and balance(user) == 50 and purchases(order) == 1


@pytest.mark.django_db(transaction=True)
def test_the_return_page_racing_the_approved_webhook_grants_once(client, user, fake_paypal):
    from django.test import Client

    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)
    # Warm the certificate cache, so both sides reach PayPal within the same moment.
    post_webhook(
        Client(), fake_paypal.sign(fake_paypal.event("PAYMENT.PAYOUTSBATCH.SUCCESS", {"id": "x"}))
    )
    fake_paypal.capture_delay = 0.3  # both capture calls are in flight at PayPal at once

    approved = fake_paypal.sign(
        fake_paypal.order_event("CHECKOUT.ORDER.APPROVED", order.provider_order_id)
    )
    browser, paypal = Client(), Client()
    browser.force_login(user)
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def run(name, call):
        try:
            barrier.wait()
            results[name] = call().status_code
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    # The buyer comes back while PayPal delivers the webhook (processed in-request: tasks are eager).
    threads = [
        threading.Thread(target=run, args=("return", lambda: return_from_paypal(browser, order))),
        threading.Thread(target=run, args=("webhook", lambda: post_webhook(paypal, approved))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert results == {"return": 302, "webhook": 200}
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert (
        len(fake_paypal.calls_to("POST", "/capture$")) == 2
    )  # both really asked PayPal to capture
    assert len(fake_paypal.captures) == 1
    assert balance(user) == 50 and purchases(order) == 1
    assert Invoice.objects.filter(order=order).count() == 1
    assert (
        WebhookEvent.objects.get(event_id=approved.event["id"]).status
        == WebhookEvent.Status.PROCESSED
    )


def test_a_staff_refund_goes_through_paypal_once(
    client, user, staff_user, fake_paypal, django_capture_on_commit_callbacks
):
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)
    return_from_paypal(client, order)
    order.refresh_from_db()

    key = f"admin-refund:{order.pk}:1"
    order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Asked nicely",
        staff_user=staff_user,
        idempotency_key=key,
    )
    # A retry after a timeout with the same key: PayPal refunds nothing more.
    order_refund(
        order=order,
        amount=Decimal("5.00"),
        reason="Asked nicely",
        staff_user=staff_user,
        idempotency_key=key,
    )

    refunds = fake_paypal.calls_to("POST", "/refund$")
    assert [c.headers.get("paypal-request-id") for c in refunds] == [key]
    assert refunds[0].body["amount"] == {"currency_code": "USD", "value": "5.00"}
    assert len(fake_paypal.refunds) == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    assert order.amount_refunded == Decimal("5.00")
    assert balance(user) == 50 - 25  # 5.00 of 9.99 is 25 of the 50 credits

    # PayPal then reports the same refund by webhook: nothing is taken twice.
    refund = next(iter(fake_paypal.refunds.values()))
    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(
            client,
            fake_paypal.sign(
                fake_paypal.refund_event({k: v for k, v in refund.items() if not k.startswith("_")})
            ),
        )
    order.refresh_from_db()
    assert order.amount_refunded == Decimal("5.00") and balance(user) == 25


def test_paypal_errors_come_out_as_provider_errors(client, user, fake_paypal):
    fake_paypal.fail("POST", r"^/v2/checkout/orders$", status=500)
    response, order = start_checkout(client, user)
    assert response.status_code == 302 and response["Location"] == "/billing/pricing/"
    order.refresh_from_db()
    assert order.status == Order.Status.FAILED and order.provider_order_id is None

    provider = PayPalProvider()
    fake_paypal.fail("GET", "/v2/checkout/orders/", status=503)
    with pytest.raises(ProviderError) as unavailable:
        provider.fetch_order(provider_order_id="ABC")
    assert unavailable.value.retryable

    fake_paypal.capture_outcome = "INSTRUMENT_DECLINED"
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)
    with pytest.raises(ProviderError) as declined:
        provider.capture(provider_order_id=order.provider_order_id, idempotency_key="k")
    assert not declined.value.retryable and declined.value.code == "INSTRUMENT_DECLINED"


def test_wrong_credentials_are_not_retryable(settings, fake_paypal):
    settings.PAYPAL_CLIENT_SECRET = "not-the-secret"
    with pytest.raises(ProviderError) as refused:
        PayPalProvider().fetch_order(provider_order_id="ABC")
    assert not refused.value.retryable


def test_a_revoked_token_is_replaced_transparently(client, user, fake_paypal):
    _, order = start_checkout(client, user)
    fake_paypal.tokens.clear()  # PayPal revoked the token we cached

    snapshot = PayPalProvider().fetch_order(provider_order_id=order.provider_order_id)
    assert snapshot is not None and snapshot.custom_id == str(order.pk)
    assert len(fake_paypal.calls_to("POST", "/v1/oauth2/token")) == 2


def test_tokens_are_shared_not_fetched_per_call(client, user, fake_paypal):
    _, order = start_checkout(client, user)
    for _ in range(3):
        PayPalProvider().fetch_order(provider_order_id=order.provider_order_id)
    assert len(fake_paypal.calls_to("POST", "/v1/oauth2/token")) == 1


def test_another_users_paypal_token_is_not_found(client, user, make_user, fake_paypal):
    _, order = start_checkout(client, user)
    fake_paypal.approve(order.provider_order_id)
    client.force_login(make_user())
    assert return_from_paypal(client, order).status_code == 404
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and not fake_paypal.captures


def test_a_provider_not_configured_here_cannot_be_chosen(client, user, fake_paypal):
    client.force_login(user)
    package = CreditPackage.objects.get(name="Basic")
    response = client.post(
        "/billing/buy/", {"package": package.pk, "provider": "STRIPE"}, follow=True
    )
    assert not Order.objects.filter(user=user).exists()
    assert b"not one of the available choices" in response.content
    pricing = client.get("/billing/pricing/").content
    assert b'name="provider"' not in pricing  # PayPal alone: nothing to choose
