"""Subscriptions: starting one, following the provider's word, granting each paid period.

The provider is the source of truth for a subscription's status, plan and period: every
event (and every change a user makes) ends with the subscription read back from the
provider (``ProviderSubscription``) and applied by ``subscription_sync``, so duplicated,
reordered and late events converge on the provider's present state. Each paid invoice
(``ProviderInvoice``) is recorded once (``SubscriptionPeriod``, unique on the provider's
invoice id and on the subscription's period start) with its invoice number, and its credits
are one paid lot expiring at the period's end, granted under a key per subscription and
period (``subscription:<id>:period:<start>``; an upgrade's proration
``subscription:<id>:proration:<invoice id>``).

At each renewal, the ending period's plan credits (its period and proration lots) end:
every unused credit is written as an EXPIRY entry, then up to the ending plan's rollover cap
comes back as a paid rollover lot expiring at the new period's end
(``credits.services.credits_roll_over``, keyed per ending period: a period rolls over once,
and rollover lots never roll again). Pack credits are never touched.

Provider calls happen outside any transaction; the database work of each call is one
durable transaction.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.services import user_membership_follow
from credits.models import CreditLot, LedgerKind, LotCategory, LotSource
from credits.references import Source, register_source_type
from credits.services import credits_grant, credits_roll_over

from .exceptions import PaymentsError, ProviderError
from .guards import assert_no_transaction
from .invoices import invoice_next_number
from .models import PlanPrice, Subscription, SubscriptionPeriod, SubscriptionPlan
from .providers import get_provider
from .providers.base import CheckoutSession, ProviderInvoice, ProviderSubscription
from .subscription_notices import (
    subscription_cancelled_email_queue,
    subscription_payment_failed_email_queue,
)
from .vouchers import (
    TRIAL_PAYPAL_MESSAGE,
    VoucherInvalid,
    voucher_redeem_for_subscription,
    voucher_release_for_subscription,
    voucher_reserve_trial,
)

logger = logging.getLogger(__name__)

PERIOD_SOURCE = "payments.subscription_period"
COST_BASIS_STEP = Decimal("0.000001")
#: The provider's statuses and ours.
STATUS_OF = {
    "incomplete": Subscription.Status.INCOMPLETE,
    "active": Subscription.Status.ACTIVE,
    "trialing": Subscription.Status.ACTIVE,
    "past_due": Subscription.Status.PAST_DUE,
    "unpaid": Subscription.Status.PAST_DUE,
    "canceled": Subscription.Status.ENDED,
    "incomplete_expired": Subscription.Status.ENDED,
}


class SubscriptionError(PaymentsError):
    """A subscription request that cannot be done as asked (nothing was changed)."""

    code = "subscription_error"
    retryable = False


class SubscriptionNotKnown(PaymentsError):
    """An event about a subscription this site has no record of (yet): tried again later."""

    code = "subscription_not_known"


def period_source(period: SubscriptionPeriod) -> Source:
    return Source(PERIOD_SOURCE, period.pk)


def register() -> None:
    register_source_type(
        name=PERIOD_SOURCE,
        label="subscription invoice",
        model=SubscriptionPeriod,
        export_column="subscription_period_id",
        customer_url_name="payments:subscription",
    )


def plan_price(*, plan: SubscriptionPlan, currency: str = "USD") -> PlanPrice:
    price = plan.prices.filter(currency=currency.upper()).first()
    if price is None:
        raise SubscriptionError(f"The {plan.name} plan has no price in {currency}.")
    return price


def subscription_live(*, user) -> Subscription | None:
    """The user's live subscription (incomplete, active or past due), if any."""
    return (
        Subscription.objects.select_related("plan", "pending_plan")
        .filter(user=user, status__in=Subscription.LIVE)
        .first()
    )


# --- starting -------------------------------------------------------------------------------


