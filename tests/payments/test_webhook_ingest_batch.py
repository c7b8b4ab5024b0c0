"""Deliveries arriving at the same moment are stored with one INSERT and one commit, and each
is answered for itself: received, duplicate, refused, or 503 when it could not be stored."""

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connections
from django.test import Client
from prometheus_client import REGISTRY

from payments import webhooks
from payments.models import WebhookEvent
from tests.conftest import test_database_url

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def twin_uncommitted(event_id: str):
    """Another connection inserts ``event_id`` and holds its transaction open: a delivery of
    the same event waits for it in the database while storing, and every delivery after it
    waits for its turn. Rolled back on leaving, so the waiting delivery is stored."""
    with psycopg.connect(test_database_url()) as other:
        other.execute(
            "INSERT INTO payments_webhookevent (provider, event_id, type, raw_body, headers,"
            " signature_valid, normalized, status, attempts, last_error, received_at,"
            " next_attempt_at) VALUES ('STRIPE', %s, 'twin', '', '{}', true, '{}', 'RECEIVED',"
            " 0, '', now(), now())",
            [event_id],
        )
        yield
        other.rollback()


def waiting_turn(count: int) -> None:
    """Until ``count`` deliveries wait for the next batch of this process."""
    deadline = time.monotonic() + 10
    while len(webhooks._INGEST_WRITER._waiting) < count:
        assert time.monotonic() < deadline, "the deliveries never queued"
        time.sleep(0.005)


def batches_stored() -> tuple[float, float]:
    """(batches, deliveries) counted by the batch-size histogram so far."""
    name = "credits_webhook_ingest_batch_size"
    return (
        REGISTRY.get_sample_value(f"{name}_count") or 0,
        REGISTRY.get_sample_value(f"{name}_sum") or 0,
    )


def post(payload: str, signature: str):
    try:
        response = Client().post(
            "/webhooks/stripe/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )
        return response.status_code, json.loads(response.content)
    finally:
        connections.close_all()


def meanwhile(deliver, fake_stripe, first: str, payloads: list[str]):
    """``deliver(payload)`` for ``first``, held in the database by an uncommitted twin, then for
    ``payloads`` one after the other while it waits (each queued behind it); then let the twin
    go. What each delivery got, the first's first."""
    with ThreadPoolExecutor(len(payloads) + 1) as pool:
        with twin_uncommitted(json.loads(first)["id"]):
            leader = pool.submit(deliver, fake_stripe, first)
            _wait_for_lock_wait()
            later = []
            for payload in payloads:
                later.append(pool.submit(deliver, fake_stripe, payload))
                waiting_turn(len(later))
        return [leader.result(), *(f.result() for f in later)]


def post_signed(fake_stripe, payload: str):
    return post(payload, fake_stripe.sign(payload))


def _wait_for_lock_wait(*, other_than: int | None = None) -> int:
    """Until a connection of this test waits on a lock (a delivery behind a twin); its pid."""
    deadline = time.monotonic() + 10
    with psycopg.connect(test_database_url(), autocommit=True) as admin:
        while True:
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> %s",
                [other_than or 0],
            ).fetchone()
            if row:
                return row[0]
            assert time.monotonic() < deadline, "no delivery reached the database"
            time.sleep(0.005)


def stripe_event(fake_stripe, event_id: str | None = None, **obj) -> str:
    return fake_stripe.event(
        "customer.created", {"id": "cus_1", "object": "customer", **obj}, event_id=event_id
    )


def test_deliveries_waiting_together_are_stored_in_one_insert_each_answered_for_itself(
    fake_stripe,
):
    first = stripe_event(fake_stripe)
    a, b, c = (stripe_event(fake_stripe) for _ in range(3))
    repeat_of_a = a
    repeat_of_first = first  # stored by the first delivery's own batch, just before
    before = batches_stored()

    results = meanwhile(post_signed, fake_stripe, first, [a, b, repeat_of_a, c, repeat_of_first])

    statuses = [(status, body["status"], body["id"]) for status, body in results]
    ids = [json.loads(p)["id"] for p in (first, a, b, a, c, first)]
    assert statuses == [
        (200, "received", ids[0]),
        (200, "received", ids[1]),
        (200, "received", ids[2]),
        (200, "duplicate", ids[3]),
        (200, "received", ids[4]),
        (200, "duplicate", ids[5]),
    ]
    stored = WebhookEvent.objects.filter(provider="STRIPE")
    assert sorted(stored.values_list("event_id", flat=True)) == sorted(set(ids))
    # Tasks run in place here: each delivery that stored its event processed it once stored.
    assert sorted(e.status for e in stored) == ["IGNORED"] * 4
    after = batches_stored()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 6)  # the first alone, then five


