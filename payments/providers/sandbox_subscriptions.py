"""The sandbox provider's subscriptions: a pretend Stripe Billing inside the app.

Its own records (``SandboxSubscription``, ``SandboxInvoice``) play Stripe's side. Our app
starts a subscription checkout, changes, cancels and resumes through the adapter methods
below, like any provider's API; the sandbox's hosted pages (subscribe, and a control page
with Renew now, Fail renewal and Cancel now, so the whole life cycle can be shown on a
laptop) change its records and tell the app through signed webhooks, exactly like the
sandbox's pack checkouts (see ``sandbox.py``). The app never trusts an event's body: it
reads the subscription and the invoice back through ``fetch_subscription`` /
``fetch_invoice``.
"""

import json
import logging
import secrets
import time
from datetime import timedelta
from decimal import Decimal

import requests
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from ..exceptions import ProviderError, WebhookRejected
from ..models import SandboxInvoice, SandboxSubscription
from .base import CheckoutSession, ProviderInvoice, ProviderSubscription, RefundResult
from .sandbox import SIGNATURE_HEADER, SandboxProvider, sign

logger = logging.getLogger(__name__)

NAME = "SANDBOX"
#: The sandbox's billing period.
PERIOD = timedelta(days=30)
PAID, FAILED, UPDATED, CANCELED = (
    "subscription.invoice_paid",
    "subscription.invoice_failed",
    "subscription.updated",
    "subscription.canceled",
)


def _subscription(provider_id: str) -> SandboxSubscription:
    token = (provider_id or "").removeprefix("sbx_sub_")
    sub = SandboxSubscription.objects.filter(token=token).first() if token else None
    if sub is None:
        raise ProviderError(f"The sandbox has no subscription {provider_id!r}.", provider=NAME)
    return sub


