"""PayPal webhooks at /webhooks/paypal/: our own signature check, then the shared pipeline."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from credits.models import CreditBalance, LedgerEntry
from payments.models import CreditPackage, Order, WebhookEvent
from payments.paypal_webhooks import signed_message
from tests.payments.fake_paypal import (  # noqa: F401
    FakePayPal,
    demo_packages,
    fake_paypal,
    make_signing_identity,
    sign_body,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_packages")]


def balance(user) -> int:
    return CreditBalance.objects.filter(user=user).values_list("balance", flat=True).first() or 0


def holds(user) -> int:
    return (
        CreditBalance.objects.filter(user=user).values_list("spend_holds", flat=True).first() or 0
    )


def post(client, body: bytes, headers: dict):
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    return client.post(
        "/webhooks/paypal/", data=body, content_type="application/json", headers=headers
    )


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a signed delivery and run what the app queues on commit (the processing task)."""

    def send(delivery, **changes):
        body = changes.pop("body", delivery.body)
        headers = {**delivery.headers, **changes}
        with django_capture_on_commit_callbacks(execute=True):
            return post(client, body, headers)

    return send


@pytest.fixture
def paid_order(client, user, fake_paypal):
    """An order bought through PayPal and captured on return: (order, capture id)."""
    client.force_login(user)
    package = CreditPackage.objects.get(name="Basic")
    client.post("/billing/buy/", {"package": package.pk, "provider": "PAYPAL"})
    order = Order.objects.filter(user=user).latest("pk")
    fake_paypal.approve(order.provider_order_id)
    client.get(f"/billing/paypal/return/?token={order.provider_order_id}&PayerID=X")
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and balance(user) == 50
    return order, order.provider_payment_id


@pytest.fixture
def pending_order(client, user, fake_paypal):
    """An order the buyer approved whose capture is PENDING at PayPal: (order, capture id)."""
    fake_paypal.capture_outcome = "PENDING"
    client.force_login(user)
    package = CreditPackage.objects.get(name="Basic")
    client.post("/billing/buy/", {"package": package.pk, "provider": "PAYPAL"})
    order = Order.objects.filter(user=user).latest("pk")
    fake_paypal.approve(order.provider_order_id)
    client.get(f"/billing/paypal/return/?token={order.provider_order_id}&PayerID=X")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    fake_paypal.capture_outcome = "COMPLETED"
    return order, next(iter(fake_paypal.captures))


def completed_event(fake, capture_id):
    fake.settle_capture(capture_id)
    return fake.sign(fake.capture_event("PAYMENT.CAPTURE.COMPLETED", capture_id))


def test_a_valid_signed_webhook_is_stored_and_processed(deliver, user, fake_paypal, pending_order):
    order, capture_id = pending_order
    delivery = completed_event(fake_paypal, capture_id)

    response = deliver(delivery)
    assert response.status_code == 200 and response.json()["status"] == "received"
    event = WebhookEvent.objects.get(provider="PAYPAL", event_id=delivery.event["id"])
    assert event.signature_valid and event.status == WebhookEvent.Status.PROCESSED
    assert event.type == "PAYMENT.CAPTURE.COMPLETED" and event.order == order
    assert event.headers["paypal-transmission-id"] == delivery.headers["PAYPAL-TRANSMISSION-ID"]
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and balance(user) == 50


def test_a_tampered_body_is_refused_and_nothing_changes(deliver, user, fake_paypal, pending_order):
    order, capture_id = pending_order
    delivery = completed_event(fake_paypal, capture_id)
    tampered = delivery.body.replace(b'"value":"9.99"', b'"value":"0.99"')
    assert tampered != delivery.body

    response = deliver(delivery, body=tampered)
    assert response.status_code == 400
    assert "signature does not match" in response.json()["error"]
    assert not WebhookEvent.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and balance(user) == 0


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://evil.example.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
        "https://evilpaypal.com/v1/notifications/certs/CERT-1",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
        "https://api.paypal.com@evil.example/v1/notifications/certs/CERT-1",
        "file:///etc/passwd",
    ],
)
def test_a_certificate_off_paypal_hosts_is_never_fetched(
    deliver, fake_paypal, pending_order, cert_url
):
    _, capture_id = pending_order
    delivery = fake_paypal.sign(
        fake_paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", capture_id), cert_url=cert_url
    )

    response = deliver(delivery)
    assert response.status_code == 400
    assert "not on a PayPal host" in response.json()["error"]
    assert fake_paypal.cert_requests == 0 and not WebhookEvent.objects.exists()


