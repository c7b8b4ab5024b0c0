"""Webhooks that are not genuinely Stripe's are refused with a reason and change nothing."""

import json
import time

import pytest

from credits.models import CreditBalance
from payments.ledger import order_ledger_entries
from payments.models import Order, WebhookEvent
from tests.payments.conftest import post_stripe, start_stripe_checkout

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_checkout(client, user, packages, fake_stripe):
    order = start_stripe_checkout(client, user, packages["Basic"])
    session = fake_stripe.pay(order.provider_order_id)
    client.logout()
    return order, fake_stripe.event("checkout.session.completed", session)


def assert_nothing_happened(order):
    order.refresh_from_db()
    assert order.status == "PENDING"
    assert not WebhookEvent.objects.exists()
    assert not order_ledger_entries(order).exists()
    assert CreditBalance.objects.filter(user=order.user, balance__gt=0).count() == 0


def test_a_genuine_signature_is_accepted(paid_checkout, deliver):
    order, payload = paid_checkout

    response = deliver(payload)

    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert order.status == "COMPLETED"


def test_a_forged_signature_is_refused(client, paid_checkout, fake_stripe):
    order, payload = paid_checkout

    response = post_stripe(
        client, payload, header=fake_stripe.sign(payload, secret="whsec_attacker"), fake=fake_stripe
    )

    assert response.status_code == 400
    assert "Invalid signature" in response.json()["error"]
    assert_nothing_happened(order)


def test_a_tampered_body_is_refused(client, paid_checkout, fake_stripe):
    order, payload = paid_checkout
    header = fake_stripe.sign(payload)
    tampered = json.loads(payload)
    tampered["data"]["object"]["amount_total"] = 1
    tampered = json.dumps(tampered)

    response = post_stripe(client, tampered, header=header, fake=fake_stripe)

    assert response.status_code == 400
    assert "Invalid signature" in response.json()["error"]
    assert_nothing_happened(order)


def test_a_stale_signature_is_refused(client, paid_checkout, fake_stripe):
    order, payload = paid_checkout

    old = fake_stripe.sign(payload, timestamp=int(time.time()) - 3600)
    response = post_stripe(client, payload, header=old, fake=fake_stripe)

    assert response.status_code == 400
    assert "Timestamp outside the tolerance zone" in response.json()["error"]
    assert_nothing_happened(order)


def test_an_unsigned_delivery_is_refused(client, paid_checkout, fake_stripe):
    order, payload = paid_checkout

    response = post_stripe(client, payload, signed=False, fake=fake_stripe)

    assert response.status_code == 400
    assert response.json()["error"] == "Missing Stripe-Signature header."
    assert_nothing_happened(order)


def test_a_garbage_signature_header_is_refused(client, paid_checkout, fake_stripe):
    order, payload = paid_checkout

    response = post_stripe(client, payload, header="t=abc,v1=", fake=fake_stripe)

    assert response.status_code == 400
    assert_nothing_happened(order)


def test_the_webhook_endpoint_takes_only_post_and_needs_no_csrf_token(paid_checkout, fake_stripe):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    order, payload = paid_checkout

    assert strict.get("/webhooks/stripe/").status_code == 405
    assert post_stripe(strict, payload, fake=fake_stripe).status_code == 200


def test_the_sandbox_endpoint_is_closed_while_a_real_provider_is_configured(client, fake_stripe):
    from payments.providers.sandbox import sign

    body = json.dumps({"id": "evt_x", "type": "checkout.paid", "data": {"order_ref": "1"}}).encode()
    response = client.post(
        "/webhooks/sandbox/",
        data=body,
        content_type="application/json",
        HTTP_SANDBOX_SIGNATURE=sign(body),
    )

    assert response.status_code == 404
    assert not WebhookEvent.objects.exists()
    assert not Order.objects.exists()
