"""Stripe events move orders to the right state, whatever order they arrive in."""

from decimal import Decimal

import pytest

from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import Invoice, WebhookEvent
from tests.payments.conftest import event_id, start_stripe_checkout

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


@pytest.fixture
def order(client, user, packages, fake_stripe):
    order = start_stripe_checkout(client, user, packages["Basic"])
    client.logout()
    return order


def test_a_paid_checkout_grants_the_credits_once_and_issues_an_invoice(order, fake_stripe, deliver):
    session = fake_stripe.pay(order.provider_order_id)
    payload = fake_stripe.event("checkout.session.completed", session)

    first = deliver(payload)
    second = deliver(payload)

    assert first.json()["status"] == "received" and second.json()["status"] == "duplicate"
    order.refresh_from_db()
    assert order.status == "COMPLETED" and order.completed_at is not None
    assert order.provider_payment_id == session["payment_intent"]
    assert balance(order.user) == 50
    [entry] = order_ledger_entries(order)
    assert (entry.kind, entry.amount, entry.idempotency_key) == (
        "PURCHASE",
        50,
        f"order:{order.pk}:purchase",
    )
    invoice = Invoice.objects.get(order=order)
    assert invoice.number == f"INV-{invoice.paid_at.year}-{invoice.sequence:06d}"
    assert (invoice.amount_paid, invoice.currency, invoice.status) == (
        Decimal("9.99"),
        "USD",
        "PAID",
    )
    event = WebhookEvent.objects.get(event_id=event_id(payload))
    assert (event.status, event.attempts, event.order_id, event.signature_valid) == (
        "PROCESSED",
        1,
        order.pk,
        True,
    )
    assert event.headers["stripe-signature"].startswith("t=")


def test_a_delayed_payment_waits_then_completes_when_it_settles(order, fake_stripe, deliver):
    session = fake_stripe.pay(order.provider_order_id, payment_status="unpaid")
    deliver(fake_stripe.event("checkout.session.completed", session))
    order.refresh_from_db()
    assert order.status == "PENDING" and balance(order.user) == 0

    settled = fake_stripe.settle(order.provider_order_id)
    deliver(fake_stripe.event("checkout.session.async_payment_succeeded", settled))

    order.refresh_from_db()
    assert order.status == "COMPLETED" and balance(order.user) == 50


def test_a_delayed_payment_that_fails_fails_the_order(order, fake_stripe, deliver):
    session = fake_stripe.pay(order.provider_order_id, payment_status="unpaid")
    deliver(fake_stripe.event("checkout.session.completed", session))

    failed = fake_stripe.settle(order.provider_order_id, succeeded=False)
    deliver(fake_stripe.event("checkout.session.async_payment_failed", failed))

    order.refresh_from_db()
    assert order.status == "FAILED" and balance(order.user) == 0
    assert not Invoice.objects.filter(order=order).exists()


def test_an_expired_session_expires_the_order(order, fake_stripe, deliver):
    deliver(
        fake_stripe.event("checkout.session.expired", fake_stripe.expire(order.provider_order_id))
    )

    order.refresh_from_db()
    assert order.status == "EXPIRED" and balance(order.user) == 0


def test_a_completion_arriving_after_the_expiry_still_fulfils(order, fake_stripe, deliver):
    expired_snapshot = dict(fake_stripe.sessions[order.provider_order_id], status="expired")
    completed = fake_stripe.pay(order.provider_order_id)
    # Stripe sends the events in the "wrong" order: the expiry snapshot lands first.
    deliver(fake_stripe.event("checkout.session.expired", expired_snapshot))
    order.refresh_from_db()
    assert order.status == "COMPLETED", "the pipeline re-fetched the session and saw it paid"

    deliver(fake_stripe.event("checkout.session.completed", completed))
    order.refresh_from_db()
    assert order.status == "COMPLETED" and balance(order.user) == 50


def test_an_order_that_really_expired_completes_when_a_late_payment_arrives(
    order, fake_stripe, deliver
):
    deliver(
        fake_stripe.event("checkout.session.expired", fake_stripe.expire(order.provider_order_id))
    )
    order.refresh_from_db()
    assert order.status == "EXPIRED"

    # A payment the provider reports after all (it says paid, so the money is ours).
    completed = fake_stripe.pay(order.provider_order_id)
    deliver(fake_stripe.event("checkout.session.completed", completed))

    order.refresh_from_db()
    assert order.status == "COMPLETED" and balance(order.user) == 50


