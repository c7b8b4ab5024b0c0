"""Stripe: Checkout Sessions, signed webhooks, refunds (through the official ``stripe`` client).

Facts this relies on (stripe 16.1): a session is created once per order thanks to the
idempotency key ``checkout-<order id>`` (the parameters must then be identical, so
``expires_at`` is derived from the order's creation time, not from now); the session,
its PaymentIntent and so its Charge carry our order id in ``client_reference_id`` /
``metadata``; ``charge.refunded`` reports ``amount_refunded`` cumulatively; delivery is
at-least-once and unordered, so the pipeline re-fetches the session when it matters.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import stripe

from .. import app_settings
from ..exceptions import ProviderError, ProviderNotConfigured, WebhookRejected
from . import stripe_listing
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
    SavedMethod,
    refund_state_of,
)

NAME = "STRIPE"
SIGNATURE_HEADER = "Stripe-Signature"
#: Currencies Stripe counts in whole units (no cents).
ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)

CHECKOUT_KINDS = {
    "checkout.session.async_payment_succeeded": EventKind.PAYMENT_SUCCEEDED,
    "checkout.session.async_payment_failed": EventKind.PAYMENT_FAILED,
    "checkout.session.expired": EventKind.CHECKOUT_EXPIRED,
}
#: PaymentIntent events of off-session payments (auto top-up); others come with a session.
INTENT_KINDS = {
    "payment_intent.succeeded": EventKind.PAYMENT_SUCCEEDED,
    "payment_intent.payment_failed": EventKind.PAYMENT_FAILED,
}
#: Every dispute status Stripe documents (stripe-python 16.1), and what it means for the
#: buyer's credits. Open stages freeze spending: an inquiry (``warning_*``), a chargeback
#: awaiting evidence or the bank's review, an appeal. Closed ones: ``won`` and
#: ``prevented`` (the dispute never went through) restore spending; ``warning_closed`` (an
#: inquiry that closed without becoming a chargeback) too, recorded as withdrawn; ``lost``
#: takes the credits back. A status not listed here is flagged, never guessed.
DISPUTE_OPEN = frozenset(
    {
        "warning_needs_response",
        "warning_under_review",
        "needs_response",
        "under_review",
        "appeal_needs_response",
        "appeal_under_review",
    }
)
DISPUTE_OUTCOMES = {
    "won": "won",
    "prevented": "prevented",
    "warning_closed": "withdrawn",
    "lost": "lost",
}
DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
#: Refund statuses Stripe documents; anything else is flagged.
REFUND_STATUSES = frozenset({"pending", "requires_action", "succeeded", "failed", "canceled"})
REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)


def dispute_reading(status: str) -> tuple[EventKind, str]:
    """(kind, outcome) for a Stripe dispute status: open, closed with an outcome, or unknown
    (DISPUTE_CLOSED with no outcome, which the handler flags)."""
    if status in DISPUTE_OPEN:
        return EventKind.DISPUTE_OPENED, ""
    return EventKind.DISPUTE_CLOSED, DISPUTE_OUTCOMES.get(status, "")


def to_minor(amount: Decimal, currency: str) -> int:
    factor = 1 if currency.upper() in ZERO_DECIMAL else 100
    return int((Decimal(amount) * factor).to_integral_value())


def from_minor(value, currency: str) -> Decimal | None:
    if value is None:
        return None
    if currency.upper() in ZERO_DECIMAL:
        return Decimal(int(value)).quantize(Decimal("0.01"))
    return (Decimal(int(value)) / 100).quantize(Decimal("0.01"))


def _error(exc: stripe.StripeError) -> ProviderError:
    status = getattr(exc, "http_status", None) or 0
    retryable = (
        isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError))
        or status >= 500
        or status == 409
    )
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return ProviderError(
        f"Stripe: {message}",
        retryable=retryable,
        provider=NAME,
        code=getattr(exc, "code", "") or "",
    )


def _id(value) -> str:
    """An id, whether Stripe sent the bare id or the expanded object."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.get("id", "") or ""


