"""The offline sandbox provider: a pretend Stripe that lives inside the app.

It keeps its own records (``SandboxPayment``), shows its own hosted checkout page at
/billing/sandbox/checkout/<token>/ with Pay, Fail and Cancel buttons, and tells the app what
happened the way a real provider does: a webhook signed with HMAC-SHA256 in a
``Sandbox-Signature: t=<unix>,v1=<hex>`` header (Stripe's scheme), POSTed over HTTP to
/webhooks/sandbox/. When the app cannot reach itself over HTTP (a single-threaded server)
the same signed bytes are handed to the webhook pipeline in-process. Either way they go
through the same verification, storage and processing as any provider's.

It is offered only when no real provider is configured (or when forced on for
development): its checkout page pays for free.
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import requests
from django.db import transaction
from django.urls import reverse

from .. import app_settings
from ..exceptions import ProviderError, WebhookRejected
from ..models import SandboxPayment, SandboxRefund
from .base import (
    CheckoutSession,
    EventKind,
    Listing,
    NormalizedEvent,
    PaymentStatus,
    ProviderCheckout,
    ProviderDispute,
    ProviderRefund,
    RefundResult,
    RefundState,
    refund_state_of,
)

logger = logging.getLogger(__name__)

NAME = "SANDBOX"
SIGNATURE_HEADER = "Sandbox-Signature"
SESSION_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"

#: The sandbox's event types and what they mean to us.
EVENT_KINDS = {
    "checkout.paid": EventKind.PAYMENT_SUCCEEDED,
    "checkout.failed": EventKind.PAYMENT_FAILED,
    "checkout.canceled": EventKind.CHECKOUT_CANCELLED,
    "subscription.invoice_paid": EventKind.SUBSCRIPTION_INVOICE_PAID,
    "subscription.invoice_failed": EventKind.SUBSCRIPTION_PAYMENT_FAILED,
    "subscription.updated": EventKind.SUBSCRIPTION_UPDATED,
    "subscription.canceled": EventKind.SUBSCRIPTION_ENDED,
}
#: The sandbox's saved cards (auto top-up page) and what they do off-session.
SANDBOX_CARD_PAYS = "sbx_pm_pays"
SANDBOX_CARD_DECLINES = "sbx_pm_declines"
SANDBOX_CARD_NEEDS_AUTH = "sbx_pm_needs_auth"
SANDBOX_CARDS = {
    SANDBOX_CARD_PAYS: "Sandbox card that pays",
    SANDBOX_CARD_DECLINES: "Sandbox card that is declined",
    SANDBOX_CARD_NEEDS_AUTH: "Sandbox card that needs its owner",
}
SANDBOX_CARD_MESSAGES = {
    "card_declined": "Your card was declined.",
    "authentication_required": "Your bank asked you to confirm the payment.",
}
STATES = {"open": "open", "paid": "paid", "failed": "failed", "canceled": "cancelled"}
OUTCOME_EVENTS = {
    SandboxPayment.Status.PAID: "checkout.paid",
    SandboxPayment.Status.FAILED: "checkout.failed",
    SandboxPayment.Status.CANCELED: "checkout.canceled",
}


def sign(payload: bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
    """The Sandbox-Signature header for ``payload``."""
    secret = secret or app_settings.sandbox_webhook_secret()
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(payload: bytes, header: str, *, secret: str, tolerance: int) -> None:
    """Check a Sandbox-Signature header; raises WebhookRejected with the reason."""
    if not header:
        raise WebhookRejected(f"Missing {SIGNATURE_HEADER} header.")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts.get("t", [""])[0])
    except ValueError:
        raise WebhookRejected("Invalid signature header: no timestamp.") from None
    signatures = parts.get("v1", [])
    if not signatures:
        raise WebhookRejected("Invalid signature header: no v1 signature.")
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookRejected("Invalid signature: it does not match the body.")
    if abs(time.time() - timestamp) > tolerance:
        raise WebhookRejected("Stale signature: the timestamp is outside the tolerance.")


def event_body(payment: SandboxPayment, event_type: str) -> bytes:
    """The JSON body the sandbox sends for ``event_type`` about ``payment``."""
    event = {
        "id": f"evt_sbx_{secrets.token_hex(12)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {
            "checkout_id": payment.checkout_id,
            "payment_id": payment.payment_id,
            "order_ref": payment.order_ref,
            "amount": str(payment.amount),
            "currency": payment.currency,
            "status": payment.status,
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def payment_for(checkout_id: str) -> SandboxPayment | None:
    if not checkout_id or not checkout_id.startswith("sbx_cs_"):
        return None
    return SandboxPayment.objects.filter(token=checkout_id.removeprefix("sbx_cs_")).first()


class SandboxProvider:
    name = NAME
    checkout_lifetime = None

    def create_checkout(self, *, order, success_url: str, cancel_url: str) -> CheckoutSession:
        payment = SandboxPayment.objects.filter(order_ref=str(order.pk)).first()
        if payment is None:
            payment = SandboxPayment.objects.create(
                token=secrets.token_urlsafe(24),
                order_ref=str(order.pk),
                description=f"{order.package.name}: {order.credits} credits",
                amount=order.amount,
                currency=order.currency,
                success_url=success_url,
                cancel_url=cancel_url,
            )
        url = reverse("payments:sandbox_checkout", kwargs={"token": payment.token})
        return CheckoutSession(provider_order_id=payment.checkout_id, redirect_url=url)

    # --- saved payment methods and off-session payments (auto top-up) -----------------------

    def charge_saved(
        self, *, order, customer_id: str, payment_method_id: str, idempotency_key: str
    ) -> PaymentStatus:
        """Pay ``order`` with a sandbox card saved on the auto top-up page: ``sbx_pm_pays``
        pays, ``sbx_pm_declines`` is declined, ``sbx_pm_needs_auth`` needs its owner. Once
        per order, like a real provider's idempotency key."""
        outcomes = {
            SANDBOX_CARD_PAYS: (SandboxPayment.Status.PAID, ""),
            SANDBOX_CARD_DECLINES: (SandboxPayment.Status.FAILED, "card_declined"),
            SANDBOX_CARD_NEEDS_AUTH: (SandboxPayment.Status.FAILED, "authentication_required"),
        }
        status, code = outcomes.get(payment_method_id, (SandboxPayment.Status.FAILED, "no_card"))
        payment, _ = SandboxPayment.objects.get_or_create(
            order_ref=str(order.pk),
            defaults={
                "token": secrets.token_urlsafe(24),
                "description": f"Auto top-up: {order.package.name}, {order.credits} credits",
                "amount": order.amount,
                "currency": order.currency,
                "status": status,
                "success_url": "",
                "cancel_url": "",
            },
        )
        result = self.fetch_payment_status(
            order=type(order)(pk=order.pk, provider_order_id=payment.checkout_id)
        )
        return PaymentStatus(
            state=result.state,
            provider_order_id=result.provider_order_id,
            provider_payment_id=result.provider_payment_id,
            amount=result.amount,
            currency=result.currency,
            raw={"code": code, "message": SANDBOX_CARD_MESSAGES.get(code, "")},
        )

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        verify(
            body,
            header,
            secret=app_settings.sandbox_webhook_secret(),
            tolerance=app_settings.sandbox_webhook_tolerance(),
        )
        try:
            data = json.loads(body)
            obj = data["data"]
            event_id, event_type = str(data["id"]), str(data["type"])
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected("The body is not a sandbox event.") from None
        return NormalizedEvent(
            provider=NAME,
            event_id=event_id,
            type=event_type,
            kind=EVENT_KINDS.get(event_type, EventKind.IGNORED),
            order_ref=str(obj.get("order_ref", "")),
            provider_order_id=str(obj.get("checkout_id", "")),
            provider_payment_id=str(obj.get("payment_id", "")),
            amount=Decimal(obj["amount"]) if obj.get("amount") else None,
            currency=str(obj.get("currency", "")).upper(),
            subscription_id=str(obj.get("subscription_id", "")),
            invoice_id=str(obj.get("invoice_id", "")),
            raw=data,
        )

    def fetch_payment_status(self, *, order) -> PaymentStatus:
        payment = payment_for(order.provider_order_id or "")
        if payment is None:
            return PaymentStatus(state="unknown", provider_order_id=order.provider_order_id or "")
        return PaymentStatus(
            state=STATES[payment.status],
            provider_order_id=payment.checkout_id,
            provider_payment_id=payment.payment_id
            if payment.status == SandboxPayment.Status.PAID
            else "",
            amount=payment.amount,
            currency=payment.currency,
        )

    # --- reconciliation reads: each order's payment; refunds and disputes happen here only
    # through our own calls, so there are none to list -------------------------------------

    def recent_checkouts(self, *, since: datetime, orders: Sequence) -> Listing[ProviderCheckout]:
        checkouts = []
        asked = [order for order in orders if order.provider_order_id is not None]
        for order in asked:
            payment = payment_for(order.provider_order_id)
            if payment is not None:
                checkouts.append(
                    ProviderCheckout(
                        id=payment.checkout_id,
                        status=self.fetch_payment_status(order=order),
                        order_ref=payment.order_ref,
                    )
                )
        return Listing(checkouts, {"orders": len(asked)})

    def recent_refunds(
        self, *, since: datetime, payment_ids: Sequence[str]
    ) -> Listing[ProviderRefund]:
        return Listing()

    def disputes(self, *, since: datetime, open_ids: Sequence[str]) -> Listing[ProviderDispute]:
        return Listing()

    def refund_state(self, *, order, payment_id: str = "") -> RefundState:
        """The sandbox's own refunds of the order's payment (all of them succeeded at once)."""
        payment = payment_for(order.provider_order_id or "")
        if payment is None:
            raise ProviderError(f"The sandbox has no payment for order #{order.pk}.", provider=NAME)
        return refund_state_of(
            payment.payment_id,
            [
                ProviderRefund(
                    id=r.refund_id,
                    payment_id=payment.payment_id,
                    status="succeeded",
                    amount=r.amount,
                    currency=payment.currency,
                )
                for r in payment.refunds.order_by("pk")
            ],
        )

    def refund(
        self, *, order, amount: Decimal, idempotency_key: str, reason: str = ""
    ) -> RefundResult:
        """Sandbox refunds succeed at once (up to what was paid), once per idempotency key."""
        payment = payment_for(order.provider_order_id or "")
        if payment is None or payment.status != SandboxPayment.Status.PAID:
            raise ProviderError(
                f"The sandbox has no paid payment for order #{order.pk}.", provider=NAME
            )
        with transaction.atomic():
            payment = SandboxPayment.objects.select_for_update().get(pk=payment.pk)
            done = SandboxRefund.objects.filter(idempotency_key=idempotency_key).first()
            if done is None:
                if amount > payment.amount - payment.amount_refunded:
                    raise ProviderError(
                        f"Refund of {amount} exceeds what is left of the payment.", provider=NAME
                    )
                done = SandboxRefund.objects.create(
                    payment=payment, idempotency_key=idempotency_key, amount=amount
                )
                payment.amount_refunded += amount
                payment.save(update_fields=["amount_refunded", "updated_at"])
        return RefundResult(
            provider_refund_id=done.refund_id,
            status="succeeded",
            amount=done.amount,
            currency=payment.currency,
        )