def subscription_start(
    *,
    user,
    plan: SubscriptionPlan,
    provider_name: str,
    success_url: str,
    cancel_url: str,
    trial_days: int = 0,
    voucher_code: str = "",
) -> tuple[Subscription, CheckoutSession]:
    """Open the provider's checkout for ``plan``. A user has at most one live subscription:
    an active or past-due one refuses (change plans instead); an unfinished checkout of
    theirs is given up for the new one. Raises SubscriptionError, ProviderError.

    ``trial_days`` (for a voucher, say): the provider starts the subscription with that
    many free days (Stripe's ``trial_period_days``); its first invoice is for 0, and that
    period's plan credits are granted as a promotional lot (no cost basis) ending with the
    trial; the first paid period follows at the trial's end unless cancelled.

    ``voucher_code``: a plan-trial code, whose use is reserved for this checkout in the
    transaction that creates it (its days become ``trial_days``); released when the checkout
    ends unpaid, redeemed when the membership starts. Raises VoucherError when it cannot be
    used; PayPal cannot start with a trial here."""
    if not isinstance(trial_days, int) or not 0 <= trial_days <= 730:
        raise SubscriptionError("A trial is between 0 and 730 days.")
    assert_no_transaction("subscription_start")
    if not plan.active:
        raise SubscriptionError(f"The {plan.name} plan is not on sale.")
    if voucher_code and provider_name == "PAYPAL":
        raise VoucherInvalid(TRIAL_PAYPAL_MESSAGE)
    price = plan_price(plan=plan)
    provider = get_provider(provider_name)
    with transaction.atomic(durable=True):
        live = (
            Subscription.objects.select_for_update()
            .filter(user=user, status__in=Subscription.LIVE)
            .first()
        )
        if live is not None and live.status != Subscription.Status.INCOMPLETE:
            raise SubscriptionError(
                "You already have a membership: change its plan on the billing page instead."
            )
        if live is not None:
            live.status, live.ended_at = Subscription.Status.ENDED, timezone.now()
            live.save(update_fields=["status", "ended_at", "updated_at"])
            voucher_release_for_subscription(subscription_id=live.pk)
        try:
            subscription = Subscription.objects.create(
                user=user,
                plan=plan,
                provider=provider_name,
                currency=price.currency,
                amount=price.amount,
            )
        except IntegrityError:
            raise SubscriptionError("Another membership checkout is under way.") from None
        if voucher_code:
            _, trial_days = voucher_reserve_trial(
                user=user, code=voucher_code, subscription=subscription
            )
    try:
        checkout = provider.create_subscription_checkout(
            subscription=subscription,
            success_url=success_url,
            cancel_url=cancel_url,
            **({"trial_days": trial_days} if trial_days else {}),
        )
    except ProviderError:
        # No checkout was opened: the attempt ends here and gives its trial use back.
        with transaction.atomic(durable=True):
            Subscription.objects.filter(
                pk=subscription.pk, status=Subscription.Status.INCOMPLETE
            ).update(status=Subscription.Status.ENDED, ended_at=timezone.now())
            voucher_release_for_subscription(subscription_id=subscription.pk)
        raise
    Subscription.objects.filter(pk=subscription.pk).update(
        provider_subscription_id=checkout.provider_order_id
    )
    subscription.provider_subscription_id = checkout.provider_order_id
    return subscription, checkout


# --- following the provider -----------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionFacts:
    """What the provider says now about a subscription and (for an invoice event) its invoice."""

    subscription: ProviderSubscription
    invoice: ProviderInvoice | None = None


def subscription_fetch(*, provider_name: str, subscription_id: str, invoice_id: str = ""):
    """Ask the provider (outside any transaction). Raises ProviderError."""
    assert_no_transaction("subscription_fetch")
    provider = get_provider(provider_name)
    remote = provider.fetch_subscription(subscription_id=subscription_id)
    invoice = provider.fetch_invoice(invoice_id=invoice_id) if invoice_id else None
    return SubscriptionFacts(subscription=remote, invoice=invoice)


