"""Membership emails: a payment that failed, a cancellation, a renewal coming up.

Each is queued with ``notices.services.email_queue`` inside the transaction of the event it
tells about (the webhook's or the sweep's), so it exists exactly when the event was recorded,
and once per event key:

- payment failed: ``subscription:<id>:invoice:<provider invoice id>`` (Stripe, the sandbox);
  PayPal's ``BILLING.SUBSCRIPTION.PAYMENT.FAILED`` names no invoice, so once per period
  (``subscription:<id>:payment-failed:<period end>``);
- cancelled: ``subscription:<id>:cancel-at:<period end>`` when the member (or the provider)
  sets it to end with the period, and ``subscription:<id>:ended`` when it ends;
- renewing: ``subscription:<id>:renews:<period end>``, from the periodic sweep
  ``subscriptions_renewing_notify`` (``payments.tasks.notify_renewing_subscriptions``) a few
  days (``RENEWAL_NOTICE_AHEAD``) before the period ends, for active memberships that are not
  set to end.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import OutboundEmail
from notices.services import email_queue

from .app_settings import site_url
from .models import Subscription
from .templatetags.money import money as format_money

#: How long before a period's end its renewal is announced.
RENEWAL_NOTICE_AHEAD = timedelta(days=3)
BATCH = 500


def _stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y%m%dT%H%M%S.%fZ") if moment else "none"


def _day(moment: datetime | None) -> str:
    return f"{moment:%B %-d, %Y}" if moment else ""


def _context(sub: Subscription) -> dict:
    return {
        "plan": sub.plan.name,
        "amount_display": format_money(sub.amount, sub.currency),
        "manage_url": site_url() + reverse("payments:subscription"),
    }


def subscription_payment_failed_email_queue(
    *, sub: Subscription, invoice_id: str = "", amount=None, currency: str = ""
):
    """The member's payment for ``sub`` failed (inside the event's transaction)."""
    key = (
        f"subscription:{sub.pk}:invoice:{invoice_id}"
        if invoice_id
        else f"subscription:{sub.pk}:payment-failed:{_stamp(sub.current_period_end)}"
    )
    context = _context(sub)
    if amount:
        context["amount_display"] = format_money(amount, currency or sub.currency)
    context["next_step"] = (
        "Your membership stays on for now and the payment will be tried again over the next "
        "days; update your payment method so it goes through."
    )
    return email_queue(user=sub.user, kind="subscription_payment_failed", key=key, context=context)


def subscription_cancelled_email_queue(*, sub: Subscription, ended: bool):
    """``sub`` was set to end with its period (``ended=False``) or has ended."""
    key = (
        f"subscription:{sub.pk}:ended"
        if ended
        else f"subscription:{sub.pk}:cancel-at:{_stamp(sub.current_period_end)}"
    )
    context = {
        **_context(sub),
        "ended": ended,
        "ends_on": _day(sub.ended_at if ended else sub.current_period_end),
    }
    return email_queue(user=sub.user, kind="subscription_cancelled", key=key, context=context)


def renewing_key(sub: Subscription) -> str:
    return f"subscription_renewing:subscription:{sub.pk}:renews:{_stamp(sub.current_period_end)}"


def subscriptions_renewing_notify(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """Queue the renewal reminder of every active membership whose period ends within
    ``RENEWAL_NOTICE_AHEAD`` and that is not set to end; once per period. Returns how many."""
    now = now or timezone.now()
    subs = list(
        Subscription.objects.filter(
            status=Subscription.Status.ACTIVE,
            cancel_at_period_end=False,
            current_period_end__gt=now,
            current_period_end__lte=now + RENEWAL_NOTICE_AHEAD,
            user__is_active=True,
            user__deleted_at__isnull=True,
        )
        .select_related("user", "plan", "pending_plan")
        .order_by("current_period_end", "pk")[: limit * 2]
    )
    announced = set(
        OutboundEmail.objects.filter(event_key__in=[renewing_key(sub) for sub in subs]).values_list(
            "event_key", flat=True
        )
    )
    queued = 0
    for sub in subs:
        if queued >= limit or renewing_key(sub) in announced:
            continue
        with transaction.atomic():
            fresh = (
                Subscription.objects.select_for_update(of=("self",))
                .select_related("user", "plan", "pending_plan")
                .get(pk=sub.pk)
            )
            if (
                fresh.status != Subscription.Status.ACTIVE
                or fresh.cancel_at_period_end
                or fresh.current_period_end != sub.current_period_end
            ):
                continue
            next_plan = fresh.pending_plan or fresh.plan
            price = next_plan.prices.filter(currency=fresh.currency).first()
            context = {
                **_context(fresh),
                "plan": next_plan.name,
                "renews_on": _day(fresh.current_period_end),
            }
            if price is not None:
                context["amount_display"] = format_money(price.amount, price.currency)
            email = email_queue(
                user=fresh.user,
                kind="subscription_renewing",
                key=renewing_key(fresh).removeprefix("subscription_renewing:"),
                context=context,
            )
        queued += email is not None
    return queued