def test_a_forger_with_their_own_certificate_server_is_refused(
    deliver, user, fake_paypal, pending_order
):
    """The forger signs with their key and points PAYPAL-CERT-URL at their own server."""
    _, capture_id = pending_order
    forger = FakePayPal(webhook_id=fake_paypal.webhook_id).start()
    try:
        event = fake_paypal.capture_event(
            "PAYMENT.CAPTURE.COMPLETED", fake_paypal.settle_capture(capture_id)["id"]
        )
        delivery = forger.sign(event)
        response = deliver(delivery)
        assert response.status_code == 400 and forger.cert_requests == 0
    finally:
        forger.stop()
    assert balance(user) == 0


def test_a_signature_by_another_key_is_refused(deliver, user, fake_paypal, pending_order):
    _, capture_id = pending_order
    other_key, _ = make_signing_identity()
    delivery = fake_paypal.sign(completed_event(fake_paypal, capture_id).event, key=other_key)

    response = deliver(delivery)
    assert response.status_code == 400 and "does not match" in response.json()["error"]
    assert balance(user) == 0


def test_a_signature_for_another_webhook_id_is_refused(deliver, user, fake_paypal, pending_order):
    _, capture_id = pending_order
    delivery = fake_paypal.sign(
        completed_event(fake_paypal, capture_id).event, webhook_id="ANOTHER-WEBHOOK"
    )
    assert deliver(delivery).status_code == 400
    assert balance(user) == 0


@pytest.mark.parametrize("ahead", [timedelta(hours=1), timedelta(days=3)])
def test_a_delivery_from_the_future_is_refused(deliver, user, fake_paypal, pending_order, ahead):
    _, capture_id = pending_order
    sent = (datetime.now(UTC) + ahead).strftime("%Y-%m-%dT%H:%M:%SZ")
    delivery = fake_paypal.sign(
        completed_event(fake_paypal, capture_id).event, transmission_time=sent
    )

    response = deliver(delivery)
    assert response.status_code == 400 and "future" in response.json()["error"]
    assert not WebhookEvent.objects.exists() and balance(user) == 0


@pytest.mark.parametrize("age", [timedelta(hours=1), timedelta(days=3)])
def test_a_genuine_retry_keeping_its_first_transmission_time_is_processed_once(
    deliver, user, fake_paypal, pending_order, age
):
    """PayPal resends an event it could not deliver for up to three days, and nothing it
    documents gives the resend a fresh transmission time: a valid signature is not refused
    for its age. Processing asks PayPal about the payment and stores each event once."""
    _, capture_id = pending_order
    event = completed_event(fake_paypal, capture_id).event
    sent = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    retry = fake_paypal.sign(event, transmission_time=sent)

    response = deliver(retry)
    assert response.status_code == 200 and response.json()["status"] == "received"
    assert deliver(fake_paypal.sign(event, transmission_time=sent)).json()["status"] == "duplicate"
    assert WebhookEvent.objects.get(event_id=event["id"]).status == WebhookEvent.Status.PROCESSED
    assert balance(user) == 50
    assert LedgerEntry.objects.filter(kind="PURCHASE", user=user).count() == 1


def test_an_old_signature_over_a_changed_body_is_still_refused(
    deliver, user, fake_paypal, pending_order
):
    _, capture_id = pending_order
    sent = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    delivery = fake_paypal.sign(
        completed_event(fake_paypal, capture_id).event, transmission_time=sent
    )

    forged = delivery.body.replace(b'"COMPLETED"', b'"COMPLETED" ', 1)
    assert deliver(delivery, body=forged).status_code == 400
    assert not WebhookEvent.objects.exists() and balance(user) == 0


