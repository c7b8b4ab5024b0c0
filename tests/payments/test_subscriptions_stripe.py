"""Memberships through Stripe Billing, against the fake Stripe over HTTP: plans synced to
products and prices, Checkout in subscription mode, test-clock renewals with rollover,
upgrades with proration, past due, cancellation, refunds of a period; storms of duplicated
and reordered events converge."""

import json
import secrets

import pytest
import stripe
from django.core.management import call_command

from credits.models import CreditBalance, CreditLot
from credits.services import credits_spend
from payments.models import PlanPrice, Subscription, SubscriptionPeriod, WebhookEvent
from payments.subscriptions import subscription_cancel, subscription_period_refund
from tests.payments.conftest import post_stripe
from tests.payments.fake_stripe_billing import MONTH, FakeStripeBilling

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plans")]


@pytest.fixture
def billing(settings, monkeypatch):
    fake = FakeStripeBilling().start()
    stripe.enable_telemetry = False
    values = {
        "STRIPE_SECRET_KEY": "sk_test_fake",
        "STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
        "STRIPE_API_BASE": fake.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    for name, value in values.items():
        setattr(settings, name, value)
        monkeypatch.setenv(name, value)
    call_command("subscription_plans_sync", stdout=open("/dev/null", "w"))
    yield fake
    fake.stop()


@pytest.fixture
def flush(client, billing, django_capture_on_commit_callbacks):
    """Deliver every event the fake Stripe queued, signed, and process them."""

    def run(events=None):
        for payload in billing.take_events() if events is None else events:
            with django_capture_on_commit_callbacks(execute=True):
                response = post_stripe(client, payload, fake=billing)
            assert response.status_code == 200, response.content

    return run


def sdk():
    from payments.providers.stripe_provider import StripeProvider

    return StripeProvider().client


@pytest.fixture
def member(client, make_user, billing, flush):
    """A user subscribed to Pro through Checkout, on a test clock."""
    user = make_user()
    client.force_login(user)
    response = client.post("/billing/plan/subscribe/", {"plan": "pro"})
    assert response.status_code == 303 and response["Location"].startswith(billing.url)
    sub = Subscription.objects.get(user=user)
    assert sub.provider_subscription_id.startswith("cs_test_")
    clock = sdk().v1.test_helpers.test_clocks.create({"frozen_time": 1_900_000_000})
    billing.subscribe(sub.provider_subscription_id, clock=clock.id)
    flush()
    return user, clock.id


def balance(user):
    return CreditBalance.objects.get(user=user).balance


def advance(billing, clock_id):
    """Advance the test clock (through Stripe's API) just past the current period's end."""
    to = billing.clocks[clock_id]["frozen_time"] + MONTH + 1
    sdk().v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": to})


def test_plans_sync_to_one_product_and_price_each_however_often_it_runs(billing):
    call_command("subscription_plans_sync", stdout=open("/dev/null", "w"))
    assert len(billing.products) == 3 and len(billing.prices) == 3
    pro = PlanPrice.objects.get(plan__code="pro")
    assert billing.prices[pro.stripe_price_id]["unit_amount"] == 2400
    assert billing.prices[pro.stripe_price_id]["lookup_key"] == "plan_pro_usd_month"

    PlanPrice.objects.filter(pk=pro.pk).update(amount="29.00")
    call_command("subscription_plans_sync", stdout=open("/dev/null", "w"))
    pro.refresh_from_db()
    assert billing.prices[pro.stripe_price_id]["unit_amount"] == 2900
    assert len(billing.prices) == 4  # the old price lost its lookup key to the new one


def test_checkout_in_subscription_mode_grants_the_first_period(member, billing):
    user, _ = member
    sub = Subscription.objects.get(user=user)
    assert sub.status == "ACTIVE" and sub.provider_subscription_id.startswith("sub_")
    session = next(iter(billing.sessions.values()))
    assert session["mode"] == "subscription"
    user.refresh_from_db()
    assert (user.status, user.membership_tier) == ("SUBSCRIBED", "PRO")
    assert balance(user) == 300
    period = SubscriptionPeriod.objects.get(subscription=sub)
    assert period.billing_reason == "subscription_create" and period.amount == 24
    assert period.provider_payment_id.startswith("pi_")


def test_advancing_the_test_clock_renews_with_rollover_and_storms_converge(member, billing, flush):
    user, clock = member
    credits_spend(user=user, amount=100, idempotency_key="s1")
    advance(billing, clock)
    flush()

    assert balance(user) == 150 + 300
    assert SubscriptionPeriod.objects.filter(subscription__user=user).count() == 2
    kinds = {
        lot.source: lot.original for lot in CreditLot.objects.filter(user=user, remaining__gt=0)
    }
    assert kinds == {"rollover": 150, "subscription": 300}

    # The whole history again: the same deliveries (duplicates), then every event under a
    # new id, newest first (a replay out of order).
    stored = [e.raw_body for e in WebhookEvent.objects.order_by("pk")]
    flush(stored)
    renamed = []
    for body in reversed(stored):
        data = json.loads(body)
        data["id"] = f"evt_{secrets.token_hex(12)}"
        renamed.append(json.dumps(data))
    flush(renamed)
    assert balance(user) == 450
    assert SubscriptionPeriod.objects.filter(subscription__user=user).count() == 2
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"PROCESSED"}
    call_command("check_ledger")