def find_subscription(*, provider_name: str, remote: ProviderSubscription) -> Subscription | None:
    found = Subscription.objects.filter(
        provider=provider_name, provider_subscription_id=remote.id
    ).first()
    if found is None and remote.subscription_ref.isdigit():
        found = Subscription.objects.filter(
            provider=provider_name, pk=int(remote.subscription_ref)
        ).first()
    return found


def subscription_apply(
    *, provider_name: str, facts: SubscriptionFacts, source: str, payment_failed: bool = False
) -> str:
    """Apply what the provider says (inside the caller's transaction): the subscription's
    state, then the invoice when it is paid. A failed invoice (or an event that says a
    payment failed, ``payment_failed``) queues the member's email, once per invoice.
    Returns a note for the event's record."""
    subscription = find_subscription(provider_name=provider_name, remote=facts.subscription)
    if subscription is None:
        raise SubscriptionNotKnown(f"No subscription here for {facts.subscription.id} (yet).")
    subscription = subscription_sync(subscription_id=subscription.pk, remote=facts.subscription)
    note = f"subscription {subscription.status.lower()}"
    if facts.invoice is not None and facts.invoice.status == "paid":
        period, created = subscription_record_invoice(
            subscription_id=subscription.pk, invoice=facts.invoice, source=source
        )
        note += f"; {period.invoice_number} {'recorded' if created else 'already recorded'}"
    elif facts.invoice is not None:
        note += f"; invoice {facts.invoice.id} {facts.invoice.status}"
    failed = facts.invoice.status == "failed" if facts.invoice is not None else payment_failed
    if failed and subscription.status != Subscription.Status.ENDED:
        subscription_payment_failed_email_queue(
            sub=subscription,
            invoice_id=facts.invoice.id if facts.invoice is not None else "",
            amount=facts.invoice.amount if facts.invoice is not None else None,
            currency=facts.invoice.currency if facts.invoice is not None else "",
        )
        note += "; payment failed email queued"
    return note


def subscription_sync(*, subscription_id: int, remote: ProviderSubscription) -> Subscription:
    """Make our subscription what the provider says it is now; membership follows."""
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("user", "plan")
            .get(pk=subscription_id)
        )
        status = STATUS_OF.get(remote.status)
        if status is None:
            raise ProviderError(f"Unknown subscription status {remote.status!r}.")
        if sub.status == Subscription.Status.ENDED:
            # Ended stays ended (a stale "active" read never revives it).
            status = Subscription.Status.ENDED
        plan = SubscriptionPlan.objects.filter(code=remote.plan_code).first() or sub.plan
        if (
            sub.pending_plan_id == plan.pk
            and remote.period_start is not None
            and remote.period_start == sub.current_period_start
        ):
            # A downgrade the provider already shows (Stripe) takes effect here with the
            # next period: the paid period keeps its plan.
            plan = sub.plan
        if (
            remote.id.startswith(("sub_", "I-", "sbx_sub_"))
            and sub.provider_subscription_id != remote.id
        ):
            sub.provider_subscription_id = remote.id
        if plan.pk != sub.plan_id:
            sub.plan = plan
            price = plan.prices.filter(currency=sub.currency).first()
            if price is not None:
                sub.amount = price.amount
        if sub.pending_plan_id == plan.pk:
            sub.pending_plan = None
        if sub.status == Subscription.Status.INCOMPLETE and status != sub.status:
            # The checkout ended: a trial code it reserved is redeemed if the membership
            # started, given back if it never did.
            if status == Subscription.Status.ENDED:
                voucher_release_for_subscription(subscription_id=sub.pk)
            else:
                voucher_redeem_for_subscription(subscription_id=sub.pk)
        was_running = sub.status in (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)
        cancel_was_set = sub.cancel_at_period_end
        if status == Subscription.Status.ENDED and sub.ended_at is None:
            sub.ended_at = timezone.now()
            sub.pending_plan = None
        if status != Subscription.Status.INCOMPLETE and sub.started_at is None:
            sub.started_at = timezone.now()
        sub.status = status
        sub.current_period_start = remote.period_start or sub.current_period_start
        sub.current_period_end = remote.period_end or sub.current_period_end
        sub.cancel_at_period_end = remote.cancel_at_period_end
        sub.save()
        if was_running and status == Subscription.Status.ENDED:
            subscription_cancelled_email_queue(sub=sub, ended=True)
        elif (
            status in (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)
            and sub.cancel_at_period_end
            and not cancel_was_set
        ):
            subscription_cancelled_email_queue(sub=sub, ended=False)
        if remote.customer_id and sub.provider == "STRIPE" and not sub.user.stripe_customer_id:
            # The customer Stripe made at checkout: later checkouts and the portal reuse it.
            type(sub.user).objects.filter(pk=sub.user_id, stripe_customer_id="").update(
                stripe_customer_id=remote.customer_id
            )
        _membership_follow(sub)
    return sub