def test_a_payment_for_a_different_amount_is_refused_and_recorded(
    order, fake_stripe, deliver, caplog
):
    session = fake_stripe.pay(order.provider_order_id, amount_total=1)
    payload = fake_stripe.event("checkout.session.completed", session)

    response = deliver(payload)

    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == "PENDING" and balance(order.user) == 0
    event = WebhookEvent.objects.get(event_id=event_id(payload))
    assert event.status == "FAILED" and "paid 0.01 but the order is for 9.99" in event.last_error
    assert "does not match" in caplog.text


def test_an_event_about_someone_elses_checkout_is_stored_and_ignored(
    fake_stripe, deliver, packages
):
    stranger = {
        "id": "cs_test_unknown",
        "object": "checkout.session",
        "client_reference_id": None,
        "payment_status": "paid",
        "status": "complete",
        "amount_total": 500,
        "currency": "usd",
    }
    payload = fake_stripe.event("checkout.session.completed", stranger)

    assert deliver(payload).status_code == 200
    assert WebhookEvent.objects.get(event_id=event_id(payload)).status == "IGNORED"


def test_an_unknown_event_type_is_stored_as_ignored(fake_stripe, deliver):
    payload = fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"})

    assert deliver(payload).status_code == 200
    event = WebhookEvent.objects.get(event_id=event_id(payload))
    assert (event.status, event.type) == ("IGNORED", "customer.created")


def test_when_stripe_cannot_be_asked_the_event_fails_with_the_error_and_nothing_is_granted(
    order, fake_stripe, deliver
):
    session = fake_stripe.pay(order.provider_order_id)
    payload = fake_stripe.event("checkout.session.completed", session)
    for _ in range(10):
        fake_stripe.fail_next("GET", "/v1/checkout/sessions/", status=500)

    assert deliver(payload).status_code == 200

    event = WebhookEvent.objects.get(event_id=event_id(payload))
    assert event.status == "FAILED" and event.attempts >= 1 and "ProviderError" in event.last_error
    order.refresh_from_db()
    assert order.status == "PENDING" and balance(order.user) == 0


def test_the_success_page_fulfils_without_waiting_for_the_webhook(client, order, fake_stripe):
    fake_stripe.pay(order.provider_order_id)
    client.force_login(order.user)

    page = client.get(f"/billing/orders/{order.pk}/success/?session_id={order.provider_order_id}")

    assert page.status_code == 200
    text = page.content.decode()
    assert "50 credits added" in text and "View invoice INV-" in text
    order.refresh_from_db()
    assert order.status == "COMPLETED" and balance(order.user) == 50


def test_the_success_page_shows_a_waiting_state_that_polls_until_paid(client, order, fake_stripe):
    client.force_login(order.user)

    waiting = client.get(f"/billing/orders/{order.pk}/success/").content.decode()
    assert "Confirming your payment" in waiting and 'hx-trigger="every 1s"' in waiting

    fake_stripe.pay(order.provider_order_id)
    from django.core.cache import cache

    cache.delete(f"payments:status-check:{order.pk}")
    fragment = client.get(f"/billing/orders/{order.pk}/status/").content.decode()
    assert "50 credits added" in fragment and "hx-trigger" not in fragment
    assert 'hx-swap-oob="outerHTML:.balance-pill"' in fragment
    assert 'data-testid="header-balance">50 credits<' in fragment


def test_order_pages_belong_to_their_owner(client, order, make_user, fake_stripe):
    fake_stripe.pay(order.provider_order_id)
    client.force_login(order.user)
    client.get(f"/billing/orders/{order.pk}/success/")
    number = Invoice.objects.get(order=order).number

    client.force_login(make_user())
    for url in (
        f"/billing/orders/{order.pk}/success/",
        f"/billing/orders/{order.pk}/status/",
        f"/billing/orders/{order.pk}/cancel/",
        f"/billing/invoices/{number}/",
    ):
        assert client.get(url).status_code == 404, url
    assert f"#{order.pk}" not in client.get("/billing/orders/").content.decode()


def test_invoice_numbers_follow_the_years_counter_past_six_digits(paid_order, make_user):
    from django.utils import timezone

    from payments.models import InvoiceSequence

    first = Invoice.objects.get(order=paid_order())
    year = timezone.now().year
    assert first.number == f"INV-{year}-{first.sequence:06d}"
    InvoiceSequence.objects.filter(year=year).update(last=999_999)

    second = Invoice.objects.get(order=paid_order(buyer=make_user()))
    third = Invoice.objects.get(order=paid_order(buyer=make_user()))

    assert (second.sequence, second.number) == (1_000_000, f"INV-{year}-1000000")
    assert (third.sequence, third.number) == (1_000_001, f"INV-{year}-1000001")
    assert InvoiceSequence.objects.get(year=year).last == 1_000_001
