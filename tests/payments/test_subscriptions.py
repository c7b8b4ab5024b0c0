"""Memberships on the sandbox: per-period lots, rollover, changes, past due, the end; events
delivered twice, late or out of order converge."""

import json
import secrets
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from credits.models import CreditBalance, CreditLot, LedgerEntry
from credits.services import credits_spend
from payments.models import (
    SandboxInvoice,
    SandboxSubscription,
    Subscription,
    SubscriptionPeriod,
    SubscriptionPlan,
    WebhookEvent,
)
from payments.providers.sandbox import SIGNATURE_HEADER, sign
from payments.providers.sandbox_subscriptions import (
    sandbox_cancel,
    sandbox_renew,
    sandbox_subscribe,
)
from payments.subscriptions import (
    subscription_cancel,
    subscription_change_plan,
    subscription_live,
    subscription_resume,
    subscription_start,
)
from payments.webhooks import webhook_ingest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plans")]


@pytest.fixture
def sandbox_subs(sandbox_only, settings):
    # Nothing listens here: the sandbox hands its signed events to the pipeline in-process.
    settings.PAYMENTS_SANDBOX_WEBHOOK_URL = "http://127.0.0.1:9/webhooks/sandbox/"


@pytest.fixture
def subscribe(sandbox_subs, django_capture_on_commit_callbacks):
    def run(user, code="pro"):
        plan = SubscriptionPlan.objects.get(code=code)
        sub, checkout = subscription_start(
            user=user,
            plan=plan,
            provider_name="SANDBOX",
            success_url="http://testserver/billing/plan/",
            cancel_url="http://testserver/pricing/",
        )
        token = checkout.redirect_url.rstrip("/").split("/")[-1]
        with django_capture_on_commit_callbacks(execute=True):
            sandbox_subscribe(token=token)
        return Subscription.objects.get(pk=sub.pk), token

    return run


@pytest.fixture
def events(django_capture_on_commit_callbacks):
    """Run a sandbox action and process every event it sends."""

    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def live_lots(user):
    return {
        (lot.source, lot.remaining)
        for lot in CreditLot.objects.filter(user=user, remaining__gt=0)
        if lot.expires_at is None or lot.expires_at > timezone.now()
    }


def test_subscribing_grants_the_plan_credits_as_a_paid_lot_ending_with_the_period(
    make_user, subscribe
):
    user = make_user()
    sub, _ = subscribe(user, "pro")

    assert sub.status == "ACTIVE" and sub.plan.code == "pro"
    user.refresh_from_db()
    assert (user.status, user.membership_tier) == ("SUBSCRIBED", "PRO")
    assert user.membership_expires_at == sub.current_period_end
    assert balance(user) == 300
    lot = CreditLot.objects.get(user=user)
    assert (lot.source, lot.category, lot.original) == ("subscription", "paid", 300)
    assert lot.expires_at == sub.current_period_end
    assert str(lot.cost_basis) == "0.080000" and lot.currency == "USD"
    period = SubscriptionPeriod.objects.get(subscription=sub)
    assert period.invoice_number.startswith(f"INV-{timezone.now().year}-")
    assert (period.amount, period.credits) == (24, 300)


def test_renewal_rolls_over_up_to_the_cap_and_expires_the_rest_leaving_packs_alone(
    make_user, subscribe, events
):
    user = make_user(credits=40)  # a bonus lot: not plan credits
    sub, token = subscribe(user, "pro")
    # Plan credits end soonest: they burn before the never-expiring bonus.
    credits_spend(user=user, amount=80, idempotency_key="spend-1")
    assert balance(user) == 260

    events(sandbox_renew, token=token)

    # 220 plan credits unused: all expire, 150 (the cap) come back, then the new 300.
    assert balance(user) == 490
    expired = LedgerEntry.objects.filter(user=user, kind="EXPIRY")
    assert sum(e.amount for e in expired) == -220
    rolled = CreditLot.objects.get(user=user, source="rollover")
    assert rolled.original == 150 and rolled.category == "paid"
    sub.refresh_from_db()
    assert rolled.expires_at == sub.current_period_end
    assert live_lots(user) == {("rollover", 150), ("subscription", 300), ("bonus", 40)}
    assert SubscriptionPeriod.objects.filter(subscription=sub).count() == 2

    # The next renewal rolls over the period's credits only: rollover never rolls again.
    events(sandbox_renew, token=token)
    assert live_lots(user) == {("rollover", 150), ("subscription", 300), ("bonus", 40)}
    assert balance(user) == 490
    call_command("check_ledger")