def _membership_follow(sub: Subscription) -> None:
    live = sub.status in (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)
    if not live and sub.status != Subscription.Status.ENDED:
        return
    if (
        not live
        and Subscription.objects.filter(
            user_id=sub.user_id,
            status__in=(Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE),
        )
        .exclude(pk=sub.pk)
        .exists()
    ):
        return
    user_membership_follow(
        user=sub.user,
        subscribed=live,
        tier=sub.plan.membership_tier if live else None,
        expires_at=sub.current_period_end if live else None,
    )


def grant_key(period: SubscriptionPeriod) -> str:
    if period.kind == SubscriptionPeriod.Kind.PRORATION:
        return f"subscription:{period.subscription_id}:proration:{period.provider_invoice_id}"
    micros = int(period.starts_at.timestamp() * 1_000_000)
    return f"subscription:{period.subscription_id}:period:{micros}"


def subscription_record_invoice(
    *, subscription_id: int, invoice: ProviderInvoice, source: str
) -> tuple[SubscriptionPeriod, bool]:
    """Record a paid invoice once, number it, grant its credits and roll the ending period
    over. Returns the period and whether this call recorded it."""
    if invoice.status != "paid":
        raise SubscriptionError(f"Invoice {invoice.id} is {invoice.status}, not paid.")
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("user")
            .get(pk=subscription_id)
        )
        existing = SubscriptionPeriod.objects.filter(provider_invoice_id=invoice.id).first()
        if existing is not None:
            return existing, False
        plan = SubscriptionPlan.objects.filter(code=invoice.plan_code).first()
        if plan is None:
            raise SubscriptionError(
                f"Invoice {invoice.id} is for an unknown plan {invoice.plan_code!r}."
            )
        proration = invoice.billing_reason == "subscription_update"
        kind = SubscriptionPeriod.Kind.PRORATION if proration else SubscriptionPeriod.Kind.PERIOD
        if not proration:
            same = SubscriptionPeriod.objects.filter(
                subscription=sub, kind=kind, starts_at=invoice.period_start
            ).first()
            if same is not None:
                return same, False
        credits = _proration_credits(sub, invoice, plan) if proration else plan.credits_per_period
        now = timezone.now()
        sequence, number = invoice_next_number(year=now.year)
        period = SubscriptionPeriod.objects.create(
            subscription=sub,
            plan=plan,
            kind=kind,
            billing_reason=invoice.billing_reason,
            provider_invoice_id=invoice.id,
            provider_payment_id=invoice.payment_id,
            starts_at=invoice.period_start,
            ends_at=invoice.period_end,
            amount=invoice.amount,
            currency=invoice.currency.upper(),
            credits=credits,
            invoice_year=now.year,
            invoice_sequence=sequence,
            invoice_number=number,
            paid_at=now,
        )
        if credits > 0 and sub.user.deleted_at is None:
            credits_grant(
                user=sub.user,
                amount=credits,
                kind=LedgerKind.SUBSCRIPTION_GRANT,
                idempotency_key=grant_key(period),
                source=period_source(period),
                description=(
                    f"{plan.name} plan upgrade, {number}"
                    if proration
                    else f"{plan.name} plan credits, {number}"
                ),
                metadata={"source": source, "provider": sub.provider, "invoice": invoice.id},
                expires_at=period.ends_at,
                # A trial's free period: promotional credits, no cost basis.
                category=LotCategory.PROMOTIONAL if period.amount == 0 else None,
                cost_basis=(period.amount / credits).quantize(COST_BASIS_STEP)
                if period.amount
                else None,
                currency=period.currency if period.amount else None,
            )
        if not proration:
            _roll_into(period)
            later = (
                SubscriptionPeriod.objects.filter(
                    subscription=sub,
                    kind=SubscriptionPeriod.Kind.PERIOD,
                    starts_at__gt=period.starts_at,
                )
                .order_by("starts_at")
                .first()
            )
            if later is not None:  # a late invoice: what it ends rolls into the next one
                _roll_into(later)
        logger.info("subscription %s: %s paid, %s credits (%s)", sub.pk, number, credits, source)
    return period, True


