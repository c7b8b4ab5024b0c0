"""Concurrent deliveries and return-page visits grant each order's credits exactly once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connections
from django.test import Client

from credits.models import CreditBalance
from payments.fulfilment import fetch_payment_status, fulfil_order
from payments.ledger import order_ledger_entries
from payments.models import Invoice, Order, WebhookEvent
from payments.orders import order_create, order_start_checkout

pytestmark = pytest.mark.django_db(transaction=True)


def new_order(user, package) -> Order:
    order = order_create(user=user, package=package, provider="STRIPE")
    order_start_checkout(
        order=order,
        success_url="http://testserver/s?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://testserver/c",
    )
    return Order.objects.get(pk=order.pk)


def run_together(*calls):
    """Run the calls in threads released at the same instant; return their results."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def post_webhook(url: str, payload: str, header: str):
    response = requests.post(
        f"{url}/webhooks/stripe/",
        data=payload.encode(),
        timeout=30,
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )
    return response.status_code, response.json().get("status")


def test_the_same_event_delivered_ten_times_at_once_grants_once(
    live_server, user, packages, fake_stripe
):
    order = new_order(user, packages["Basic"])
    payload = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
    )
    header = fake_stripe.sign(payload)

    results = run_together(*[lambda: post_webhook(live_server.url, payload, header)] * 10)

    assert sorted(results) == [(200, "duplicate")] * 9 + [(200, "received")]
    order.refresh_from_db()
    assert order.status == "COMPLETED"
    assert CreditBalance.objects.get(user=user).balance == 50
    assert order_ledger_entries(order).filter(kind="PURCHASE").count() == 1
    assert Invoice.objects.filter(order=order).count() == 1
    assert list(WebhookEvent.objects.values_list("status", flat=True)) == ["PROCESSED"]


def test_ten_different_events_for_one_payment_at_once_grant_once(
    live_server, user, packages, fake_stripe
):
    order = new_order(user, packages["Pro"])
    session = fake_stripe.pay(order.provider_order_id)
    payloads = [fake_stripe.event("checkout.session.completed", session) for _ in range(5)]
    payloads += [
        fake_stripe.event("checkout.session.async_payment_succeeded", session) for _ in range(5)
    ]

    results = run_together(
        *[(lambda p=p: post_webhook(live_server.url, p, fake_stripe.sign(p))) for p in payloads]
    )

    assert results == [(200, "received")] * 10
    assert CreditBalance.objects.get(user=user).balance == 150
    assert order_ledger_entries(order).count() == 1
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"PROCESSED"}


def test_the_webhook_and_the_return_page_racing_grant_once(
    live_server, make_user, packages, fake_stripe
):
    rounds = []
    for _ in range(4):
        buyer = make_user()
        order = new_order(buyer, packages["Basic"])
        payload = fake_stripe.event(
            "checkout.session.completed", fake_stripe.pay(order.provider_order_id)
        )
        browser = Client()
        browser.force_login(buyer)
        rounds.append((buyer, order, payload, browser))

    for buyer, order, payload, browser in rounds:
        page = f"/billing/orders/{order.pk}/success/?session_id={order.provider_order_id}"
        webhook, visit = run_together(
            lambda payload=payload: post_webhook(
                live_server.url, payload, fake_stripe.sign(payload)
            ),
            lambda browser=browser, page=page: browser.get(page),
        )
        assert webhook == (200, "received")
        assert visit.status_code == 200 and "50 credits added" in visit.content.decode()
        assert CreditBalance.objects.get(user=buyer).balance == 50
        assert order_ledger_entries(order).count() == 1
        assert Invoice.objects.filter(order=order).count() == 1


def test_invoices_fulfilled_at_once_get_consecutive_numbers(make_user, packages, fake_stripe):
    orders = [new_order(make_user(), packages["Starter"]) for _ in range(8)]
    for order in orders:
        fake_stripe.pay(order.provider_order_id)

    def fulfil(order):
        return lambda: fulfil_order(
            order_id=order.pk, status=fetch_payment_status(order=order), source="test"
        )

    run_together(*[fulfil(order) for order in orders])

    sequences = sorted(Invoice.objects.values_list("sequence", flat=True))
    assert sequences == list(range(sequences[0], sequences[0] + 8))
    assert Invoice.objects.values("number").distinct().count() == 8