def test_a_zero_cap_rolls_nothing_over(make_user, subscribe, events):
    SubscriptionPlan.objects.filter(code="basic").update(rollover_cap=0)
    user = make_user()
    _, token = subscribe(user, "basic")

    events(sandbox_renew, token=token)

    assert live_lots(user) == {("subscription", 100)}
    assert not CreditLot.objects.filter(user=user, source="rollover").exists()


def test_duplicated_replayed_and_reordered_events_grant_each_period_once(
    make_user, subscribe, events, django_capture_on_commit_callbacks
):
    user = make_user()
    sub, token = subscribe(user, "pro")
    events(sandbox_renew, token=token)
    assert balance(user) == 450

    # Every event sent so far delivered again under fresh ids (a provider retrying after a
    # lost acknowledgement re-sends the same body; a replay tool sends new ids), in reverse
    # order: the subscription and the invoices are read from the sandbox, never the body.
    bodies = [json.loads(e.raw_body) for e in WebhookEvent.objects.order_by("-pk")]
    for body in bodies:
        body["id"] = f"evt_sbx_{secrets.token_hex(12)}"
        raw = json.dumps(body).encode()
        with django_capture_on_commit_callbacks(execute=True):
            webhook_ingest(provider_name="SANDBOX", body=raw, headers={SIGNATURE_HEADER: sign(raw)})
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"PROCESSED"}
    assert balance(user) == 450
    assert SubscriptionPeriod.objects.filter(subscription=sub).count() == 2
    assert LedgerEntry.objects.filter(user=user, kind="SUBSCRIPTION_GRANT").count() == 3
    call_command("check_ledger")


def test_an_upgrade_grants_the_credit_difference_for_the_rest_of_the_period_at_once(
    make_user, subscribe, events
):
    user = make_user()
    sub, _ = subscribe(user, "basic")
    assert balance(user) == 100

    sub = events(
        subscription_change_plan, subscription=sub, plan=SubscriptionPlan.objects.get(code="studio")
    )

    assert sub.plan.code == "studio"
    user.refresh_from_db()
    assert user.membership_tier == "PRO"
    proration = SubscriptionPeriod.objects.get(subscription=sub, kind="PRORATION")
    # Almost the whole period is left: almost all of the 900 credits' difference.
    assert 895 <= proration.credits <= 900
    assert balance(user) == 100 + proration.credits
    assert 59 < proration.amount <= 60
    assert proration.invoice_number != SubscriptionPeriod.objects.get(kind="PERIOD").invoice_number


def test_a_downgrade_waits_for_the_period_end_and_cancel_resume_work_before_it(
    make_user, subscribe, events
):
    user = make_user()
    sub, token = subscribe(user, "studio")

    sub = events(
        subscription_change_plan, subscription=sub, plan=SubscriptionPlan.objects.get(code="basic")
    )
    assert (sub.plan.code, sub.pending_plan.code) == ("studio", "basic")
    sub = events(subscription_resume, subscription=sub)
    assert sub.pending_plan is None
    sub = events(
        subscription_change_plan, subscription=sub, plan=SubscriptionPlan.objects.get(code="basic")
    )

    events(sandbox_renew, token=token)

    sub.refresh_from_db()
    assert sub.plan.code == "basic" and sub.pending_plan is None
    # The ending Studio period rolled over its cap (500), then Basic's 100 arrived.
    assert live_lots(user) == {("rollover", 500), ("subscription", 100)}
    user.refresh_from_db()
    assert user.membership_tier == "BASIC"

    sub = events(subscription_cancel, subscription=sub)
    assert sub.cancel_at_period_end and sub.status == "ACTIVE"
    sub = events(subscription_resume, subscription=sub)
    assert not sub.cancel_at_period_end


def test_cancel_at_period_end_ends_the_membership_at_renewal_and_credits_run_out_with_it(
    make_user, subscribe, events
):
    user = make_user()
    sub, token = subscribe(user, "pro")
    sub = events(subscription_cancel, subscription=sub)
    user.refresh_from_db()
    assert user.status == "SUBSCRIBED"

    events(sandbox_renew, token=token)

    sub.refresh_from_db()
    assert sub.status == "ENDED" and sub.ended_at is not None
    user.refresh_from_db()
    assert (user.status, user.membership_tier, user.membership_expires_at) == (
        "ACTIVE",
        "FREE",
        None,
    )
    assert subscription_live(user=user) is None
    # No new period was paid: the last one's credits stay until their lot's own end.
    assert SubscriptionPeriod.objects.filter(subscription=sub).count() == 1
    assert balance(user) == 300