class SandboxSubscriptions:
    """The adapter's subscription methods (mixed into ``SandboxProvider``)."""

    def create_subscription_checkout(
        self, *, subscription, success_url: str, cancel_url: str, trial_days: int = 0
    ) -> CheckoutSession:
        sub = SandboxSubscription.objects.filter(subscription_ref=str(subscription.pk)).first()
        if sub is None:
            sub = SandboxSubscription.objects.create(
                token=secrets.token_urlsafe(24),
                subscription_ref=str(subscription.pk),
                plan_code=subscription.plan.code,
                amount=subscription.amount,
                currency=subscription.currency,
                trial_days=trial_days,
                success_url=success_url,
                cancel_url=cancel_url,
            )
        url = reverse("payments:sandbox_subscribe", kwargs={"token": sub.token})
        return CheckoutSession(provider_order_id=sub.provider_id, redirect_url=url)

    def fetch_subscription(self, *, subscription_id: str) -> ProviderSubscription:
        sub = _subscription(subscription_id)
        return ProviderSubscription(
            id=sub.provider_id,
            status="incomplete" if sub.status == SandboxSubscription.Status.OPEN else sub.status,
            plan_code=sub.plan_code,
            subscription_ref=sub.subscription_ref,
            period_start=sub.period_start,
            period_end=sub.period_end,
            cancel_at_period_end=sub.cancel_at_period_end,
        )

    def fetch_invoice(self, *, invoice_id: str) -> ProviderInvoice:
        pk = (invoice_id or "").removeprefix("sbx_in_")
        invoice = (
            SandboxInvoice.objects.select_related("subscription").filter(pk=int(pk)).first()
            if pk.isdigit()
            else None
        )
        if invoice is None:
            raise ProviderError(f"The sandbox has no invoice {invoice_id!r}.", provider=NAME)
        return ProviderInvoice(
            id=invoice.provider_id,
            subscription_id=invoice.subscription.provider_id,
            status=invoice.status,
            billing_reason=invoice.billing_reason,
            plan_code=invoice.plan_code,
            previous_plan_code=invoice.previous_plan_code,
            amount=invoice.amount,
            currency=invoice.currency,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            payment_id=invoice.payment_id if invoice.status == SandboxInvoice.Status.PAID else "",
        )

    def subscription_invoices(self, *, subscription_id: str) -> list[ProviderInvoice]:
        sub = _subscription(subscription_id)
        return [
            self.fetch_invoice(invoice_id=invoice.provider_id)
            for invoice in sub.invoices.order_by("pk")
        ]

    def set_cancel_at_period_end(self, *, subscription_id: str, cancel: bool) -> None:
        sub = _subscription(subscription_id)
        if sub.status == SandboxSubscription.Status.CANCELED:
            raise ProviderError("The subscription has ended.", provider=NAME)
        sub.cancel_at_period_end = cancel
        sub.save(update_fields=["cancel_at_period_end", "updated_at"])
        _send(sub, UPDATED)

    def change_plan(
        self, *, subscription_id: str, plan_code: str, amount: Decimal, at_period_end: bool
    ) -> None:
        """An upgrade at once, charging the proration of the price difference for the rest of
        the period (paid now); a downgrade at the next renewal."""
        sub = _subscription(subscription_id)
        if sub.status != SandboxSubscription.Status.ACTIVE:
            raise ProviderError("Only an active subscription can change plans.", provider=NAME)
        if at_period_end:
            sub.next_plan_code, sub.next_amount = plan_code, amount
            sub.save(update_fields=["next_plan_code", "next_amount", "updated_at"])
            _send(sub, UPDATED)
            return
        now = timezone.now()
        left = (sub.period_end - now) / (sub.period_end - sub.period_start)
        proration = max(
            Decimal("0.50"), ((amount - sub.amount) * Decimal(left)).quantize(Decimal("0.01"))
        )
        invoice = SandboxInvoice.objects.create(
            subscription=sub,
            status=SandboxInvoice.Status.PAID,
            billing_reason="subscription_update",
            plan_code=plan_code,
            previous_plan_code=sub.plan_code,
            amount=proration,
            currency=sub.currency,
            period_start=now,
            period_end=sub.period_end,
        )
        sub.plan_code, sub.amount = plan_code, amount
        sub.next_plan_code, sub.next_amount = "", None
        sub.save(
            update_fields=["plan_code", "amount", "next_plan_code", "next_amount", "updated_at"]
        )
        _send(sub, UPDATED)
        _send(sub, PAID, invoice)

    def cancel_now(self, *, subscription_id: str) -> None:
        sandbox_cancel(token=_subscription(subscription_id).token)

    def refund_invoice(
        self, *, invoice_id: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        """Sandbox refunds of a period succeed at once, up to what was paid."""
        pk = (invoice_id or "").removeprefix("sbx_in_")
        with transaction.atomic():
            invoice = SandboxInvoice.objects.select_for_update().filter(pk=int(pk or 0)).first()
            if invoice is None or invoice.status != SandboxInvoice.Status.PAID:
                raise ProviderError(f"No paid sandbox invoice {invoice_id!r}.", provider=NAME)
            if amount > invoice.amount - invoice.amount_refunded:
                raise ProviderError("The refund is more than what is left of it.", provider=NAME)
            invoice.amount_refunded += amount
            invoice.save(update_fields=["amount_refunded"])
        return RefundResult(
            provider_refund_id=f"sbx_re_{idempotency_key}"[:255],
            status="succeeded",
            amount=amount,
            currency=invoice.currency,
        )


class SandboxBillingProvider(SandboxSubscriptions, SandboxProvider):
    """The sandbox adapter with its subscriptions (``PROVIDERS`` names this one)."""


# --- the sandbox's side: its hosted pages' actions -------------------------------------------


def sandbox_subscribe(*, token: str) -> SandboxSubscription:
    """The buyer subscribed on the sandbox's page: the first period is paid at once."""
    with transaction.atomic():
        sub = SandboxSubscription.objects.select_for_update().get(token=token)
        if sub.status != SandboxSubscription.Status.OPEN:
            return sub
        now = timezone.now()
        sub.status = SandboxSubscription.Status.ACTIVE
        length = timedelta(days=sub.trial_days) if sub.trial_days else PERIOD
        sub.period_start, sub.period_end = now, now + length
        sub.save()
        invoice = _invoice(
            sub,
            "subscription_create",
            SandboxInvoice.Status.PAID,
            amount=Decimal("0") if sub.trial_days else None,
            end=sub.period_end,
        )
    _send(sub, PAID, invoice)
    return sub


def sandbox_abandon(*, token: str) -> SandboxSubscription:
    """The buyer left the sandbox's subscribe page: the checkout closes unpaid."""
    SandboxSubscription.objects.filter(token=token, status=SandboxSubscription.Status.OPEN).update(
        status=SandboxSubscription.Status.CANCELED
    )
    sub = SandboxSubscription.objects.get(token=token)
    _send(sub, CANCELED)
    return sub


def sandbox_renew(*, token: str, fail: bool = False) -> SandboxSubscription:
    """End the current period now and bill the next one (as a test clock advancing to the
    period's end would): paid, or failed (the subscription goes past due). A subscription
    set to cancel at the period's end ends instead. A past-due one that pays again becomes
    active with a fresh period."""
    with transaction.atomic():
        sub = SandboxSubscription.objects.select_for_update().get(token=token)
        if sub.status in (SandboxSubscription.Status.OPEN, SandboxSubscription.Status.CANCELED):
            raise ProviderError("Only a running subscription renews.", provider=NAME)
        now = timezone.now()
        if sub.cancel_at_period_end:
            sub.status = SandboxSubscription.Status.CANCELED
            sub.period_end = now
            sub.save()
            event, invoice = CANCELED, None
        elif fail:
            sub.status = SandboxSubscription.Status.PAST_DUE
            sub.save()
            invoice = _invoice(sub, "subscription_cycle", SandboxInvoice.Status.FAILED, start=now)
            event = FAILED
        else:
            if sub.next_plan_code:
                sub.plan_code, sub.amount = sub.next_plan_code, sub.next_amount
                sub.next_plan_code, sub.next_amount = "", None
            sub.status = SandboxSubscription.Status.ACTIVE
            sub.period_start, sub.period_end = now, now + PERIOD
            sub.save()
            invoice = _invoice(sub, "subscription_cycle", SandboxInvoice.Status.PAID)
            event = PAID
    if event == PAID:
        _send(sub, UPDATED)
    _send(sub, event, invoice)
    return sub


def sandbox_cancel(*, token: str) -> SandboxSubscription:
    """Cancel at once (the provider ended it: a dashboard cancel, a dunning that gave up)."""
    with transaction.atomic():
        sub = SandboxSubscription.objects.select_for_update().get(token=token)
        if sub.status == SandboxSubscription.Status.CANCELED:
            return sub
        sub.status = SandboxSubscription.Status.CANCELED
        if sub.period_end is None or sub.period_end > timezone.now():
            sub.period_end = timezone.now()
        sub.save()
    _send(sub, CANCELED)
    return sub


def _invoice(sub, reason: str, status: str, *, start=None, amount=None, end=None) -> SandboxInvoice:
    start = start or sub.period_start
    return SandboxInvoice.objects.create(
        subscription=sub,
        status=status,
        billing_reason=reason,
        plan_code=sub.plan_code,
        amount=sub.amount if amount is None else amount,
        currency=sub.currency,
        period_start=start,
        period_end=end or start + PERIOD,
    )


def event_body(sub: SandboxSubscription, event_type: str, invoice=None) -> bytes:
    event = {
        "id": f"evt_sbx_{secrets.token_hex(12)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {
            "subscription_id": sub.provider_id,
            "subscription_ref": sub.subscription_ref,
            "invoice_id": invoice.provider_id if invoice is not None else "",
            "status": sub.status,
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _send(sub, event_type: str, invoice=None) -> str:
    """Deliver the signed event after the sandbox's own records are committed."""
    body = event_body(sub, event_type, invoice)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: deliver(body))
        return "on-commit"
    return deliver(body)


def deliver(body: bytes) -> str:
    """POST the signed ``body`` to the app's sandbox webhook, else hand it in-process."""
    from .. import app_settings

    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body),
        "User-Agent": "Sandbox/1.0",
    }
    url = app_settings.sandbox_webhook_url() or (
        app_settings.site_url().rstrip("/") + reverse("webhooks:sandbox")
    )
    try:
        response = requests.post(url, data=body, headers=headers, timeout=(2, 5))
        if response.status_code < 300:
            return "http"
        logger.warning("sandbox webhook to %s answered %s", url, response.status_code)
    except requests.RequestException as exc:
        logger.info("sandbox webhook to %s not delivered over HTTP (%s); in-process", url, exc)
    from ..webhooks import webhook_ingest

    try:
        webhook_ingest(provider_name=NAME, body=body, headers=headers)
    except WebhookRejected as exc:
        logger.error("sandbox webhook rejected in-process: %s", exc.reason)
        return "rejected"
    return "in-process"