def test_the_same_event_delivered_again_is_processed_once(
    deliver, user, fake_paypal, pending_order
):
    _, capture_id = pending_order
    first = completed_event(fake_paypal, capture_id)
    again = fake_paypal.sign(first.event)  # PayPal's retry: same event, new transmission

    assert deliver(first).json()["status"] == "received"
    assert deliver(again).json()["status"] == "duplicate"
    assert WebhookEvent.objects.filter(event_id=first.event["id"]).count() == 1
    assert balance(user) == 50
    assert LedgerEntry.objects.filter(kind="PURCHASE", user=user).count() == 1


@pytest.mark.parametrize(
    "missing",
    [
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-CERT-URL",
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-AUTH-ALGO",
    ],
)
def test_an_unsigned_delivery_is_refused(client, fake_paypal, pending_order, missing):
    _, capture_id = pending_order
    delivery = completed_event(fake_paypal, capture_id)
    headers = {k: v for k, v in delivery.headers.items() if k != missing}
    response = post(client, delivery.body, headers)
    assert response.status_code == 400 and missing.lower() in response.json()["error"]


def test_an_unsupported_algorithm_is_refused(deliver, fake_paypal, pending_order):
    _, capture_id = pending_order
    delivery = completed_event(fake_paypal, capture_id)
    assert deliver(delivery, **{"PAYPAL-AUTH-ALGO": "SHA1withRSA"}).status_code == 400


def test_the_certificate_is_fetched_once_and_cached(deliver, fake_paypal, pending_order):
    _, capture_id = pending_order
    for event_type in (
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.COMPLETED",
    ):
        if event_type.endswith("COMPLETED"):
            fake_paypal.settle_capture(capture_id)
        assert (
            deliver(fake_paypal.sign(fake_paypal.capture_event(event_type, capture_id))).status_code
            == 200
        )
    assert fake_paypal.cert_requests == 1


def test_when_the_certificate_cannot_be_fetched_paypal_is_asked(
    deliver, user, fake_paypal, pending_order
):
    _, capture_id = pending_order
    fake_paypal.fail("GET", "^/v1/notifications/certs/", status=503)

    response = deliver(completed_event(fake_paypal, capture_id))
    assert response.status_code == 200
    postbacks = fake_paypal.calls_to("POST", "^/v1/notifications/verify-webhook-signature$")
    assert len(postbacks) == 1
    assert postbacks[0].body["webhook_id"] == fake_paypal.webhook_id
    assert postbacks[0].headers["authorization"].startswith("Bearer ")
    assert balance(user) == 50


def test_a_revoked_token_does_not_make_the_postback_refuse_a_genuine_event(
    deliver, user, fake_paypal, pending_order
):
    _, capture_id = pending_order
    fake_paypal.fail("GET", "^/v1/notifications/certs/", status=503)
    fake_paypal.tokens.clear()  # PayPal revoked the token we cached

    assert deliver(completed_event(fake_paypal, capture_id)).status_code == 200
    postbacks = fake_paypal.calls_to("POST", "^/v1/notifications/verify-webhook-signature$")
    assert len(postbacks) == 2  # refused with the old token, answered with a fresh one
    assert postbacks[0].headers["authorization"] != postbacks[1].headers["authorization"]
    assert balance(user) == 50


def test_the_fallback_still_refuses_a_forgery(deliver, user, fake_paypal, pending_order):
    _, capture_id = pending_order
    fake_paypal.fail("GET", "^/v1/notifications/certs/", status=503)
    other_key, _ = make_signing_identity()
    delivery = fake_paypal.sign(completed_event(fake_paypal, capture_id).event, key=other_key)

    response = deliver(delivery)
    assert (
        response.status_code == 400
        and "PayPal says the signature is not valid" in response.json()["error"]
    )
    assert balance(user) == 0


def test_live_mode_ignores_the_test_certificate_origins(
    settings, deliver, fake_paypal, pending_order
):
    _, capture_id = pending_order
    settings.PAYPAL_ENVIRONMENT = "live"
    response = deliver(completed_event(fake_paypal, capture_id))
    assert response.status_code == 400 and fake_paypal.cert_requests == 0


def test_paypal_webhooks_are_404_when_paypal_is_not_configured(
    settings, client, fake_paypal, pending_order
):
    _, capture_id = pending_order
    delivery = completed_event(fake_paypal, capture_id)
    settings.PAYPAL_CLIENT_ID = ""
    assert post(client, delivery.body, delivery.headers).status_code == 404