def _proration_credits(sub, invoice: ProviderInvoice, plan: SubscriptionPlan) -> int:
    """An upgrade's credits: the difference between the plans' credits, for the part of the
    period that is left."""
    before = SubscriptionPlan.objects.filter(code=invoice.previous_plan_code).first()
    if before is None:
        return 0
    current = (
        SubscriptionPeriod.objects.filter(
            subscription=sub, kind=SubscriptionPeriod.Kind.PERIOD, ends_at=invoice.period_end
        )
        .order_by("-starts_at")
        .first()
    )
    start = current.starts_at if current else invoice.period_end - timedelta(days=30)
    whole = (invoice.period_end - start).total_seconds()
    left = (invoice.period_end - invoice.period_start).total_seconds()
    share = min(1.0, max(0.0, left / whole)) if whole > 0 else 0.0
    return max(0, round((plan.credits_per_period - before.credits_per_period) * share))


def _roll_into(period: SubscriptionPeriod) -> None:
    """End the period before ``period`` (its period and proration lots) and roll up to its
    plan's cap into ``period``."""
    ending = (
        SubscriptionPeriod.objects.filter(
            subscription_id=period.subscription_id,
            kind=SubscriptionPeriod.Kind.PERIOD,
            starts_at__lt=period.starts_at,
        )
        .select_related("plan")
        .order_by("-starts_at")
        .first()
    )
    if ending is None:
        return
    rows = list(
        SubscriptionPeriod.objects.filter(subscription_id=period.subscription_id)
        .filter(
            Q(pk=ending.pk)
            | Q(
                kind=SubscriptionPeriod.Kind.PRORATION,
                starts_at__gte=ending.starts_at,
                starts_at__lt=period.starts_at,
            )
        )
        .select_related("plan")
    )
    last = max(rows, key=lambda r: (r.paid_at, r.pk))
    lots = CreditLot.objects.filter(source_type=PERIOD_SOURCE, source_id__in=[r.pk for r in rows])
    lot_ids = list(lots.filter(source=LotSource.SUBSCRIPTION).values_list("pk", flat=True))
    rolled_ids = list(lots.filter(source=LotSource.ROLLOVER).values_list("pk", flat=True))
    if not lot_ids and not rolled_ids:
        return
    sub = period.subscription
    credits_roll_over(
        user=sub.user,
        lot_ids=lot_ids,
        cap=last.plan.rollover_cap,
        expires_at=period.ends_at,
        idempotency_key=f"subscription:{sub.pk}:rollover-of:{ending.pk}",
        source=period_source(period),
        description=f"Unused plan credits rolled over from {ending.invoice_number}",
        cost_basis=(ending.amount / ending.credits).quantize(COST_BASIS_STEP)
        if ending.credits and ending.amount
        else None,
        currency=ending.currency if ending.amount else None,
        # A free (trial) period's credits roll over as promotional ones.
        category=LotCategory.PAID if ending.amount else LotCategory.PROMOTIONAL,
        ending_rollover_ids=rolled_ids,
    )