def test_a_delivery_the_database_refuses_fails_alone_and_its_batch_is_stored(fake_stripe):
    first, good, other = (stripe_event(fake_stripe) for _ in range(3))
    # A NUL in the event's type: valid JSON, validly signed, but PostgreSQL cannot store it
    # (the web's middleware refuses such a body before any view; this one got past it).
    refused = fake_stripe.event("customer.created\x00", {"id": "cus_1", "object": "customer"})

    with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever the database raises
        webhooks.webhook_ingest(
            provider_name="STRIPE",
            body=refused.encode(),
            headers={"Stripe-Signature": fake_stripe.sign(refused)},
        )
    assert "NUL" in str(raised.value)

    held = WebhookEvent.objects.count()
    outcomes = meanwhile(ingest_in_thread, fake_stripe, first, [good, refused, other])

    assert [o if isinstance(o, str) else "error" for o in outcomes] == [
        "received",
        "received",
        "error",
        "received",
    ]
    assert "NUL" in str(outcomes[2])  # its own error, not its batch's
    stored = set(WebhookEvent.objects.values_list("event_id", flat=True))
    assert WebhookEvent.objects.count() == held + 3
    assert {json.loads(p)["id"] for p in (first, good, other)} <= stored
    assert json.loads(refused)["id"] not in stored


def ingest_in_thread(fake_stripe, payload: str):
    try:
        result = webhooks.webhook_ingest(
            provider_name="STRIPE",
            body=payload.encode(),
            headers={"Stripe-Signature": fake_stripe.sign(payload)},
        )
        return "duplicate" if result.duplicate else "received"
    except Exception as exc:  # noqa: BLE001 - the test looks at what each caller got
        return exc
    finally:
        connections.close_all()


def test_a_batch_that_loses_its_connection_is_stored_row_by_row_on_a_new_one(fake_stripe):
    first, a, b = (stripe_event(fake_stripe) for _ in range(3))
    with ThreadPoolExecutor(3) as pool, twin_uncommitted(json.loads(a)["id"]):
        with twin_uncommitted(json.loads(first)["id"]):
            leader = pool.submit(post_signed, fake_stripe, first)
            _wait_for_lock_wait()
            later = [pool.submit(post_signed, fake_stripe, a)]
            waiting_turn(1)
            later.append(pool.submit(post_signed, fake_stripe, b))
            waiting_turn(2)
        # The first is stored; a's request now writes a and b together, behind a's twin. The
        # server ends that connection (a restart, a failover) while the INSERT waits.
        batch = _wait_for_lock_wait()
        with psycopg.connect(test_database_url(), autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [batch]).fetchone()[0]
        _wait_for_lock_wait(other_than=batch)  # a again, alone, on a new connection
    results = [leader.result(), *(f.result() for f in later)]

    assert [(status, body["status"]) for status, body in results] == [(200, "received")] * 3
    stored = WebhookEvent.objects.values_list("event_id", flat=True)
    assert sorted(stored) == sorted(json.loads(p)["id"] for p in (first, a, b))


def test_a_delivery_that_cannot_be_stored_in_time_is_answered_503_and_stores_nothing(
    fake_stripe, monkeypatch
):
    monkeypatch.setattr(webhooks, "INGEST_WAIT_SECONDS", 0.3)
    first, late = stripe_event(fake_stripe), stripe_event(fake_stripe)
    with ThreadPoolExecutor(1) as pool, twin_uncommitted(json.loads(first)["id"]):
        leader = pool.submit(post, first, fake_stripe.sign(first))
        _wait_for_lock_wait()
        status, body = post(late, fake_stripe.sign(late))

    assert (status, body) == (
        503,
        {"error": "The delivery could not be stored in time; send it again."},
    )
    assert leader.result()[0] == 200
    assert not WebhookEvent.objects.filter(event_id=json.loads(late)["id"]).exists()
    # The provider's next attempt is stored.
    assert post(late, fake_stripe.sign(late)) == (
        200,
        {"status": "received", "id": json.loads(late)["id"]},
    )


def test_an_event_id_longer_than_the_column_is_refused_with_its_reason(fake_stripe):
    payload = stripe_event(fake_stripe, event_id="evt_" + "x" * 300)

    status, body = post(payload, fake_stripe.sign(payload))

    assert (status, body) == (400, {"error": "The event id is longer than 255 characters."})
    assert not WebhookEvent.objects.exists()