def test_the_signed_message_is_the_documented_one():
    body = b'{"id":"WH-1"}'
    message = signed_message(
        transmission_id="t-id",
        transmission_time="2026-11-01T10:00:00Z",
        webhook_id="WH-ID",
        body=body,
    )
    # crc32(b'{"id":"WH-1"}') as an unsigned decimal, computed independently of zlib's sign.
    import binascii

    assert message == f"t-id|2026-11-01T10:00:00Z|WH-ID|{binascii.crc32(body) % 2**32}".encode()
    headers = sign_body(
        body, key=make_signing_identity()[0], webhook_id="WH-ID", cert_url="https://x"
    )
    assert set(headers) >= {"PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"}


# --- what the events do ---------------------------------------------------------------------------


def test_a_denied_capture_fails_the_pending_order(deliver, user, fake_paypal, pending_order):
    order, capture_id = pending_order
    fake_paypal.settle_capture(capture_id, status="DECLINED")
    deliver(fake_paypal.sign(fake_paypal.capture_event("PAYMENT.CAPTURE.DENIED", capture_id)))
    order.refresh_from_db()
    assert order.status == Order.Status.FAILED and balance(user) == 0


def test_a_refund_made_at_paypal_takes_credits_back(deliver, user, fake_paypal, paid_order):
    order, capture_id = paid_order
    refund = fake_paypal.refund_externally(capture_id, "2.00")
    deliver(fake_paypal.sign(fake_paypal.refund_event(refund)))
    second = fake_paypal.refund_externally(capture_id, "7.99")
    deliver(fake_paypal.sign(fake_paypal.refund_event(second)))

    order.refresh_from_db()
    assert order.amount_refunded == Decimal("9.99") and order.status == Order.Status.REFUNDED
    assert balance(user) == 0 and order.credits_clawed_back == 50


def test_refund_events_out_of_order_converge(deliver, user, fake_paypal, paid_order):
    order, capture_id = paid_order
    first = fake_paypal.refund_externally(capture_id, "2.00")
    second = fake_paypal.refund_externally(capture_id, "3.00")
    deliver(fake_paypal.sign(fake_paypal.refund_event(second)))  # cumulative 5.00 arrives first
    deliver(fake_paypal.sign(fake_paypal.refund_event(first)))  # old news: 2.00 in all
    order.refresh_from_db()
    assert (
        order.amount_refunded == Decimal("5.00") and order.status == Order.Status.PARTIALLY_REFUNDED
    )
    assert balance(user) == 50 - 25


def test_a_reversal_takes_everything_back(deliver, user, fake_paypal, paid_order):
    order, capture_id = paid_order
    refund = fake_paypal.refund_externally(capture_id)  # PayPal takes the whole payment back
    deliver(fake_paypal.sign(fake_paypal.refund_event(refund, "PAYMENT.CAPTURE.REVERSED")))
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and balance(user) == 0


def test_a_dispute_freezes_spending_until_it_is_resolved(deliver, user, fake_paypal, paid_order):
    order, capture_id = paid_order
    opened = fake_paypal.dispute_event("CUSTOMER.DISPUTE.CREATED", capture_id)
    deliver(fake_paypal.sign(opened))
    order.refresh_from_db()
    assert order.status == Order.Status.DISPUTED and holds(user) == 1

    resolved = fake_paypal.event(
        "CUSTOMER.DISPUTE.RESOLVED",
        {
            **opened["resource"],
            "status": "RESOLVED",
            "dispute_outcome": {"outcome_code": "RESOLVED_SELLER_FAVOUR"},
        },
    )
    deliver(fake_paypal.sign(resolved))
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and order.dispute_status == "won"
    assert holds(user) == 0 and balance(user) == 50


def test_a_lost_dispute_takes_the_credits_back(deliver, user, fake_paypal, paid_order):
    order, capture_id = paid_order
    lost = fake_paypal.dispute_event(
        "CUSTOMER.DISPUTE.RESOLVED", capture_id, outcome="RESOLVED_BUYER_FAVOUR"
    )
    deliver(fake_paypal.sign(lost))
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and order.dispute_status == "lost"
    assert balance(user) == 0 and holds(user) == 0