# --- the hosted checkout's side: finishing a payment and telling the app --------------------


def sandbox_finish(*, token: str, outcome: str) -> tuple[SandboxPayment, bool]:
    """Close an open sandbox checkout as paid, failed or canceled.

    Returns the payment and whether this call closed it (a double click closes it once).
    """
    if outcome not in OUTCOME_EVENTS:
        raise ValueError(f"unknown sandbox outcome {outcome!r}")
    changed = SandboxPayment.objects.filter(token=token, status=SandboxPayment.Status.OPEN).update(
        status=outcome
    )
    return SandboxPayment.objects.get(token=token), bool(changed)


def sandbox_deliver(*, payment: SandboxPayment, webhook_url: str) -> str:
    """Send the signed webhook for ``payment``'s outcome; returns how it was delivered.

    Over HTTP to ``webhook_url`` first, as a real provider would. When that is impossible
    (the server cannot take a second request while this one runs) the same signed bytes
    go to the webhook pipeline in-process. A duplicate arrival (the HTTP request was slow,
    not lost) is recognised by its event id and acknowledged without processing.
    """
    body = event_body(payment, OUTCOME_EVENTS[payment.status])
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body),
        "User-Agent": "Sandbox/1.0",
    }
    try:
        response = requests.post(webhook_url, data=body, headers=headers, timeout=(2, 5))
        if response.status_code < 300:
            return "http"
        logger.warning(
            "sandbox webhook to %s answered %s: %s",
            webhook_url,
            response.status_code,
            response.text[:200],
        )
    except requests.RequestException as exc:
        logger.info(
            "sandbox webhook to %s not delivered over HTTP (%s); delivering in-process",
            webhook_url,
            exc,
        )
    from ..webhooks import webhook_ingest

    try:
        webhook_ingest(provider_name=NAME, body=body, headers=headers)
    except WebhookRejected as exc:
        logger.error("sandbox webhook rejected in-process: %s", exc.reason)
        return "rejected"
    return "in-process"


def redirect_after(payment: SandboxPayment) -> str:
    """Where the buyer goes once the sandbox checkout closed."""
    if payment.status == SandboxPayment.Status.CANCELED:
        return payment.cancel_url
    return payment.success_url.replace(SESSION_PLACEHOLDER, payment.checkout_id)