# --- changes the member asks for ------------------------------------------------------------


def subscription_refresh(*, subscription: Subscription) -> Subscription:
    """Read an unfinished subscription back from its provider (the return page: the buyer
    may be back before the webhook). Raises ProviderError."""
    if subscription.status != Subscription.Status.INCOMPLETE:
        return subscription
    if not subscription.provider_subscription_id:
        return subscription
    return _resync(subscription)


def _resync(sub: Subscription) -> Subscription:
    facts = subscription_fetch(
        provider_name=sub.provider, subscription_id=sub.provider_subscription_id or ""
    )
    with transaction.atomic(durable=True):
        return subscription_sync(subscription_id=sub.pk, remote=facts.subscription)


def _require_running(sub: Subscription | None) -> Subscription:
    if sub is None or sub.status not in (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE):
        raise SubscriptionError("There is no running membership to change.")
    return sub


def subscription_cancel(*, subscription: Subscription) -> Subscription:
    """Cancel at the period's end: credits and membership stay until then."""
    sub = _require_running(subscription)
    get_provider(sub.provider).set_cancel_at_period_end(
        subscription_id=sub.provider_subscription_id, cancel=True
    )
    return _resync(sub)


def subscription_resume(*, subscription: Subscription) -> Subscription:
    """Undo a cancellation (or a pending downgrade) before the period ends."""
    sub = _require_running(subscription)
    provider = get_provider(sub.provider)
    if sub.pending_plan_id:
        provider.change_plan(
            subscription_id=sub.provider_subscription_id,
            plan_code=sub.plan.code,
            amount=sub.amount,
            at_period_end=True,
        )
        Subscription.objects.filter(pk=sub.pk).update(pending_plan=None)
    if sub.cancel_at_period_end:
        provider.set_cancel_at_period_end(
            subscription_id=sub.provider_subscription_id, cancel=False
        )
    return _resync(sub)


def subscription_change_plan(*, subscription: Subscription, plan: SubscriptionPlan) -> Subscription:
    """An upgrade (more credits per period) at once, the prorated difference charged now
    and its credits granted when that payment is confirmed; a downgrade at the period's end."""
    sub = _require_running(subscription)
    if sub.status != Subscription.Status.ACTIVE:
        raise SubscriptionError("Settle the failed payment before changing plans.")
    if not plan.active or plan.pk == sub.plan_id:
        raise SubscriptionError("Choose another plan that is on sale.")
    price = plan_price(plan=plan, currency=sub.currency)
    upgrade = plan.credits_per_period > sub.plan.credits_per_period
    get_provider(sub.provider).change_plan(
        subscription_id=sub.provider_subscription_id,
        plan_code=plan.code,
        amount=price.amount,
        at_period_end=not upgrade,
    )
    if not upgrade:
        Subscription.objects.filter(pk=sub.pk).update(pending_plan=plan)
    return _resync(sub)


def subscription_portal_url(*, user, return_url: str) -> str:
    """Where the member manages cards and sees the provider's invoices (Stripe's portal)."""
    assert_no_transaction("subscription_portal_url")
    if not user.stripe_customer_id:
        raise SubscriptionError("There is no card on file with Stripe to manage.")
    return get_provider("STRIPE").portal_url(
        customer_id=user.stripe_customer_id, return_url=return_url
    )


def subscription_end_now(*, subscription: Subscription) -> Subscription:
    """Staff: end a subscription at once at the provider (no refund; see the period refund)."""
    if not subscription.is_live:
        raise SubscriptionError("The subscription has already ended.")
    if subscription.provider_subscription_id:
        get_provider(subscription.provider).cancel_now(
            subscription_id=subscription.provider_subscription_id
        )
        return _resync(subscription)
    with transaction.atomic(durable=True):
        Subscription.objects.filter(pk=subscription.pk).update(
            status=Subscription.Status.ENDED, ended_at=timezone.now()
        )
        voucher_release_for_subscription(subscription_id=subscription.pk)
    return Subscription.objects.get(pk=subscription.pk)