def test_an_event_type_we_do_not_act_on_is_stored_as_ignored(deliver, fake_paypal):
    delivery = fake_paypal.sign(fake_paypal.event("BILLING.PLAN.CREATED", {"id": "P-1"}))
    assert deliver(delivery).status_code == 200
    assert (
        WebhookEvent.objects.get(event_id=delivery.event["id"]).status
        == WebhookEvent.Status.IGNORED
    )


#: PayPal's documented outcome codes of a RESOLVED dispute -> (order status, dispute status, balance).
PAYPAL_OUTCOMES = {
    "RESOLVED_BUYER_FAVOUR": ("REFUNDED", "lost", 0),
    "ACCEPTED": ("REFUNDED", "lost", 0),
    "RESOLVED_WITH_PAYOUT": ("REFUNDED", "lost", 0),
    "RESOLVED_SELLER_FAVOUR": ("COMPLETED", "won", 50),
    "DENIED": ("COMPLETED", "won", 50),
    "CANCELED_BY_BUYER": ("COMPLETED", "withdrawn", 50),
}


@pytest.mark.parametrize("outcome", sorted(PAYPAL_OUTCOMES))
def test_every_documented_paypal_outcome_has_a_rule(
    deliver, user, fake_paypal, paid_order, outcome
):
    order, capture_id = paid_order
    opened = fake_paypal.dispute_event("CUSTOMER.DISPUTE.CREATED", capture_id)
    deliver(fake_paypal.sign(opened))
    assert holds(user) == 1
    dispute_id = opened["resource"]["dispute_id"]
    fake_paypal.resolve_dispute(dispute_id, outcome)

    deliver(
        fake_paypal.sign(
            fake_paypal.dispute_event("CUSTOMER.DISPUTE.RESOLVED", dispute_id=dispute_id)
        )
    )

    order.refresh_from_db()
    want_status, want_dispute, want_balance = PAYPAL_OUTCOMES[outcome]
    assert (order.status, order.dispute_status) == (want_status, want_dispute)
    assert (balance(user), holds(user)) == (want_balance, 0)


@pytest.mark.parametrize("outcome", ["NONE", "SPLIT_DECISION"])
def test_an_outcome_that_says_nothing_or_is_undocumented_is_flagged_and_spending_stays_frozen(
    deliver, user, fake_paypal, paid_order, outcome
):
    order, capture_id = paid_order
    opened = fake_paypal.dispute_event("CUSTOMER.DISPUTE.CREATED", capture_id)
    deliver(fake_paypal.sign(opened))
    dispute_id = opened["resource"]["dispute_id"]
    fake_paypal.resolve_dispute(dispute_id, outcome)

    resolved = fake_paypal.sign(
        fake_paypal.dispute_event("CUSTOMER.DISPUTE.RESOLVED", dispute_id=dispute_id)
    )
    deliver(resolved)

    event = WebhookEvent.objects.get(event_id=resolved.event["id"])
    assert event.status == WebhookEvent.Status.FAILED and f"RESOLVED/{outcome}" in event.last_error
    order.refresh_from_db()
    assert (order.status, order.dispute_status) == ("DISPUTED", "open")  # not read as won
    assert (balance(user), holds(user)) == (50, 1)


def test_a_dispute_update_moving_to_review_keeps_spending_frozen(
    deliver, user, fake_paypal, paid_order
):
    order, capture_id = paid_order
    opened = fake_paypal.dispute_event("CUSTOMER.DISPUTE.CREATED", capture_id)
    deliver(fake_paypal.sign(opened))
    dispute_id = opened["resource"]["dispute_id"]
    fake_paypal.disputes[dispute_id]["status"] = "UNDER_REVIEW"

    deliver(
        fake_paypal.sign(
            fake_paypal.dispute_event("CUSTOMER.DISPUTE.UPDATED", dispute_id=dispute_id)
        )
    )

    order.refresh_from_db()
    assert (order.status, order.dispute_status) == ("DISPUTED", "open") and holds(user) == 1
    assert set(
        WebhookEvent.objects.filter(type__startswith="CUSTOMER.DISPUTE").values_list(
            "status", flat=True
        )
    ) == {"PROCESSED"}
