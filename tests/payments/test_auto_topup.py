"""Auto top-up: a card saved at a Stripe Checkout in setup mode, or a PayPal account saved in
PayPal's vault, then one off-session payment per crossing below the threshold, at most one in
flight and a few a day; credits only when paid; a failed payment turns it off and emails the
user. The behaviour is the same with either provider: most tests run with both."""

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
from payments.providers import get_provider
from payments.tasks import retry_auto_topups
from tests.notices.conftest import mailbox, smtp_server, text_part  # noqa: F401 (fixtures)

from .conftest import close_db_connections
from .fake_paypal import fake_paypal  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def start_saving(client, user, packages, *, action: str, threshold: int):
    """The user sets the rule (the Basic package below ``threshold``) and asks to save a
    payment method (``action``: "card" or "paypal"); returns the redirect to the provider."""
    client.force_login(user)
    response = client.post(
        reverse("payments:auto_topup"),
        {"threshold": threshold, "package": packages["Basic"].pk, "action": action},
    )
    assert response.status_code == 302, response.content
    return response


def save_card(client, user, fake_stripe, packages, *, behaviour="pays", threshold=30):
    """The user sets the rule, saves a card at Stripe's setup checkout, and comes back."""
    response = start_saving(client, user, packages, action="card", threshold=threshold)
    session_id = urlsplit(response["Location"]).path.rsplit("/", 1)[-1]
    session = fake_stripe.complete_setup(session_id, behaviour=behaviour)
    success = urlsplit(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
    back = client.get(success.path, {"session_id": parse_qs(success.query)["session_id"][0]})
    assert back.status_code == 302
    return AutoTopUp.objects.get(user=user)


def save_paypal(client, user, fake_paypal, packages, *, behaviour="pays", threshold=30):
    """The user sets the rule, agrees at PayPal to be charged later, and comes back."""
    response = start_saving(client, user, packages, action="paypal", threshold=threshold)
    approve = urlsplit(response["Location"])
    assert approve.path == "/agreements/approve"
    session = parse_qs(approve.query)["approval_session_id"][0]
    (token,) = [t for t in fake_paypal.setup_tokens.values() if t["_session"] == session]
    back = urlsplit(fake_paypal.approve_setup(token["id"], behaviour=behaviour))
    answer = client.get(back.path, {k: v[0] for k, v in parse_qs(back.query).items()})
    assert answer.status_code == 302
    return AutoTopUp.objects.get(user=user)


class StripeWay:
    """Auto top-up through Stripe, as the tests drive it."""

    name, label = "STRIPE", "Visa ending 4242"

    def __init__(self, fake, deliver):
        self.fake, self.deliver = fake, deliver

    def save(self, client, user, packages, **kwargs):
        return save_card(client, user, self.fake, packages, **kwargs)

    def charges(self) -> list[str]:
        """The idempotency key of each off-session charge request made."""
        return [c["idempotency_key"] for c in self.fake.calls("POST", "/v1/payment_intents")]

    def payments(self) -> int:
        """Payments that took money."""
        return sum(1 for i in self.fake.payment_intents.values() if i["status"] == "succeeded")

    def fail_next_charge(self) -> None:
        self.fake.fail_next("POST", "/v1/payment_intents")

    def deliver_outcome(self, order, *, paid: bool):
        """The provider's webhook about the order's payment (paid or failed)."""
        intent = next(
            i
            for i in self.fake.payment_intents.values()
            if i["metadata"].get("order_id") == str(order.pk)
        )
        kind = "payment_intent.succeeded" if paid else "payment_intent.payment_failed"
        return self.deliver(self.fake.event(kind, intent))


class PayPalWay:
    """Auto top-up through PayPal's vault, as the tests drive it."""

    name, label = "PAYPAL", "PayPal: payer@example.com"

    def __init__(self, fake, client, capture):
        self.fake, self.client, self.capture = fake, client, capture

    def save(self, client, user, packages, **kwargs):
        return save_paypal(client, user, self.fake, packages, **kwargs)

    def _vaulted(self):
        return [
            c
            for c in self.fake.calls_to("POST", r"^/v2/checkout/orders$")
            if c.body and c.body["payment_source"]["paypal"].get("vault_id")
        ]

    def charges(self) -> list[str]:
        return [c.headers["paypal-request-id"] for c in self._vaulted()]

    def payments(self) -> int:
        """Payments that took money."""
        return sum(1 for c in self.fake.captures.values() if c["status"] == "COMPLETED")

    def fail_next_charge(self) -> None:
        self.fake.fail("POST", r"^/v2/checkout/orders$")

    def deliver_outcome(self, order, *, paid: bool):
        """PAYMENT.CAPTURE.COMPLETED for a paid order; PayPal sends nothing about an order it
        refused (a declined account) or one left waiting for its payer."""
        if not paid:
            return None
        paypal_order = self.fake.order_for(order.pk)
        capture_id = next(
            c for c, o in self.fake.capture_order_of.items() if o == paypal_order["id"]
        )
        delivery = self.fake.sign(self.fake.capture_event("PAYMENT.CAPTURE.COMPLETED", capture_id))
        headers = {k: v for k, v in delivery.headers.items() if k != "Content-Type"}
        with self.capture(execute=True):
            return self.client.post(
                "/webhooks/paypal/",
                data=delivery.body,
                content_type="application/json",
                headers=headers,
            )


@pytest.fixture(params=["STRIPE", "PAYPAL"])
def way(request, client, django_capture_on_commit_callbacks):
    """Each provider that saves a payment method for auto top-up, configured alone."""
    if request.param == "STRIPE":
        return StripeWay(request.getfixturevalue("fake_stripe"), request.getfixturevalue("deliver"))
    return PayPalWay(
        request.getfixturevalue("fake_paypal"), client, django_capture_on_commit_callbacks
    )


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
    assert 'data-testid="autotopup-card">Visa ending 4242<' in page
    assert "Use PayPal instead" not in page  # PayPal is not configured here


def test_saving_a_paypal_account_in_the_vault_turns_auto_topup_on_and_shows_it(
    client, make_user, fake_paypal, packages
):
    user = make_user()
    config = save_paypal(client, user, fake_paypal, packages)
    assert config.enabled and config.provider == "PAYPAL"
    assert config.payment_method_id in fake_paypal.payment_tokens
    assert config.customer_id.startswith("customer_")
    (setup,) = fake_paypal.calls_to("POST", r"^/v3/vault/setup-tokens$")
    wallet = setup.body["payment_source"]["paypal"]
    assert (wallet["usage_type"], wallet["usage_pattern"]) == ("MERCHANT", "THRESHOLD_PREPAID")
    assert wallet["experience_context"]["return_url"].endswith(
        reverse("payments:auto_topup_card_saved")
    )
    (vaulted,) = fake_paypal.calls_to("POST", r"^/v3/vault/payment-tokens$")
    assert vaulted.body["payment_source"]["token"]["type"] == "SETUP_TOKEN"
    page = client.get(reverse("payments:auto_topup")).content.decode()
    assert 'data-testid="autotopup-card">PayPal: payer@example.com<' in page
    assert "Use another PayPal account" in page and "Save a card" not in page

    # Coming back to the same return address again saves nothing more.
    token = fake_paypal.payment_tokens[config.payment_method_id]
    setup_id = next(t for t, v in fake_paypal.setup_tokens.items() if v["status"] == "VAULTED")
    client.get(reverse("payments:auto_topup_card_saved"), {"approval_token_id": setup_id})
    assert AutoTopUp.objects.get(user=user).payment_method_id == token["id"]
    assert len(fake_paypal.payment_tokens) == 1


def test_a_paypal_approval_cancelled_or_not_this_users_saves_nothing(
    client, make_user, fake_paypal, packages
):
    user, other = make_user(), make_user()
    client.force_login(user)
    response = client.post(
        reverse("payments:auto_topup"),
        {"threshold": 30, "package": packages["Basic"].pk, "action": "paypal"},
    )
    (token_id,) = fake_paypal.setup_tokens
    # Back without approving (a hand-made return address): PayPal refuses the token.
    answer = client.get(reverse("payments:auto_topup_card_saved"), {"approval_token_id": token_id})
    assert answer.status_code == 302 and response.status_code == 302
    assert not AutoTopUp.objects.get(user=user).payment_method_id
    # Another user's approved token is not taken.
    fake_paypal.approve_setup(token_id)
    client.force_login(other)
    client.post(
        reverse("payments:auto_topup"),
        {"threshold": 30, "package": packages["Basic"].pk, "action": "save"},
    )
    client.get(reverse("payments:auto_topup_card_saved"), {"approval_token_id": token_id})
    assert not AutoTopUp.objects.get(user=other).payment_method_id
    assert not fake_paypal.payment_tokens


def test_with_stripe_and_paypal_the_user_chooses_and_the_method_saved_last_is_charged(
    client, make_user, fake_stripe, fake_paypal, packages, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    client.force_login(user)
    page = client.get(reverse("payments:auto_topup")).content.decode()
    assert "Save a card and turn on" in page and "Save a PayPal account and turn on" in page

    save_card(client, user, fake_stripe, packages)
    config = save_paypal(client, user, fake_paypal, packages)
    assert (config.provider, config.payment_method_label) == (
        "PAYPAL",
        "PayPal: payer@example.com",
    )
    page = client.get(reverse("payments:auto_topup")).content.decode()
    assert 'data-testid="autotopup-card">PayPal: payer@example.com<' in page
    assert "Use a card instead" in page
    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")
    attempt.refresh_from_db()
    assert attempt.order.provider == "PAYPAL" and attempt.status == "SUCCEEDED"
    assert balance(user) == 75 and not fake_stripe.calls("POST", "/v1/payment_intents")

    # Back to a card: the same Stripe customer, and the next top-up is charged there.
    config = save_card(client, user, fake_stripe, packages)
    user.refresh_from_db()
    assert config.provider == "STRIPE" and config.customer_id == user.stripe_customer_id
    assert len(fake_stripe.calls("POST", "/v1/customers")) == 1


def test_a_crossing_buys_the_pack_once_however_often_it_is_reported_and_however_the_payment_is_seen(
    client, make_user, way, packages, mailbox, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    way.save(client, user, packages)
    mailbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")
    with django_capture_on_commit_callbacks(execute=True):
        again = topup_trigger(user=user, crossing_key="c1")  # the same crossing reported again
    assert again.pk == attempt.pk

    attempt.refresh_from_db()
    order = attempt.order
    order.refresh_from_db()
    assert (attempt.status, order.status, order.provider) == ("SUCCEEDED", "COMPLETED", way.name)
    assert balance(user) == 25 + 50
    assert way.charges() == [f"autotopup-{order.pk}"]
    assert Invoice.objects.filter(order=order).exists()
    assert [m["Subject"] for m in mailbox.messages] == [
        f"Your receipt {order.invoice.number}: 50 credits"
    ]

    # The provider's webhook for the same payment arrives (twice): nothing more is granted.
    for _ in range(2):
        assert way.deliver_outcome(order, paid=True).status_code == 200
    assert balance(user) == 75
    assert LedgerEntry.objects.filter(user=user, kind="PURCHASE").count() == 1
    assert way.payments() == 1


def test_a_paypal_order_for_a_saved_account_names_its_vault_id_and_is_captured_at_once(
    client, make_user, fake_paypal, packages, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    config = save_paypal(client, user, fake_paypal, packages)
    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")
    order = Order.objects.get(pk=attempt.order_id)
    (created,) = fake_paypal.calls_to("POST", r"^/v2/checkout/orders$")
    wallet = created.body["payment_source"]["paypal"]
    assert wallet["vault_id"] == config.payment_method_id
    assert wallet["stored_credential"]["payment_initiator"] == "MERCHANT"
    assert "experience_context" not in wallet  # nobody is sent anywhere
    unit = created.body["purchase_units"][0]
    assert (unit["custom_id"], unit["amount"]) == (
        str(order.pk),
        {"currency_code": "USD", "value": "9.99"},
    )
    assert order.provider_order_id == fake_paypal.order_for(order.pk)["id"]
    assert order.provider_payment_id in fake_paypal.captures
    assert not fake_paypal.calls_to("POST", r"/capture$")  # captured as it was made


@pytest.mark.parametrize("seen_first_by", ["webhook", "sweep"])
def test_a_payment_whose_answer_was_lost_is_granted_once_and_never_charged_again(
    client, make_user, way, packages, seen_first_by, django_capture_on_commit_callbacks
):
    """The charge reached the provider but its answer never reached our database (the worker
    died). The webhook fulfils the order; the sweep charges again with the same key and gets
    the first payment back instead of making a second; whichever comes first, once."""
    user = make_user(credits=40)
    config = way.save(client, user, packages)
    with django_capture_on_commit_callbacks(execute=False):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")  # its task is lost
    order = attempt.order
    get_provider(way.name).charge_saved(
        order=order,
        customer_id=config.customer_id,
        payment_method_id=config.payment_method_id,
        idempotency_key=f"autotopup-{order.pk}",
    )
    assert balance(user) == 25
    AutoTopUpAttempt.objects.filter(pk=attempt.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    if seen_first_by == "webhook":
        way.deliver_outcome(order, paid=True)
        assert balance(user) == 75
        assert retry_auto_topups() == 0  # settled: nothing left for the sweep
    else:
        assert retry_auto_topups() == 1
        assert balance(user) == 75
        way.deliver_outcome(order, paid=True)
    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == "COMPLETED" and attempt.status == "SUCCEEDED" and balance(user) == 75
    assert LedgerEntry.objects.filter(user=user, kind="PURCHASE").count() == 1
    assert way.payments() == 1


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
    ("way", "behaviour", "reason"),
    [
        ("STRIPE", "declines", "your card has insufficient funds."),
        ("STRIPE", "needs_auth", "your bank asked you to confirm the payment"),
        ("PAYPAL", "declines", "PayPal declined the payment."),
        ("PAYPAL", "needs_auth", "PayPal asked you to confirm the payment"),
    ],
    indirect=["way"],
)
def test_a_payment_that_fails_or_needs_the_customer_turns_auto_topup_off_and_emails_once(
    client,
    make_user,
    way,
    packages,
    mailbox,
    behaviour,
    reason,
    django_capture_on_commit_callbacks,
):
    user = make_user(credits=40)
    way.save(client, user, packages, behaviour=behaviour)
    with django_capture_on_commit_callbacks(execute=True):
        attempt = spend_and_cross(user, 15, "job-1", crossing="c1")

    attempt.refresh_from_db()
    assert attempt.status == "FAILED" and attempt.order.status == "FAILED"
    assert balance(user) == 25  # nothing granted
    config = AutoTopUp.objects.get(user=user)
    assert not config.enabled and reason in config.disabled_reason
    # The provider's failure webhook for the same payment (where it sends one) changes nothing.
    way.deliver_outcome(attempt.order, paid=False)
    assert way.payments() == 0

    (message,) = mailbox.messages
    assert message["Subject"].startswith("Auto top-up is off:")
    assert reason in " ".join(text_part(message).split())
    assert OutboundEmail.objects.filter(kind="autotopup_failed").count() == 1
    # Turned off: the next crossing buys nothing until the user turns it on again.
    assert spend_and_cross(user, 1, "job-2", crossing="c2") is None
    page = client.get(reverse("payments:auto_topup")).content.decode()
    assert "Turned off on" in page and way.label in page


def test_an_outage_leaves_the_purchase_in_flight_and_the_sweep_charges_it_once(
    client, make_user, way, packages, django_capture_on_commit_callbacks
):
    user = make_user(credits=40)
    way.save(client, user, packages)
    way.fail_next_charge()
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
    assert way.payments() == 1
    assert set(way.charges()) == {f"autotopup-{attempt.order_id}"}


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