def test_an_upgrade_is_prorated_at_stripe_and_its_credits_granted_when_paid(
    client, member, billing, flush
):
    user, _ = member
    response = client.post("/billing/plan/change/", {"plan": "studio"})
    assert response.status_code == 302
    flush()
    sub = Subscription.objects.get(user=user)
    assert sub.plan.code == "studio"
    proration = SubscriptionPeriod.objects.get(subscription=sub, kind="PRORATION")
    assert proration.billing_reason == "subscription_update"
    assert proration.credits == 700  # the clock stands still: the whole period is left
    assert proration.amount == 45
    assert balance(user) == 1000


def test_a_failed_renewal_is_past_due_and_a_cancelled_one_ends(member, billing, flush):
    user, clock = member
    billing.fail_renewals = True
    advance(billing, clock)
    flush()
    sub = Subscription.objects.get(user=user)
    assert sub.status == "PAST_DUE" and balance(user) == 300

    billing.fail_renewals = False
    subscription_cancel(subscription=sub)
    flush()
    assert Subscription.objects.get(pk=sub.pk).cancel_at_period_end
    sdk().v1.subscriptions.cancel(sub.provider_subscription_id)
    flush()
    sub.refresh_from_db()
    user.refresh_from_db()
    assert sub.status == "ENDED" and (user.status, user.membership_tier) == ("ACTIVE", "FREE")


def test_refunding_a_period_refunds_the_payment_and_takes_its_credits_back(member, billing):
    user, _ = member
    credits_spend(user=user, amount=50, idempotency_key="s2")
    period = SubscriptionPeriod.objects.get(subscription__user=user)

    done = subscription_period_refund(period=period, reason="goodwill", idempotency_key="r-1")

    assert done.status == "REFUNDED" and done.credits_clawed_back == 250
    assert done.credits_unrecovered == 50
    assert balance(user) == 0
    refund = next(iter(billing.refunds.values()))
    assert refund["amount"] == 2400 and refund["payment_intent"] == period.provider_payment_id
    again = subscription_period_refund(period=period, reason="goodwill", idempotency_key="r-1")
    assert again.credits_clawed_back == 250 and len(billing.refunds) == 1


def test_a_refund_or_lost_dispute_made_at_stripe_takes_back_that_periods_credits(
    member, billing, flush
):
    user, _ = member
    period = SubscriptionPeriod.objects.get(subscription__user=user)
    charge = billing.refund(period.provider_payment_id, 1200)  # half, from Stripe's dashboard
    flush([billing.event("charge.refunded", charge)] * 2)
    period.refresh_from_db()
    assert (period.status, period.amount_refunded, period.credits_clawed_back) == (
        "PARTIALLY_REFUNDED",
        12,
        150,
    )
    assert balance(user) == 150

    dispute = billing.dispute(period.provider_payment_id, status="lost")
    flush([billing.event("charge.dispute.closed", dispute)])
    period.refresh_from_db()
    assert (period.status, period.credits_clawed_back) == ("REFUNDED", 300)
    assert balance(user) == 0


def test_the_membership_page_links_stripes_customer_portal(client, member, billing):
    user, _ = member
    user.refresh_from_db()
    assert user.stripe_customer_id.startswith("cus_")
    page = client.get("/billing/plan/").content.decode()
    assert 'data-testid="portal"' in page

    response = client.post("/billing/plan/portal/")

    assert response.status_code == 303 and response["Location"].startswith(f"{billing.url}/portal/")
    call = billing.calls("POST", "/v1/billing_portal/sessions")[-1]
    assert call["params"] == {
        "customer": user.stripe_customer_id,
        "return_url": "http://testserver/billing/plan/",
    }
