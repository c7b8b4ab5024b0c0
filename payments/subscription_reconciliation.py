"""Reconciliation of memberships: each subscription live here (or ended lately) is read
back from its provider with its paid invoices. A paid period we never recorded is granted
(the same idempotent service as the webhook); a subscription the provider ended, or whose
status, plan or period differs, is brought in line; each difference is in the run's report.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import Subscription, SubscriptionPeriod
from .providers import get_provider
from .reconciliation import MORE_COLLECTORS, Collected, Finding
from .subscriptions import STATUS_OF, subscription_record_invoice, subscription_sync

SOURCE = "reconciliation"
#: Subscriptions ended this recently are still compared (a late paid invoice).
ENDED_LOOKBACK = timedelta(days=3)


def subscriptions_collect(*, name: str) -> Collected:
    """What differs between ``name``'s subscriptions and ours, each with its fix.
    Raises ProviderError when the provider cannot be read."""
    collected = Collected()
    provider = get_provider(name)
    if not hasattr(provider, "subscription_invoices"):
        return collected
    recent = timezone.now() - ENDED_LOOKBACK
    subs = Subscription.objects.filter(
        provider=name, provider_subscription_id__isnull=False
    ).exclude(status=Subscription.Status.ENDED, ended_at__lt=recent)
    for sub in subs:
        collected.counts["subscriptions"] += 1
        remote = provider.fetch_subscription(subscription_id=sub.provider_subscription_id)
        status = STATUS_OF.get(remote.status)
        differs = []
        if status != sub.status and not (sub.status == Subscription.Status.ENDED):
            differs.append(f"status {sub.status} here, {remote.status} at the provider")
        if remote.period_end and sub.current_period_end != remote.period_end:
            differs.append("the current period differs")
        if sub.status == Subscription.Status.ENDED and status in (
            Subscription.Status.ACTIVE,
            Subscription.Status.PAST_DUE,
        ):
            # A checkout given up here that the buyer finished anyway: staff decide
            # (cancel and refund it at the provider, or restore it).
            collected.add(
                Finding(
                    kind="subscription_live_at_provider_only",
                    provider=name,
                    detail=f"Subscription #{sub.pk} ended here but is {remote.status} at the provider.",
                    reference=remote.id,
                )
            )
        if differs:
            kind = (
                "subscription_ended_at_provider"
                if status == Subscription.Status.ENDED
                else "subscription_differs"
            )
            collected.add(
                Finding(
                    kind=kind,
                    provider=name,
                    detail=f"Subscription #{sub.pk}: {'; '.join(differs)}.",
                    reference=remote.id,
                    fix=_fix_sync(sub.pk, remote),
                )
            )
        known = set(
            SubscriptionPeriod.objects.filter(subscription=sub).values_list(
                "provider_invoice_id", flat=True
            )
        )
        if not remote.id.startswith(("sub_", "sbx_sub_", "I-")):
            continue
        for invoice in provider.subscription_invoices(subscription_id=remote.id):
            collected.counts["subscription_invoices"] += 1
            if invoice.status == "paid" and invoice.id not in known:
                collected.add(
                    Finding(
                        kind="subscription_period_missing",
                        provider=name,
                        detail=(
                            f"Subscription #{sub.pk}: invoice {invoice.id} ({invoice.amount} "
                            f"{invoice.currency}, {invoice.billing_reason}) was paid but never recorded."
                        ),
                        reference=invoice.id,
                        fix=_fix_record(sub.pk, invoice),
                    )
                )
    return collected


def _fix_sync(subscription_id: int, remote):
    def fix() -> tuple[bool, str]:
        with transaction.atomic(durable=True):
            before = Subscription.objects.get(pk=subscription_id)
            after = subscription_sync(subscription_id=subscription_id, remote=remote)
        changed = (before.status, before.current_period_end) != (
            after.status,
            after.current_period_end,
        )
        return changed, f"subscription #{subscription_id} is now {after.status.lower()}"

    return fix


def _fix_record(subscription_id: int, invoice):
    def fix() -> tuple[bool, str]:
        with transaction.atomic(durable=True):
            period, created = subscription_record_invoice(
                subscription_id=subscription_id, invoice=invoice, source=SOURCE
            )
        return created, f"{period.invoice_number} recorded, {period.credits} credits granted"

    return fix


def register() -> None:
    if subscriptions_collect not in MORE_COLLECTORS:
        MORE_COLLECTORS.append(subscriptions_collect)