def test_a_failed_renewal_is_past_due_grants_nothing_and_keeps_credits_usable(
    make_user, subscribe, events
):
    user = make_user()
    sub, token = subscribe(user, "pro")

    events(sandbox_renew, token=token, fail=True)

    sub.refresh_from_db()
    assert sub.status == "PAST_DUE"
    user.refresh_from_db()
    assert user.status == "SUBSCRIBED"
    assert balance(user) == 300
    assert SandboxInvoice.objects.filter(status="failed").count() == 1
    credits_spend(user=user, amount=10, idempotency_key="past-due-spend")

    # Paying again starts a fresh period: the old one's unused credits roll over.
    events(sandbox_renew, token=token)
    sub.refresh_from_db()
    assert sub.status == "ACTIVE"
    assert live_lots(user) == {("rollover", 150), ("subscription", 300)}


def test_the_provider_ending_a_subscription_ends_it_here(make_user, subscribe, events):
    user = make_user()
    sub, token = subscribe(user, "pro")

    events(sandbox_cancel, token=token)

    sub.refresh_from_db()
    assert sub.status == "ENDED"
    user.refresh_from_db()
    assert user.membership_tier == "FREE"


def test_a_user_has_at_most_one_live_subscription(make_user, subscribe):
    from payments.subscriptions import SubscriptionError

    user = make_user()
    subscribe(user, "pro")
    with pytest.raises(SubscriptionError):
        subscribe(user, "basic")
    assert Subscription.objects.filter(user=user).count() == 1
    assert SandboxSubscription.objects.count() == 1


def test_an_unfinished_checkout_gives_way_to_a_new_one(make_user, sandbox_subs):
    user = make_user()
    plan = SubscriptionPlan.objects.get(code="pro")
    kwargs = dict(provider_name="SANDBOX", success_url="http://x/", cancel_url="http://x/")
    first, _ = subscription_start(user=user, plan=plan, **kwargs)
    second, _ = subscription_start(user=user, plan=plan, **kwargs)
    first.refresh_from_db()
    assert first.status == "ENDED" and second.status == "INCOMPLETE"
    assert first.current_period_end is None
    assert timezone.now() - second.created_at < timedelta(minutes=1)


def test_reconciliation_grants_missed_periods_and_ends_what_the_provider_ended(
    make_user, subscribe, django_capture_on_commit_callbacks
):
    from payments.reconciliation import reconcile_payments

    user = make_user()
    sub, token = subscribe(user, "pro")
    # The renewal's and the cancellation's webhooks are lost (their messages never run).
    with django_capture_on_commit_callbacks(execute=False):
        sandbox_renew(token=token)
    with django_capture_on_commit_callbacks(execute=False):
        sandbox_cancel(token=token)
    WebhookEvent.objects.exclude(type="subscription.invoice_paid").delete()
    WebhookEvent.objects.filter(status="RECEIVED").delete()
    assert balance(user) == 300

    run = reconcile_payments(since=timezone.now() - timedelta(days=1))

    kinds = sorted(d["kind"] for d in run.discrepancies)
    assert kinds == ["subscription_ended_at_provider", "subscription_period_missing"]
    assert {d["action"] for d in run.discrepancies} == {"fixed"}
    sub.refresh_from_db()
    assert sub.status == "ENDED"
    assert SubscriptionPeriod.objects.filter(subscription=sub).count() == 2
    assert balance(user) == 150 + 300

    again = reconcile_payments(since=timezone.now() - timedelta(days=1))
    assert again.discrepancies == [] and again.status == "CLEAN"


def test_a_trial_grants_promotional_plan_credits_then_the_first_paid_period(
    make_user, sandbox_subs, events
):
    user = make_user()
    plan = SubscriptionPlan.objects.get(code="pro")
    sub, checkout = subscription_start(
        user=user,
        plan=plan,
        provider_name="SANDBOX",
        success_url="http://x/",
        cancel_url="http://x/",
        trial_days=14,
    )
    events(sandbox_subscribe, token=checkout.redirect_url.rstrip("/").split("/")[-1])

    sub.refresh_from_db()
    assert sub.status == "ACTIVE"
    assert sub.current_period_end - sub.current_period_start == timedelta(days=14)
    trial = CreditLot.objects.get(user=user)
    assert (trial.category, trial.original, trial.cost_basis) == ("promotional", 300, 0)
    assert SubscriptionPeriod.objects.get(subscription=sub).amount == 0

    events(sandbox_renew, token=checkout.redirect_url.rstrip("/").split("/")[-1])
    paid = CreditLot.objects.get(user=user, source="subscription", category="paid")
    assert paid.original == 300 and str(paid.cost_basis) == "0.080000"
    assert CreditLot.objects.get(user=user, source="rollover").category == "promotional"