class StripeProvider:
    name = NAME
    checkout_lifetime = None  # every session Stripe ever made can be read back

    def __init__(self):
        key = app_settings.stripe_secret_key()
        if not key:
            raise ProviderNotConfigured("STRIPE_SECRET_KEY is not set.")
        base = app_settings.stripe_api_base()
        self.client = stripe.StripeClient(
            key,
            base_addresses={"api": base} if base else None,
            max_network_retries=app_settings.stripe_max_network_retries(),
        )

    # --- checkout ---------------------------------------------------------------------------

    def create_checkout(self, *, order, success_url: str, cancel_url: str) -> CheckoutSession:
        refs = {"order_id": str(order.pk), "user_id": str(order.user_id)}
        expires_at = order.created_at + timedelta(
            minutes=app_settings.stripe_checkout_expires_minutes()
        )
        params = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": order.currency.lower(),
                        "unit_amount": to_minor(order.amount, order.currency),
                        "product_data": {"name": f"{order.package.name}: {order.credits} credits"},
                    },
                }
            ],
            "client_reference_id": str(order.pk),
            "metadata": refs,
            "payment_intent_data": {"metadata": refs},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires_at.timestamp()),
        }
        if order.user.stripe_customer_id:
            params["customer"] = order.user.stripe_customer_id
        else:
            params["customer_email"] = order.user.email
            params["customer_creation"] = "if_required"
        try:
            session = self.client.v1.checkout.sessions.create(
                params, {"idempotency_key": f"checkout-{order.pk}"}
            ).to_dict()
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        if not session.get("url"):
            raise ProviderError("Stripe returned a session without a checkout URL.", provider=NAME)
        return CheckoutSession(provider_order_id=session["id"], redirect_url=session["url"])

    def fetch_payment_status(self, *, order) -> PaymentStatus:
        try:
            if order.provider_order_id.startswith("pi_"):  # an off-session payment (auto top-up)
                intent = self.client.v1.payment_intents.retrieve(order.provider_order_id)
                return intent_status(intent.to_dict())
            session = self.client.v1.checkout.sessions.retrieve(order.provider_order_id).to_dict()
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return session_status(session)

    # --- saved payment methods and off-session payments (auto top-up) -----------------------

    def setup_start(
        self, *, user, customer_id: str, currency: str, success_url: str, cancel_url: str
    ) -> tuple[str, str, str]:
        """Open a Checkout Session in setup mode that saves a card for ``user``; returns
        (customer id, session id, the URL to send the user to). A customer is made first
        when the user has none (once per user: idempotency key)."""
        refs = {"user_id": str(user.pk), "purpose": "auto_topup"}
        try:
            if not customer_id:
                customer = self.client.v1.customers.create(
                    {"email": user.email, "metadata": {"user_id": str(user.pk)}},
                    {"idempotency_key": f"customer-{user.pk}"},
                ).to_dict()
                customer_id = customer["id"]
            session = self.client.v1.checkout.sessions.create(
                {
                    "mode": "setup",
                    "customer": customer_id,
                    "currency": currency.lower(),
                    "payment_method_types": ["card"],
                    "metadata": refs,
                    "setup_intent_data": {"metadata": refs},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                }
            ).to_dict()
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return customer_id, session["id"], session["url"]

    def setup_result(self, *, session_id: str) -> SavedMethod | None:
        """The card a setup-mode session saved, or None while it is not complete."""
        try:
            session = self.client.v1.checkout.sessions.retrieve(
                session_id, {"expand": ["setup_intent.payment_method"]}
            ).to_dict()
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        intent = session.get("setup_intent") or {}
        if session.get("status") != "complete" or not isinstance(intent, dict):
            return None
        if intent.get("status") != "succeeded":
            return None
        method = intent.get("payment_method") or {}
        card = (method.get("card") or {}) if isinstance(method, dict) else {}
        label = (
            f"{str(card.get('brand', 'card')).title()} ending {card['last4']}"
            if card.get("last4")
            else "Saved card"
        )
        return SavedMethod(
            customer_id=_id(session.get("customer")),
            payment_method_id=_id(method),
            label=label,
        )

    def charge_saved(
        self, *, order, customer_id: str, payment_method_id: str, idempotency_key: str
    ) -> PaymentStatus:
        """Pay ``order`` now with the saved card, the buyer away (``off_session``). A declined
        card or one that needs its owner (``authentication_required``) is a failed payment,
        not an error; an outage raises a retryable ProviderError. The key makes a retry
        return the first answer, never a second charge."""
        refs = {"order_id": str(order.pk), "user_id": str(order.user_id), "purpose": "auto_topup"}
        params = {
            "amount": to_minor(order.amount, order.currency),
            "currency": order.currency.lower(),
            "customer": customer_id,
            "payment_method": payment_method_id,
            "off_session": True,
            "confirm": True,
            "metadata": refs,
            "description": f"Auto top-up: {order.package.name}, {order.credits} credits",
        }
        try:
            intent = self.client.v1.payment_intents.create(
                params, {"idempotency_key": idempotency_key}
            ).to_dict()
        except stripe.CardError as exc:
            error = exc.error
            failed = getattr(error, "payment_intent", None)
            failed = failed.to_dict() if hasattr(failed, "to_dict") else dict(failed or {})
            return PaymentStatus(
                state="failed",
                provider_order_id=failed.get("id", ""),
                currency=order.currency,
                raw={
                    "code": getattr(error, "code", "") or "",
                    "decline_code": getattr(error, "decline_code", "") or "",
                    "message": getattr(error, "message", "") or str(exc),
                },
            )
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return intent_status(intent)

    # --- webhooks ---------------------------------------------------------------------------

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        secret = app_settings.stripe_webhook_secret()
        if not secret:
            raise WebhookRejected("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
        header = _header(headers, SIGNATURE_HEADER)
        if not header:
            raise WebhookRejected("Missing Stripe-Signature header.")
        try:
            stripe.Webhook.construct_event(
                body, header, secret, tolerance=app_settings.stripe_webhook_tolerance()
            )
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(f"Invalid signature: {exc.user_message or exc}") from None
        except ValueError:
            raise WebhookRejected("The body is not a JSON event.") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise WebhookRejected("The body is not a JSON event.") from None
        if not isinstance(data, dict) or not data.get("id") or not data.get("type"):
            raise WebhookRejected("The body is not a Stripe event.")
        return normalize_event(data)

    # --- refunds ----------------------------------------------------------------------------

    def refund(
        self, *, order, amount: Decimal, idempotency_key: str, reason: str = ""
    ) -> RefundResult:
        if not order.provider_payment_id:
            raise ProviderError(
                f"Order #{order.pk} has no Stripe payment to refund.", provider=NAME
            )
        params = {
            "payment_intent": order.provider_payment_id,
            "amount": to_minor(amount, order.currency),
            "reason": "requested_by_customer",
            "metadata": {"order_id": str(order.pk), "reason": reason[:500]},
        }
        try:
            refund = self.client.v1.refunds.create(
                params, {"idempotency_key": idempotency_key}
            ).to_dict()
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        currency = (refund.get("currency") or order.currency).upper()
        return RefundResult(
            provider_refund_id=refund["id"],
            status=str(refund.get("status") or ""),
            amount=from_minor(refund.get("amount"), currency),
            currency=currency,
        )

    def refund_state(self, *, order, payment_id: str = "") -> RefundState:
        """All refunds of the order's PaymentIntent, listed from Stripe now."""
        intent = order.provider_payment_id or payment_id
        if not intent:
            raise ProviderError(
                f"Order #{order.pk} has no Stripe payment to read refunds of.", provider=NAME
            )
        refunds = stripe_listing.payment_refunds(self.client, payment_intent=intent)
        return refund_state_of(intent, [_refund_record(intent, r) for r in refunds])

    # --- reconciliation reads (the listings: stripe_listing) --------------------------------

    def recent_checkouts(self, *, since: datetime, orders: Sequence) -> Listing[ProviderCheckout]:
        sessions, in_window = stripe_listing.list_sessions(self.client, since=since, orders=orders)
        return Listing(
            [
                ProviderCheckout(id=s["id"], status=session_status(s), order_ref=session_ref(s))
                for s in sessions
            ],
            {"sessions": in_window},
        )

    def recent_refunds(
        self, *, since: datetime, payment_ids: Sequence[str]
    ) -> Listing[ProviderRefund]:
        refunds, in_window = stripe_listing.list_refunds(
            self.client, since=since, payment_ids=payment_ids
        )
        records = [_refund_record(intent, refund) for intent, refund in refunds]
        return Listing(records, {"refunds": in_window})

    def disputes(self, *, since: datetime, open_ids: Sequence[str]) -> Listing[ProviderDispute]:
        disputes, in_window = stripe_listing.list_disputes(
            self.client, since=since, open_ids=open_ids
        )
        records = []
        for dispute in disputes:
            status = str(dispute.get("status") or "")
            kind, outcome = dispute_reading(status)
            records.append(
                ProviderDispute(
                    id=dispute["id"],
                    payment_id=_id(dispute.get("payment_intent")),
                    kind=kind,
                    dispute_outcome=outcome,
                    dispute_stage=status,
                )
            )
        return Listing(records, {"disputes": in_window})


def _refund_record(intent: str, refund: dict) -> ProviderRefund:
    currency = (refund.get("currency") or "").upper()
    return ProviderRefund(
        id=refund["id"],
        payment_id=intent,
        status=refund.get("status") or "",
        amount=from_minor(refund.get("amount"), currency),
        currency=currency,
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return ""


def session_ref(session: dict) -> str:
    """Our order id as a Checkout Session carries it."""
    return str(
        session.get("client_reference_id") or (session.get("metadata") or {}).get("order_id") or ""
    )


def session_status(session: dict) -> PaymentStatus:
    """A Checkout Session (as a plain dict) as a PaymentStatus."""
    currency = (session.get("currency") or "").upper()
    payment_status = session.get("payment_status")
    if session.get("status") == "complete" and payment_status in ("paid", "no_payment_required"):
        state = "paid"
    elif session.get("status") == "expired":
        state = "expired"
    elif session.get("status") == "complete":
        state = "pending"
    elif session.get("status") == "open":
        state = "open"
    else:
        state = "unknown"
    return PaymentStatus(
        state=state,
        provider_order_id=session.get("id", ""),
        provider_payment_id=_id(session.get("payment_intent")),
        amount=from_minor(session.get("amount_total"), currency),
        currency=currency,
        raw=dict(session),
    )


#: Subscription events: the subscription (and the invoice) are read back from Stripe.
SUBSCRIPTION_EVENTS = {
    "invoice.paid": EventKind.SUBSCRIPTION_INVOICE_PAID,
    "invoice.payment_failed": EventKind.SUBSCRIPTION_PAYMENT_FAILED,
    "customer.subscription.created": EventKind.SUBSCRIPTION_UPDATED,
    "customer.subscription.updated": EventKind.SUBSCRIPTION_UPDATED,
    "customer.subscription.deleted": EventKind.SUBSCRIPTION_ENDED,
}


def subscription_event(common: dict, event_type: str, obj: dict) -> NormalizedEvent:
    if event_type.startswith("checkout.session."):
        # A subscription checkout finished (or expired): the subscription, once there is
        # one, else the session itself, is read back.
        return NormalizedEvent(
            **common,
            kind=EventKind.SUBSCRIPTION_UPDATED,
            subscription_id=_id(obj.get("subscription")) or obj.get("id", ""),
        )
    if event_type.startswith("invoice."):
        parent = (obj.get("parent") or {}).get("subscription_details") or {}
        sub_id = _id(parent.get("subscription")) or _id(obj.get("subscription"))
        if not sub_id:  # an invoice of no subscription of ours
            return NormalizedEvent(**common, kind=EventKind.IGNORED)
        return NormalizedEvent(
            **common,
            kind=SUBSCRIPTION_EVENTS[event_type],
            subscription_id=sub_id,
            invoice_id=obj.get("id", ""),
        )
    return NormalizedEvent(
        **common, kind=SUBSCRIPTION_EVENTS[event_type], subscription_id=obj.get("id", "")
    )


def intent_status(intent: dict) -> PaymentStatus:
    """An off-session PaymentIntent as a PaymentStatus: anything that needs the buyer
    (``requires_action``, ``requires_payment_method``) or was canceled has failed."""
    currency = (intent.get("currency") or "").upper()
    status = intent.get("status")
    state = {
        "succeeded": "paid",
        "processing": "pending",
        "requires_confirmation": "open",
        "requires_capture": "pending",
    }.get(status, "failed")
    error = intent.get("last_payment_error") or {}
    return PaymentStatus(
        state=state,
        provider_order_id=intent.get("id", ""),
        provider_payment_id=intent.get("id", "") if state == "paid" else "",
        amount=from_minor(intent.get("amount"), currency),
        currency=currency,
        raw={"code": error.get("code", "") or status or "", "message": error.get("message", "")},
    )


def normalize_event(data: dict) -> NormalizedEvent:
    """A verified Stripe event as the provider-neutral NormalizedEvent."""
    event_type = data["type"]
    obj = (data.get("data") or {}).get("object") or {}
    common = {"provider": NAME, "event_id": data["id"], "type": event_type, "raw": data}
    currency = (obj.get("currency") or "").upper()

    if event_type in SUBSCRIPTION_EVENTS or (
        event_type.startswith("checkout.session.") and obj.get("mode") == "subscription"
    ):
        return subscription_event(common, event_type, obj)
    if event_type.startswith("checkout.session."):
        if event_type == "checkout.session.completed":
            paid = obj.get("payment_status") in ("paid", "no_payment_required")
            kind = EventKind.PAYMENT_SUCCEEDED if paid else EventKind.PAYMENT_PENDING
        else:
            kind = CHECKOUT_KINDS.get(event_type, EventKind.IGNORED)
        return NormalizedEvent(
            **common,
            kind=kind,
            order_ref=str(
                obj.get("client_reference_id") or (obj.get("metadata") or {}).get("order_id") or ""
            ),
            provider_order_id=obj.get("id", ""),
            provider_payment_id=_id(obj.get("payment_intent")),
            amount=from_minor(obj.get("amount_total"), currency),
            currency=currency,
        )
    if event_type in INTENT_KINDS and (obj.get("metadata") or {}).get("purpose") == "auto_topup":
        # Off-session payments (auto top-up) have no Checkout Session: the intent is the order's.
        return NormalizedEvent(
            **common,
            kind=INTENT_KINDS[event_type],
            order_ref=str((obj.get("metadata") or {}).get("order_id") or ""),
            provider_order_id=obj.get("id", ""),
            provider_payment_id=obj.get("id", "") if obj.get("status") == "succeeded" else "",
            amount=from_minor(obj.get("amount"), currency),
            currency=currency,
        )
    if event_type == "charge.refunded":
        return NormalizedEvent(
            **common,
            kind=EventKind.REFUNDED,
            order_ref=str((obj.get("metadata") or {}).get("order_id") or ""),
            provider_payment_id=_id(obj.get("payment_intent")),
            amount=from_minor(obj.get("amount"), currency),
            amount_refunded=from_minor(obj.get("amount_refunded"), currency),
            currency=currency,
        )
    if event_type in DISPUTE_EVENTS:
        # The dispute's own status says where it stands, whatever the event is called: a
        # ``created`` may already be closed (a prevented dispute), an ``updated`` may open
        # an appeal, and events arrive in any order.
        status = str(obj.get("status") or "")
        kind, outcome = dispute_reading(status)
        return NormalizedEvent(
            **common,
            kind=kind,
            order_ref=str((obj.get("metadata") or {}).get("order_id") or ""),
            provider_payment_id=_id(obj.get("payment_intent")),
            amount=from_minor(obj.get("amount"), currency),
            currency=currency,
            dispute_id=obj.get("id", ""),
            dispute_outcome=outcome,
            dispute_stage=status,
        )
    if event_type in REFUND_EVENTS:
        return NormalizedEvent(
            **common,
            kind=EventKind.REFUND_UPDATED,
            order_ref=str((obj.get("metadata") or {}).get("order_id") or ""),
            provider_payment_id=_id(obj.get("payment_intent")),
            amount=from_minor(obj.get("amount"), currency),
            currency=currency,
            refund_id=obj.get("id", ""),
            refund_status=str(obj.get("status") or ""),
        )
    return NormalizedEvent(**common, kind=EventKind.IGNORED)
