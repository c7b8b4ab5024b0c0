"""Membership emails through a real SMTP server: a failed payment, a cancellation (asked for,
then the end) and the renewal reminder of the periodic sweep, each once per event."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings

from accounts.models import OutboundEmail
from payments.models import SandboxInvoice, SandboxSubscription, Subscription, SubscriptionPlan
from payments.providers.sandbox_subscriptions import (
    FAILED,
    deliver,
    event_body,
    sandbox_renew,
    sandbox_subscribe,
)
from payments.subscription_notices import subscriptions_renewing_notify
from payments.subscriptions import (
    subscription_cancel,
    subscription_live,
    subscription_resume,
    subscription_start,
)
from tests.notices.conftest import html_part, mailbox, smtp_server, text_part  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plans")]


@pytest.fixture
def events(sandbox_only, settings, django_capture_on_commit_callbacks):
    """Run a sandbox action and process every event it sends, and every email queued."""
    settings.PAYMENTS_SANDBOX_WEBHOOK_URL = "http://127.0.0.1:9/webhooks/sandbox/"

    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


@pytest.fixture
def member(make_user, events, mailbox):
    user = make_user("ada@example.com", name="Ada")
    sub, checkout = subscription_start(
        user=user,
        plan=SubscriptionPlan.objects.get(code="pro"),
        provider_name="SANDBOX",
        success_url="http://testserver/billing/plan/",
        cancel_url="http://testserver/pricing/",
    )
    token = checkout.redirect_url.rstrip("/").split("/")[-1]
    events(sandbox_subscribe, token=token)
    mailbox.clear()  # the first period's receipt
    return Subscription.objects.get(pk=sub.pk), token


def subjects(mailbox) -> list[str]:
    return [m["Subject"] for m in mailbox.messages]


def test_a_failed_renewal_is_emailed_once_per_invoice(member, events, mailbox):
    sub, token = member

    events(sandbox_renew, token=token, fail=True)

    assert subjects(mailbox) == ["Your Pro subscription payment failed"]
    (message,) = mailbox.messages
    assert message["To"] == "ada@example.com"
    body = text_part(message)
    assert "Hello Ada" in body and "we could not take $24.00 for your Pro subscription" in body
    assert "tried again" in body and "https://credits.example/billing/plan/" in body
    assert "Update your payment method" in html_part(message)
    assert message["List-Unsubscribe"] is None  # transactional: always sent

    # The provider tells again about the same invoice (a new event): no second email.
    invoice = SandboxInvoice.objects.get(status="failed")
    sandbox_sub = SandboxSubscription.objects.get(token=token)
    events(deliver, event_body(sandbox_sub, FAILED, invoice))
    assert len(mailbox.messages) == 1
    assert OutboundEmail.objects.filter(kind="subscription_payment_failed").count() == 1
    assert Subscription.objects.get(pk=sub.pk).status == "PAST_DUE"


def test_a_cancellation_is_emailed_when_asked_for_and_when_it_ends(member, events, mailbox):
    sub, token = member
    ends_on = f"{sub.current_period_end:%B %-d, %Y}"

    events(subscription_cancel, subscription=sub)
    assert subjects(mailbox) == ["Your Pro subscription is cancelled"]
    assert f"is cancelled and ends on {ends_on}" in text_part(mailbox.messages[0])

    # Changed their mind and back again in the same period: the first email said it all.
    events(subscription_resume, subscription=subscription_live(user=sub.user))
    events(subscription_cancel, subscription=subscription_live(user=sub.user))
    assert len(mailbox.messages) == 1

    events(sandbox_renew, token=token)  # the period ends: the membership with it
    assert Subscription.objects.get(pk=sub.pk).status == "ENDED"
    assert len(mailbox.messages) == 2
    ended = mailbox.messages[1]
    assert ended["Subject"] == "Your Pro subscription is cancelled"
    assert "subscription has ended" in text_part(ended)
    assert "has ended" in html_part(ended)


def test_the_sweep_reminds_of_a_renewal_once_a_period_days_ahead(
    member, events, mailbox, django_capture_on_commit_callbacks
):
    sub, token = member

    def sweep(now):
        with django_capture_on_commit_callbacks(execute=True):
            return subscriptions_renewing_notify(now=now)

    assert sweep(sub.current_period_end - timedelta(days=4)) == 0  # too early
    assert sweep(sub.current_period_end - timedelta(days=2)) == 1
    assert sweep(sub.current_period_end - timedelta(days=1)) == 0  # this period's is sent

    (message,) = mailbox.messages
    renews_on = f"{sub.current_period_end:%B %-d, %Y}"
    assert message["Subject"] == f"Your Pro subscription renews on {renews_on}"
    assert f"renews on {renews_on} for $24.00" in text_part(message)
    assert (
        message["List-Unsubscribe"].strip().startswith("<https://credits.example/")
    )  # optional kind

    events(sandbox_renew, token=token)  # the next period, its own reminder
    sub.refresh_from_db()
    mailbox.clear()
    assert sweep(sub.current_period_end - timedelta(days=2)) == 1
    assert len([s for s in subjects(mailbox) if "renews on" in s]) == 1

    # A membership set to end is not reminded of a renewal that will not happen.
    events(subscription_cancel, subscription=sub)
    mailbox.clear()
    assert sweep(sub.current_period_end - timedelta(hours=1)) == 0
    assert mailbox.messages == []


def test_the_renewal_sweep_is_a_beat_entry():
    entry = django_settings.CELERY_BEAT_SCHEDULE["notify-renewing-subscriptions"]
    assert entry["task"] == "payments.tasks.notify_renewing_subscriptions"