# --- staff: refund a period ------------------------------------------------------------------


def refund_clawback_key(period: SubscriptionPeriod) -> str:
    return f"subscription-period:{period.pk}:refund"


def subscription_period_refund(
    *, period: SubscriptionPeriod, reason: str, idempotency_key: str, audit=None
) -> SubscriptionPeriod:
    """Refund a paid period in full: the provider refunds the invoice's payment first
    (outside any transaction, once per ``idempotency_key``), then, in one transaction, the
    period is marked refunded and its credits are taken back (its own lot first, then its
    rollover lot, then other lots; never below zero, the rest recorded as unrecovered).
    ``audit(period)`` runs inside that transaction. A period already refunded is returned
    as it is; a ProviderError changes nothing."""
    assert_no_transaction("subscription_period_refund")
    if not (reason or "").strip():
        raise SubscriptionError("A refund needs a reason.")
    period = SubscriptionPeriod.objects.select_related("subscription__user").get(pk=period.pk)
    if period.status == SubscriptionPeriod.Status.REFUNDED:
        return period
    left = period.amount - period.amount_refunded
    result = get_provider(period.subscription.provider).refund_invoice(
        invoice_id=period.provider_invoice_id, amount=left, idempotency_key=idempotency_key
    )
    if result.status not in ("succeeded", "pending"):
        raise ProviderError(
            f"The provider did not refund {period.invoice_number}: {result.status}.",
            provider=period.subscription.provider,
        )
    with transaction.atomic(durable=True):
        period = (
            SubscriptionPeriod.objects.select_for_update(of=("self",))
            .select_related("subscription__user")
            .get(pk=period.pk)
        )
        if period.status == SubscriptionPeriod.Status.REFUNDED:
            return period
        period = subscription_period_refunded(
            period_id=period.pk,
            total_refunded=period.amount,
            source=f"staff refund {result.provider_refund_id}",
        )
        if audit is not None:
            audit(period)
    return period


def period_for_payment(*, provider_name: str, payment_id: str) -> SubscriptionPeriod | None:
    if not payment_id:
        return None
    return SubscriptionPeriod.objects.filter(
        subscription__provider=provider_name, provider_payment_id=payment_id
    ).first()


def subscription_period_refunded(
    *, period_id: int, total_refunded: Decimal, source: str
) -> SubscriptionPeriod:
    """The provider refunded (or a lost dispute took back) ``total_refunded`` of a period's
    payment, cumulatively: the period records it and the matching share of its credits is
    taken back (its own lot first), once per amount. Inside the caller's transaction; a
    smaller total than recorded (an older event) changes nothing."""
    from credits.services import credits_clawback

    with transaction.atomic():
        period = (
            SubscriptionPeriod.objects.select_for_update(of=("self",))
            .select_related("subscription__user")
            .get(pk=period_id)
        )
        total = min(total_refunded, period.amount)
        if total <= period.amount_refunded:
            return period
        share = total / period.amount if period.amount else Decimal("1")
        owed = int((period.credits * share).to_integral_value()) - (
            period.credits_clawed_back + period.credits_unrecovered
        )
        if owed > 0:
            taken = credits_clawback(
                user=period.subscription.user,
                amount=owed,
                idempotency_key=f"subscription-period:{period.pk}:refunded-to:{total}",
                reason=f"Refund of {period.invoice_number}",
                source=period_source(period),
                metadata={"source": source},
            )
            period.credits_clawed_back += taken.recovered
            period.credits_unrecovered += taken.unrecovered
        period.amount_refunded = total
        period.status = (
            SubscriptionPeriod.Status.REFUNDED
            if total >= period.amount
            else SubscriptionPeriod.Status.PARTIALLY_REFUNDED
        )
        period.save(
            update_fields=[
                "amount_refunded",
                "status",
                "credits_clawed_back",
                "credits_unrecovered",
            ]
        )
    return period
