"""Memberships through PayPal Subscriptions, against the fake PayPal over HTTP: billing plans
made by the sync command, subscription approval, each period's sale, rollover, past due,
refunds and cancellation, all from signed PayPal events."""

import io

import pytest
from django.core.management import call_command

from accounts.models import OutboundEmail
from credits.models import CreditBalance, CreditLot
from credits.services import credits_spend
from payments.models import PlanPrice, Subscription, SubscriptionPeriod, WebhookEvent
from payments.subscriptions import subscription_cancel
from tests.payments.fake_paypal_billing import fake_paypal_billing  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plans")]


@pytest.fixture
def paypal(fake_paypal_billing):  # noqa: F811
    call_command("subscription_plans_sync", stdout=io.StringIO())
    return fake_paypal_billing


@pytest.fixture
def send(client, paypal, django_capture_on_commit_callbacks):
    def run(events):
        for event in events:
            delivery = paypal.sign(event)
            headers = {k: v for k, v in delivery.headers.items() if k != "Content-Type"}
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(
                    "/webhooks/paypal/",
                    data=delivery.body,
                    content_type="application/json",
                    headers=headers,
                )
            assert response.status_code == 200, response.content

    return run


@pytest.fixture
def member(client, make_user, paypal, send):
    user = make_user()
    client.force_login(user)
    response = client.post("/billing/plan/subscribe/", {"plan": "pro", "provider": "PAYPAL"})
    assert response.status_code == 303 and "/webapps/billing/subscriptions" in response["Location"]
    sub = Subscription.objects.get(user=user)
    assert sub.provider_subscription_id.startswith("I-")
    send(paypal.approve_subscription(sub.provider_subscription_id))
    return user, Subscription.objects.get(pk=sub.pk)


def balance(user):
    return CreditBalance.objects.get(user=user).balance


def test_plans_sync_makes_one_product_and_billing_plan_each_once(paypal):
    assert set(paypal.products) == {"PLAN-BASIC", "PLAN-PRO", "PLAN-STUDIO"}
    assert len(paypal.plans) == 3
    call_command("subscription_plans_sync", stdout=io.StringIO())
    assert len(paypal.plans) == 3
    pro = PlanPrice.objects.get(plan__code="pro")
    fixed = paypal.plans[pro.paypal_plan_id]["billing_cycles"][0]["pricing_scheme"]["fixed_price"]
    assert fixed == {"value": "24.00", "currency_code": "USD"}


def test_plans_sync_gets_a_fresh_token_when_paypal_revoked_the_cached_one(paypal):
    paypal.tokens.clear()  # PayPal revoked the token we cached (or forgot it on a restart)
    tokens_before = len(paypal.calls_to("POST", "/v1/oauth2/token"))

    call_command("subscription_plans_sync", stdout=io.StringIO())

    assert len(paypal.calls_to("POST", "/v1/oauth2/token")) == tokens_before + 1
    products = paypal.calls_to("POST", "^/v1/catalogs/products$")
    assert len(products) == 3 + 4  # the first sync's three, then one refused and three again
    assert set(paypal.products) == {"PLAN-BASIC", "PLAN-PRO", "PLAN-STUDIO"}


def test_each_paid_period_grants_its_lot_and_renewal_rolls_over(member, paypal, send):
    user, sub = member
    assert sub.status == "ACTIVE" and balance(user) == 300
    user.refresh_from_db()
    assert (user.status, user.membership_tier) == ("SUBSCRIBED", "PRO")
    credits_spend(user=user, amount=100, idempotency_key="pp-1")

    events = paypal.bill(sub.provider_subscription_id)
    send(events)
    send(events)  # delivered twice

    assert balance(user) == 150 + 300
    periods = SubscriptionPeriod.objects.filter(subscription=sub).order_by("starts_at")
    assert [p.billing_reason for p in periods] == ["subscription_create", "subscription_cycle"]
    live = {
        lot.source: lot.remaining for lot in CreditLot.objects.filter(user=user, remaining__gt=0)
    }
    assert live == {"subscription": 300, "rollover": 150}
    assert WebhookEvent.objects.filter(type="PAYMENT.SALE.COMPLETED").count() == 2
    call_command("check_ledger")


def test_a_failed_payment_is_past_due_and_a_refund_takes_the_periods_credits(
    member, paypal, send, mailoutbox
):
    user, sub = member
    send(paypal.bill(sub.provider_subscription_id, fail=True))
    sub.refresh_from_db()
    assert sub.status == "PAST_DUE" and balance(user) == 300
    # The member is told once, in the event's transaction.
    (email,) = OutboundEmail.objects.filter(kind="subscription_payment_failed")
    assert email.event_key.startswith(f"subscription_payment_failed:subscription:{sub.pk}:")
    (sent,) = [m for m in mailoutbox if m.subject == "Your Pro subscription payment failed"]
    assert sent.to == [user.email] and "could not take $24.00" in sent.body

    period = SubscriptionPeriod.objects.get(subscription=sub)
    send([paypal.refund_sale(period.provider_payment_id, "24.00")])
    period.refresh_from_db()
    assert (period.status, period.credits_clawed_back) == ("REFUNDED", 300)
    assert balance(user) == 0


def test_cancelling_ends_the_paypal_subscription(member, paypal, send):
    user, sub = member
    subscription_cancel(subscription=sub)
    send(paypal.outbox)
    sub.refresh_from_db()
    user.refresh_from_db()
    assert sub.status == "ENDED" and (user.status, user.membership_tier) == ("ACTIVE", "FREE")
    assert paypal.subscriptions[sub.provider_subscription_id]["status"] == "CANCELLED"
    (email,) = OutboundEmail.objects.filter(kind="subscription_cancelled")
    assert email.event_key == f"subscription_cancelled:subscription:{sub.pk}:ended"
    assert email.subject == "Your Pro subscription is cancelled"
