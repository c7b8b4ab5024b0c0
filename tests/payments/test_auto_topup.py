"""Auto top-up: a card saved at a Stripe Checkout in setup mode, then one off-session payment
per crossing below the threshold, at most one in flight and a few a day; credits only when
paid; a failed payment turns it off and emails the user."""

import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import OutboundEmail
from credits.models import BalanceCrossing, CreditBalance, LedgerEntry
from credits.services import credits_spend
from payments.autotopup import autotopup_threshold_sync, topup_trigger
from payments.models import AutoTopUp, AutoTopUpAttempt, Invoice, Order
from payments.tasks import retry_auto_topups
from tests.notices.conftest import mailbox, smtp_server, text_part  # noqa: F401 (fixtures)

from .conftest import close_db_connections

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def save_card(client, user, fake_stripe, packages, *, behaviour="pays", threshold=30):
    """The user sets the rule, saves a card at Stripe's setup checkout, and comes back."""
    client.force_login(user)
    response = client.post(
        reverse("payments:auto_topup"),
        {"threshold": threshold, "package": packages["Basic"].pk, "action": "card"},
    )
    assert response.status_code == 302, response.content
    session_id = urlsplit(response["Location"]).path.rsplit("/", 1)[-1]
    session = fake_stripe.complete_setup(session_id, behaviour=behaviour)
    success = urlsplit(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
    back = client.get(success.path, {"session_id": parse_qs(success.query)["session_id"][0]})
    assert back.status_code == 302
    return AutoTopUp.objects.get(user=user)


def spend_and_cross(user, amount, key, *, crossing):
    """A spend that takes the balance below the threshold and reports the crossing in its
    own transaction, as the spend statement does."""
    with transaction.atomic():
        credits_spend(user=user, amount=amount, idempotency_key=key)
        return topup_trigger(user=user, crossing_key=crossing)


def test_saving_a_card_at_a_setup_checkout_turns_auto_topup_on(
    client, make_user, fake_stripe, packages
):
    user = make_user()
    config = save_card(client, user, fake_stripe, packages)
    assert config.enabled and config.payment_method_label == "Visa ending 4242"
    assert config.customer_id.startswith("cus_") and config.payment_method_id.startswith("pm_")
    user.refresh_from_db()
    assert user.stripe_customer_id == config.customer_id
    (created,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert created["params"]["mode"] == "setup"
    page = client.get(reverse("payments:auto_topup")).content.decode()
    assert "Visa ending 4242" in page and "PayPal cannot be used for auto top-up" in page


def test_a_crossing_buys_the_pack_once_however_often_it_is_reported_and_however_the_payment_is_seen(
    client, make_user, fake_stripe, packages, mailbox, deliver, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    save_card(client, user, fake_stripe, packages)
    mailbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")
    with django_capture_on_commit_callbacks(execute=True):
        again = topup_trigger(user=user, crossing_key="c1")  # the same crossing reported again
    assert again.pk == attempt.pk

    attempt.refresh_from_db()
    order = attempt.order
    order.refresh_from_db()
    assert (attempt.status, order.status) == ("SUCCEEDED", "COMPLETED")
    assert balance(user) == 25 + 50
    (charged,) = fake_stripe.calls("POST", "/v1/payment_intents")
    assert charged["params"]["off_session"] == "true"
    assert charged["idempotency_key"] == f"autotopup-{order.pk}"
    assert Invoice.objects.filter(order=order).exists()
    assert [m["Subject"] for m in mailbox.messages] == [
        f"Your receipt {order.invoice.number}: 50 credits"
    ]

    # Stripe's webhook for the same payment arrives (twice): nothing more is granted.
    intent = fake_stripe.payment_intents[order.provider_order_id]
    for _ in range(2):
        deliver(fake_stripe.event("payment_intent.succeeded", intent))
    assert balance(user) == 75
    assert LedgerEntry.objects.filter(user=user, kind="PURCHASE").count() == 1


def test_one_purchase_in_flight_and_at_most_n_a_day(
    client, make_user, fake_stripe, packages, settings, django_capture_on_commit_callbacks
):
    settings.PAYMENTS_AUTOTOPUP_MAX_PER_DAY = 2
    user = make_user(credits=40)
    save_card(client, user, fake_stripe, packages)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = spend_and_cross(user, 15, "job-1", crossing="c1")
    # Still in flight (its task not run yet): another crossing starts nothing.
    assert spend_and_cross(user, 1, "job-2", crossing="c2") is None
    for callback in queued:
        callback()
    first.refresh_from_db()
    assert first.status == "SUCCEEDED" and balance(user) == 74

    with django_capture_on_commit_callbacks(execute=True):
        second = spend_and_cross(user, 60, "job-3", crossing="c3")
    assert second is not None and balance(user) == 64
    with django_capture_on_commit_callbacks(execute=True):
        assert spend_and_cross(user, 60, "job-4", crossing="c4") is None  # today's two are used
    assert balance(user) == 4
    # A balance at or above the threshold buys nothing, whatever is reported.
    settings.PAYMENTS_AUTOTOPUP_MAX_PER_DAY = 5
    AutoTopUp.objects.filter(user=user).update(threshold=3)
    assert topup_trigger(user=user, crossing_key="c5") is None
    assert AutoTopUpAttempt.objects.filter(user=user).count() == 2


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("declines", "your card has insufficient funds."),
        ("needs_auth", "your bank asked you to confirm the payment"),
    ],
)
def test_a_payment_that_fails_or_needs_the_customer_turns_auto_topup_off_and_emails_once(
    client,
    make_user,
    fake_stripe,
    packages,
    mailbox,
    deliver,
    behaviour,
    reason,
    django_capture_on_commit_callbacks,
):
    user = make_user(credits=40)
    save_card(client, user, fake_stripe, packages, behaviour=behaviour)
    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")

    attempt.refresh_from_db()
    assert attempt.status == "FAILED" and attempt.order.status == "FAILED"
    assert balance(user) == 25  # nothing granted
    config = AutoTopUp.objects.get(user=user)
    assert not config.enabled and reason in config.disabled_reason
    # Stripe's payment_failed webhook for the same payment changes nothing more.
    intent = fake_stripe.payment_intents[attempt.order.provider_order_id]
    deliver(fake_stripe.event("payment_intent.payment_failed", intent))

    (message,) = mailbox.messages
    assert message["Subject"].startswith("Auto top-up is off:")
    assert reason in " ".join(text_part(message).split())
    assert OutboundEmail.objects.filter(kind="autotopup_failed").count() == 1
    # Turned off: the next crossing buys nothing until the user turns it on again.
    assert spend_and_cross(user, 1, "job-2", crossing="c2") is None
    page = client.get(reverse("payments:auto_topup")).content.decode()
    assert "Turned off on" in page


def test_a_stripe_outage_leaves_the_purchase_in_flight_and_the_sweep_charges_it_once(
    client, make_user, fake_stripe, packages, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    save_card(client, user, fake_stripe, packages)
    fake_stripe.fail_next("POST", "/v1/payment_intents")
    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")
    attempt.refresh_from_db()
    assert attempt.status == "PENDING" and balance(user) == 25

    assert retry_auto_topups() == 0  # not overdue yet
    AutoTopUpAttempt.objects.filter(pk=attempt.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    assert retry_auto_topups() == 1
    assert retry_auto_topups() == 0
    attempt.refresh_from_db()
    assert attempt.status == "SUCCEEDED" and balance(user) == 75
    assert len(fake_stripe.payment_intents) == 1


def test_the_sandbox_saves_a_card_and_tops_up_too(
    client, make_user, packages, sandbox_only, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    client.force_login(user)
    response = client.post(
        reverse("payments:auto_topup"),
        {"threshold": 30, "package": packages["Basic"].pk, "action": "card"},
    )
    assert response["Location"] == reverse("payments:auto_topup_sandbox_card")
    client.post(response["Location"], {"card": "sbx_pm_pays"})
    assert AutoTopUp.objects.get(user=user).enabled
    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")
    attempt.refresh_from_db()
    assert attempt.status == "SUCCEEDED" and balance(user) == 75
    assert attempt.order.provider == Order.Provider.SANDBOX


@pytest.mark.django_db(transaction=True)
def test_concurrent_crossings_start_one_purchase(make_user, packages, sandbox_only, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    user = make_user(credits=40)
    AutoTopUp.objects.create(
        user=user,
        threshold=30,
        package=packages["Basic"],
        provider="SANDBOX",
        payment_method_id="sbx_pm_pays",
        enabled=True,
    )
    credits_spend(user=user, amount=15, idempotency_key="below")
    barrier = threading.Barrier(8)
    results = []

    def report(n):
        try:
            barrier.wait()
            # Half report the same crossing, half other crossings: one purchase in all.
            attempt = topup_trigger(user=user, crossing_key=f"c{n % 2}")
            results.append(attempt.pk if attempt else None)
        except Exception as exc:  # noqa: BLE001 - a failure in a thread must reach the test
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=report, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_db_connections()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert AutoTopUpAttempt.objects.filter(user=user).count() == 1
    assert LedgerEntry.objects.filter(user=user, kind="PURCHASE").count() == 1


def test_a_spend_that_crosses_the_threshold_buys_once_and_only_a_crossing_buys(
    make_user, packages, sandbox_only, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    AutoTopUp.objects.create(
        user=user,
        threshold=30,
        package=packages["Basic"],
        provider="SANDBOX",
        payment_method_id="sbx_pm_pays",
        enabled=True,
    )
    autotopup_threshold_sync(user=user)  # the threshold goes on the balance row

    def spend(amount, key):
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                credits_spend(user=user, amount=amount, idempotency_key=key)

    spend(5, "above")  # 40 -> 35: still at or above 30
    assert not AutoTopUpAttempt.objects.exists()
    spend(10, "crosses")  # 35 -> 25: the spend records the crossing, its handler buys
    (attempt,) = AutoTopUpAttempt.objects.all()
    assert attempt.crossing_key.startswith("crossing:")
    assert attempt.status == "SUCCEEDED" and balance(user) == 75
    crossing = BalanceCrossing.objects.get(user=user, kind="top_up")
    assert crossing.handled_at is not None and (
        crossing.balance_before,
        crossing.balance_after,
    ) == (35, 25)
