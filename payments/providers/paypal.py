"""PayPal (Orders v2) behind the provider interface, through the official ``paypal-server-sdk``.

The flow: ``create_checkout`` opens a PayPal order (``custom_id`` = our order id, a unique
``invoice_id``, ``PayPal-Request-Id`` so a retried create returns the same order) and sends
the buyer to PayPal's approval page. PayPal sends the buyer back to our return view, which
calls ``capture``; the money is ours only when the capture is COMPLETED. A PENDING capture
waits for the PAYMENT.CAPTURE.COMPLETED webhook. Auto top-up pays without the buyer:
``charge_saved`` creates an order naming the saved account's ``vault_id`` (see
``paypal_vault``), which PayPal captures at once. Like every adapter, this never touches
our database.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.urls import reverse
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent
from paypalserversdk.models.money import Money
from paypalserversdk.models.order_request import OrderRequest
from paypalserversdk.models.payment_initiator import PaymentInitiator
from paypalserversdk.models.payment_source import PaymentSource
from paypalserversdk.models.paypal_experience_landing_page import PaypalExperienceLandingPage
from paypalserversdk.models.paypal_experience_user_action import PaypalExperienceUserAction
from paypalserversdk.models.paypal_wallet import PaypalWallet
from paypalserversdk.models.paypal_wallet_context_shipping_preference import (
    PaypalWalletContextShippingPreference,
)
from paypalserversdk.models.paypal_wallet_experience_context import PaypalWalletExperienceContext
from paypalserversdk.models.paypal_wallet_stored_credential import PaypalWalletStoredCredential
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest
from paypalserversdk.models.refund_request import RefundRequest
from paypalserversdk.models.stored_payment_source_usage_type import StoredPaymentSourceUsageType
from paypalserversdk.models.usage_pattern import UsagePattern

from ..exceptions import ProviderError, WebhookRejected
from . import paypal_disputes
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
from .paypal_client import PROVIDER, paypal_call, response_json
from .paypal_settings import PayPalSettings, paypal_settings
from .paypal_subscriptions import PayPalSubscriptions
from .paypal_vault import PayPalVault

#: Currencies PayPal takes in whole units only.
ZERO_DECIMAL_CURRENCIES = frozenset({"HUF", "JPY", "TWD"})

CAPTURE_STATES = {
    "COMPLETED": "paid",
    "PARTIALLY_REFUNDED": "paid",  # it was paid; refunds are reported separately
    "REFUNDED": "paid",
    "PENDING": "pending",
    "DECLINED": "failed",
    "FAILED": "failed",
}
#: PayPal's refund statuses in the Refund.Status vocabulary; any other word is passed on as
#: it is (and refused as unknown by the refund service).
REFUND_STATUSES = {
    "COMPLETED": "succeeded",
    "PENDING": "pending",
    "FAILED": "failed",
    "CANCELLED": "canceled",
}
#: PayPal drops an order nobody approved after a few hours: one it no longer knows, this long
#: after it was made, was never paid.
UNAPPROVED_LIFETIME = timedelta(hours=6)
ORDER_STATES = {
    "CREATED": "open",
    "SAVED": "open",
    "PAYER_ACTION_REQUIRED": "open",
    "APPROVED": "open",  # approved by the buyer, still ours to capture
    "VOIDED": "failed",
}
#: The ``reference_id`` of an order paid with a saved account, the buyer away (auto top-up).
#: Such an order that still waits for its payer has failed: nobody is there to act.
OFF_SESSION_REFERENCE = "auto-topup"
#: PayPal's refusals of an order paid with a saved account that mean "not paid", not "try
#: again" (the Orders v2 issues for a declined or unusable funding source).
OFF_SESSION_DECLINES = frozenset(
    {
        "INSTRUMENT_DECLINED",
        "PAYER_ACTION_REQUIRED",
        "PAYER_CANNOT_PAY",
        "TRANSACTION_REFUSED",
        "PAYMENT_DENIED",
        "AGREEMENT_ALREADY_CANCELLED",
        "BILLING_AGREEMENT_NOT_FOUND",
        "PAYMENT_SOURCE_DECLINED_BY_PROCESSOR",
        "PAYMENT_SOURCE_CANNOT_BE_USED",
        "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
        "COMPLIANCE_VIOLATION",
        "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
        "INVALID_RESOURCE_ID",
    }
)


@dataclass(frozen=True)
class PayPalCapture:
    id: str
    status: str
    amount: Decimal | None
    currency: str
    status_reason: str = ""


@dataclass(frozen=True)
class PayPalRefund:
    id: str
    status: str
    amount: Decimal | None
    currency: str
    capture_id: str = ""


@dataclass(frozen=True)
class PayPalOrderSnapshot:
    """What PayPal says about one order, read from its Orders v2 representation."""

    id: str
    status: str
    custom_id: str = ""
    invoice_id: str = ""
    reference_id: str = ""
    amount: Decimal | None = None
    currency: str = ""
    captures: tuple[PayPalCapture, ...] = ()
    refunds: tuple[PayPalRefund, ...] = ()
    approve_url: str = ""
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def capture(self) -> PayPalCapture | None:
        return self.captures[0] if self.captures else None

    @property
    def approved(self) -> bool:
        return self.status == "APPROVED"

    @property
    def off_session(self) -> bool:
        """Paid with a saved account, the buyer away (auto top-up)."""
        return self.reference_id == OFF_SESSION_REFERENCE

    @property
    def amount_refunded(self) -> Decimal:
        """Cumulative refunds of this order's captures that completed or are on their way
        (PENDING), as the order's refunded amount counts them."""
        return sum(
            (
                r.amount or Decimal("0")
                for r in self.refunds
                if r.status in ("COMPLETED", "PENDING")
            ),
            Decimal("0"),
        )

    def provider_refunds(self) -> tuple[ProviderRefund, ...]:
        """This order's refunds as provider-neutral records, in the Refund.Status vocabulary."""
        capture_id = self.capture.id if self.capture else ""
        # One capture per order: its refunds are the order's, whatever capture they link to.
        return tuple(
            ProviderRefund(
                id=r.id,
                payment_id=capture_id,
                status=REFUND_STATUSES.get(r.status.upper(), r.status),
                amount=r.amount,
                currency=r.currency,
            )
            for r in self.refunds
        )

    def refund_state(self) -> RefundState:
        """The capture's refunds now; a REVERSED capture (PayPal took the payment back without
        a refund of ours) counts as refunded in full."""
        capture = self.capture
        reversed_amount = capture.amount if capture and capture.status == "REVERSED" else None
        return refund_state_of(
            capture.id if capture else "", self.provider_refunds(), taken_back=reversed_amount
        )

    def as_checkout(self) -> ProviderCheckout:
        refunds = self.provider_refunds()
        return ProviderCheckout(
            id=self.id,
            status=self.payment_status(),
            order_ref=self.custom_id,
            approved=self.approved and not self.captures,
            refunds=refunds,
        )

    def payment_status(self) -> PaymentStatus:
        capture = self.capture
        raw = self.raw
        if capture is not None:
            state = CAPTURE_STATES.get(capture.status, "unknown")
            if state == "failed" and self.off_session:
                raw = _failure(capture.status, capture.status_reason or f"capture {capture.id}")
            return PaymentStatus(
                state=state,
                provider_order_id=self.id,
                provider_payment_id=capture.id,
                amount=capture.amount,
                currency=capture.currency,
                raw=raw,
            )
        state = "failed" if self.status == "COMPLETED" else ORDER_STATES.get(self.status, "unknown")
        if state == "open" and self.off_session and not self.approved:
            state, raw = "failed", _failure(self.status, f"PayPal order {self.id} is {self.status}")
        return PaymentStatus(
            state=state,
            provider_order_id=self.id,
            amount=self.amount,
            currency=self.currency,
            raw=raw,
        )


class PayPalProvider(PayPalVault, PayPalSubscriptions):
    """The PayPal adapter. Settings are read when it is made (``paypal_settings()``)."""

    name = PROVIDER
    checkout_lifetime = UNAPPROVED_LIFETIME

    def __init__(self, conf: PayPalSettings | None = None):
        self.conf = conf or paypal_settings()

    @property
    def configured(self) -> bool:
        return self.conf.configured

    # --- the provider interface ------------------------------------------------------------

    def create_checkout(self, *, order, success_url: str, cancel_url: str) -> CheckoutSession:
        """Open a PayPal order for ``order`` and return where to send the buyer to approve it.

        PayPal returns the buyer to our PayPal return page (on the host of ``success_url``),
        which captures and then shows ``order``'s success page. The same PayPal-Request-Id
        for the same order means a retried call (a double click, a lost response) gets the
        order PayPal already made, not a second one.
        """
        parts = urlsplit(success_url)
        return_url = f"{parts.scheme}://{parts.netloc}{reverse('payments:paypal_return')}"
        body = OrderRequest(
            intent=CheckoutPaymentIntent.CAPTURE,
            purchase_units=[
                PurchaseUnitRequest(
                    reference_id="default",
                    custom_id=str(order.pk),
                    invoice_id=self.invoice_id(order),
                    description=f"{order.credits} credits"[:127],
                    amount=AmountWithBreakdown(
                        currency_code=order.currency.upper(),
                        value=format_amount(order.amount, order.currency),
                    ),
                )
            ],
            payment_source=PaymentSource(
                paypal=PaypalWallet(
                    experience_context=PaypalWalletExperienceContext(
                        brand_name=self.conf.brand_name[:127],
                        shipping_preference=PaypalWalletContextShippingPreference.NO_SHIPPING,
                        landing_page=PaypalExperienceLandingPage.LOGIN,
                        user_action=PaypalExperienceUserAction.PAY_NOW,
                        return_url=return_url,
                        cancel_url=cancel_url,
                    )
                )
            ),
        )
        response = paypal_call(
            self.conf,
            "create order",
            lambda client: client.orders.create_order(
                {
                    "body": body,
                    "paypal_request_id": f"order-{order.pk}-create",
                    "prefer": "return=representation",
                }
            ),
        )
        snapshot = parse_order(response_json(response))
        if not snapshot.id or not snapshot.approve_url:
            raise ProviderError(
                "PayPal created an order without an approval link.",
                retryable=True,
                provider=PROVIDER,
            )
        return CheckoutSession(provider_order_id=snapshot.id, redirect_url=snapshot.approve_url)

    def charge_saved(
        self, *, order, customer_id: str, payment_method_id: str, idempotency_key: str
    ) -> PaymentStatus:
        """Pay ``order`` now from the saved PayPal account (``payment_method_id``: a vault
        payment token), the buyer away: an order naming the ``vault_id``, which PayPal
        captures as it creates it. A declined account, or one that needs its owner
        (PAYER_ACTION_REQUIRED), is a failed payment, not an error; an outage raises a
        retryable ProviderError. ``idempotency_key`` is the PayPal-Request-Id: a retry gets
        the first answer back, never a second charge."""
        body = OrderRequest(
            intent=CheckoutPaymentIntent.CAPTURE,
            purchase_units=[
                PurchaseUnitRequest(
                    reference_id=OFF_SESSION_REFERENCE,
                    custom_id=str(order.pk),
                    invoice_id=self.invoice_id(order),
                    description=f"Auto top-up: {order.credits} credits"[:127],
                    amount=AmountWithBreakdown(
                        currency_code=order.currency.upper(),
                        value=format_amount(order.amount, order.currency),
                    ),
                )
            ],
            payment_source=PaymentSource(
                paypal=PaypalWallet(
                    vault_id=payment_method_id,
                    stored_credential=PaypalWalletStoredCredential(
                        payment_initiator=PaymentInitiator.MERCHANT,
                        usage=StoredPaymentSourceUsageType.SUBSEQUENT,
                        usage_pattern=UsagePattern.THRESHOLD_PREPAID,
                    ),
                )
            ),
        )
        try:
            response = paypal_call(
                self.conf,
                "create order (saved account)",
                lambda client: client.orders.create_order(
                    {
                        "body": body,
                        "paypal_request_id": idempotency_key[:108],
                        "prefer": "return=representation",
                    }
                ),
            )
        except ProviderError as exc:
            if exc.retryable or exc.code not in OFF_SESSION_DECLINES:
                raise
            return PaymentStatus(
                state="failed", currency=order.currency, raw=_failure(exc.code, str(exc))
            )
        snapshot = parse_order(response_json(response))
        if snapshot.approved and not snapshot.captures:
            snapshot = self.capture(
                provider_order_id=snapshot.id, idempotency_key=capture_key(order)
            )
        return snapshot.payment_status()

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        from ..paypal_webhooks import verify_paypal_webhook

        event = verify_paypal_webhook(body=body, headers=headers, conf=self.conf)
        return normalize_event(event)

    def fetch_payment_status(self, *, order) -> PaymentStatus:
        """What became of ``order``'s payment, capturing it first when the buyer approved it.

        A PayPal order the buyer approved is not paid until we capture it, and PayPal
        reverses an approval left uncaptured. So whoever asks first (the return page, the
        CHECKOUT.ORDER.APPROVED webhook, the reconciliation sweep) completes the capture,
        with one PayPal-Request-Id per order: racing askers get the same capture.
        """
        if not order.provider_order_id:
            return PaymentStatus(state="unknown")
        snapshot = self.fetch_order(provider_order_id=order.provider_order_id)
        if snapshot is None:
            return PaymentStatus(state="unknown", provider_order_id=order.provider_order_id)
        if snapshot.approved and not snapshot.captures:
            snapshot = self.capture(
                provider_order_id=snapshot.id, idempotency_key=capture_key(order)
            )
        return snapshot.payment_status()

    def refund(
        self, *, order, amount: Decimal, idempotency_key: str, reason: str = ""
    ) -> RefundResult:
        capture_id = order.provider_payment_id
        if not capture_id:
            snapshot = self.fetch_order(provider_order_id=order.provider_order_id or "")
            capture_id = snapshot.capture.id if snapshot and snapshot.capture else ""
        if not capture_id:
            raise ProviderError(
                f"Order #{order.pk} has no PayPal capture to refund.",
                provider=PROVIDER,
                code="NO_CAPTURE",
            )
        request = RefundRequest(
            amount=Money(
                currency_code=order.currency.upper(), value=format_amount(amount, order.currency)
            ),
            invoice_id=f"{self.invoice_id(order)}-R-{_short(idempotency_key)}"[:127],
            note_to_payer=(reason or "Refund")[:255],
        )
        response = paypal_call(
            self.conf,
            "refund",
            lambda client: client.payments.refund_captured_payment(
                {
                    "capture_id": capture_id,
                    "body": request,
                    "paypal_request_id": idempotency_key[:108],
                    "prefer": "return=representation",
                }
            ),
        )
        data = response_json(response)
        money = data.get("amount") or {}
        status = REFUND_STATUSES.get(
            str(data.get("status") or "").upper(), str(data.get("status") or "")
        )
        return RefundResult(
            provider_refund_id=data.get("id", ""),
            status=status,
            amount=parse_amount(money.get("value")) or amount,
            currency=money.get("currency_code") or order.currency,
        )

    def refund_state(self, *, order, payment_id: str = "") -> RefundState:
        """The refunds of the order's capture, as PayPal's order now lists them (the capture
        names its order when ours has no PayPal order id stored)."""
        snapshot = self.fetch_order(provider_order_id=order.provider_order_id or "")
        if snapshot is None:
            snapshot = self.order_of_capture(capture_id=order.provider_payment_id or payment_id)
        if snapshot is None:
            raise ProviderError(
                f"PayPal knows no payment of order #{order.pk} to read refunds of.",
                provider=PROVIDER,
                code="RESOURCE_NOT_FOUND",
            )
        return snapshot.refund_state()

    # --- PayPal-only -----------------------------------------------------------------------

    def invoice_id(self, order) -> str:
        """Unique per order across the PayPal account (PayPal refuses a repeated invoice id)."""
        return f"{self.conf.invoice_prefix}{order.pk}"

    def fetch_order(self, *, provider_order_id: str) -> PayPalOrderSnapshot | None:
        """GET the PayPal order; None when PayPal does not know it."""
        if not provider_order_id:
            return None
        try:
            response = paypal_call(
                self.conf,
                "get order",
                lambda client: client.orders.get_order({"id": provider_order_id}),
            )
        except ProviderError as exc:
            if exc.code in ("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "404"):
                return None
            raise
        return parse_order(response_json(response))

    def order_of_capture(self, *, capture_id: str) -> PayPalOrderSnapshot | None:
        """GET the capture, then the PayPal order it belongs to (which lists the capture's
        refunds); None when PayPal knows neither."""
        if not capture_id:
            return None
        try:
            response = paypal_call(
                self.conf,
                "get capture",
                lambda client: client.payments.get_captured_payment({"capture_id": capture_id}),
            )
        except ProviderError as exc:
            if exc.code in ("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "404"):
                return None
            raise
        data = response_json(response)
        related = (data.get("supplementary_data") or {}).get("related_ids") or {}
        order_id = related.get("order_id", "") or _order_id_from_links(data)
        return self.fetch_order(provider_order_id=order_id)

    def capture(self, *, provider_order_id: str, idempotency_key: str) -> PayPalOrderSnapshot:
        """Capture an approved order, once: the same key returns the first capture's answer.

        An order captured before (by a racing webhook or a sweep, under another key) is read
        back instead of failing. An order not yet approved comes back as it is (status open).
        Raises ProviderError for a declined instrument and for PayPal being unavailable.
        """
        try:
            response = paypal_call(
                self.conf,
                "capture",
                lambda client: client.orders.capture_order(
                    {
                        "id": provider_order_id,
                        "paypal_request_id": idempotency_key[:108],
                        "prefer": "return=representation",
                    }
                ),
            )
        except ProviderError as exc:
            if exc.code in ("ORDER_ALREADY_CAPTURED", "ORDER_NOT_APPROVED", "DUPLICATE_REQUEST_ID"):
                snapshot = self.fetch_order(provider_order_id=provider_order_id)
                if snapshot is not None:
                    return snapshot
            raise
        return parse_order(response_json(response))

    # --- reconciliation reads ----------------------------------------------------------------

    def recent_checkouts(self, *, since: datetime, orders: Sequence) -> Listing[ProviderCheckout]:
        """Each of ``orders``' PayPal orders, read one by one (PayPal lists no orders), with
        its captures' refunds."""
        checkouts = []
        counts = {"orders": 0, "captures": 0, "refunds": 0}
        for order in orders:
            if order.provider_order_id is None:
                continue
            counts["orders"] += 1
            snapshot = self.fetch_order(provider_order_id=order.provider_order_id)
            if snapshot is None:
                continue
            if not snapshot.custom_id or snapshot.custom_id == str(order.pk):
                counts["captures"] += len(snapshot.captures)
                counts["refunds"] += len(snapshot.refunds)
            checkouts.append(snapshot.as_checkout())
        return Listing(checkouts, counts)

    def recent_refunds(
        self, *, since: datetime, payment_ids: Sequence[str]
    ) -> Listing[ProviderRefund]:
        """Every refund of each of ``payment_ids`` (captures with a refund we counted while
        PayPal had not completed it), however old the order: each capture names its order,
        which lists the refunds. PayPal lists no refunds by date: those of recent orders come
        with each order (``recent_checkouts``)."""
        records: list[ProviderRefund] = []
        for capture_id in dict.fromkeys(i for i in payment_ids if i):
            snapshot = self.order_of_capture(capture_id=capture_id)
            if snapshot is not None:
                records.extend(snapshot.provider_refunds())
        return Listing(records, {"refunds_in_flight": len(records)})

    def disputes(self, *, since: datetime, open_ids: Sequence[str]) -> Listing[ProviderDispute]:
        """The disputes created since ``since`` and ``open_ids``, each read whole from the
        Disputes API (a listing carries no disputed transactions)."""
        listed = [
            str(d.get("dispute_id") or "")
            for d in paypal_disputes.list_disputes(since=since, conf=self.conf)
        ]
        ids = list(dict.fromkeys([i for i in listed if i] + list(open_ids)))
        records = []
        for dispute_id in ids:
            dispute = paypal_disputes.get_dispute(dispute_id=dispute_id, conf=self.conf)
            if dispute is None:
                records.append(ProviderDispute(id=dispute_id, known=False))
                continue
            capture_id, ref = dispute_payment(dispute)
            kind, outcome, stage = dispute_reading(dispute)
            records.append(
                ProviderDispute(
                    id=dispute_id,
                    payment_id=capture_id,
                    order_ref=ref,
                    kind=kind,
                    dispute_outcome=outcome,
                    dispute_stage=stage,
                )
            )
        return Listing(records, {"disputes": len(records)})


def capture_key(order) -> str:
    """The PayPal-Request-Id of the one capture of ``order``."""
    return f"order-{order.pk}-capture"


# --- wire format --------------------------------------------------------------------------


def format_amount(amount: Decimal, currency: str) -> str:
    places = Decimal("1") if currency.upper() in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return f"{Decimal(amount).quantize(places):f}"


def parse_amount(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def parse_order(data: dict) -> PayPalOrderSnapshot:
    units = data.get("purchase_units") or [{}]
    unit = units[0] if isinstance(units[0], dict) else {}
    amount = unit.get("amount") or {}
    payments = unit.get("payments") or {}
    captures = tuple(_capture(c) for c in payments.get("captures") or [])
    refunds = tuple(_refund(r) for r in payments.get("refunds") or [])
    approve = next(
        (
            link.get("href", "")
            for link in data.get("links") or []
            if link.get("rel") in ("payer-action", "approve")
        ),
        "",
    )
    return PayPalOrderSnapshot(
        id=data.get("id", ""),
        status=data.get("status", ""),
        custom_id=str(unit.get("custom_id") or ""),
        invoice_id=str(unit.get("invoice_id") or ""),
        reference_id=str(unit.get("reference_id") or ""),
        amount=parse_amount(amount.get("value")),
        currency=amount.get("currency_code", ""),
        captures=captures,
        refunds=refunds,
        approve_url=approve,
        raw=data,
    )


def normalize_event(event: dict) -> NormalizedEvent:
    """A verified PayPal webhook body as the provider-neutral event the pipeline handles."""
    event_type = event.get("event_type") or ""
    event_id = event.get("id") or ""
    resource = event.get("resource") or {}
    if not event_id or not event_type or not isinstance(resource, dict):
        raise WebhookRejected("The PayPal event has no id, type or resource.")
    parser = EVENT_PARSERS.get(event_type)
    fields = parser(resource) if parser else {"kind": EventKind.IGNORED}
    return NormalizedEvent(
        provider=PROVIDER, event_id=event_id, type=event_type, raw=event, **fields
    )


def _order_approved(resource: dict) -> dict:
    snapshot = parse_order(resource)
    return {
        "kind": EventKind.CHECKOUT_APPROVED,
        "order_ref": snapshot.custom_id,
        "provider_order_id": snapshot.id,
        "amount": snapshot.amount,
        "currency": snapshot.currency,
    }


def _capture_event(kind: EventKind):
    def parse(resource: dict) -> dict:
        money = resource.get("amount") or {}
        related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
        return {
            "kind": kind,
            "order_ref": str(resource.get("custom_id") or ""),
            "provider_order_id": related.get("order_id", ""),
            "provider_payment_id": resource.get("id", ""),
            "amount": parse_amount(money.get("value")),
            "currency": money.get("currency_code", ""),
        }

    return parse


def _refund_event(resource: dict) -> dict:
    """PAYMENT.CAPTURE.REFUNDED / REVERSED: the resource is the refund; the capture is its "up" link."""
    money = resource.get("amount") or {}
    this_refund = parse_amount(money.get("value"))
    this_refund = abs(this_refund) if this_refund is not None else None
    total = (resource.get("seller_payable_breakdown") or {}).get("total_refunded_amount") or {}
    cumulative = parse_amount(total.get("value"))
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    return {
        "kind": EventKind.REFUNDED,
        "order_ref": str(resource.get("custom_id") or ""),
        "provider_order_id": related.get("order_id", ""),
        "provider_payment_id": related.get("capture_id", "") or _capture_id_from_links(resource),
        "amount": this_refund,
        "amount_refunded": cumulative if cumulative is not None else this_refund,
        "currency": money.get("currency_code", "") or total.get("currency_code", ""),
    }


def _reversal_event(resource: dict) -> dict:
    """PAYMENT.CAPTURE.REVERSED: PayPal took the whole payment back (a chargeback or a recall)."""
    if resource.get("seller_payable_breakdown") or _capture_id_from_links(resource):
        return _refund_event(resource)
    fields = _capture_event(EventKind.REFUNDED)(resource)
    fields["amount"] = abs(fields["amount"]) if fields["amount"] is not None else None
    fields["amount_refunded"] = fields["amount"]
    return fields


#: PayPal's documented dispute statuses (Disputes API v1) that leave the dispute open: the
#: buyer's spending stays frozen. ``OTHER`` is PayPal's "none of the others": still open.
DISPUTE_OPEN = frozenset(
    {"OPEN", "WAITING_FOR_BUYER_RESPONSE", "WAITING_FOR_SELLER_RESPONSE", "UNDER_REVIEW", "OTHER"}
)
#: Every ``dispute_outcome.outcome_code`` PayPal documents for a RESOLVED dispute, and what
#: it means for the credits. The buyer got the money back (decided for them, the seller
#: accepted the claim, or PayPal paid them out): lost, the credits are taken back. Decided
#: for the seller or the claim denied: won. The buyer withdrew: withdrawn. ``NONE`` says
#: nothing about who got the money, so it is not read as either: like an outcome PayPal does
#: not document, it is flagged for staff and spending stays frozen.
DISPUTE_OUTCOMES = {
    "RESOLVED_BUYER_FAVOUR": "lost",
    "ACCEPTED": "lost",
    "RESOLVED_WITH_PAYOUT": "lost",
    "RESOLVED_SELLER_FAVOUR": "won",
    "DENIED": "won",
    "CANCELED_BY_BUYER": "withdrawn",
}


def dispute_reading(resource: dict) -> tuple[EventKind, str, str]:
    """(kind, outcome, stage) for a PayPal dispute (a webhook resource or the Disputes API's
    representation). An unknown status, or a RESOLVED one without a documented decisive
    outcome, is DISPUTE_CLOSED with no outcome: the handler flags it."""
    status = str(resource.get("status") or "").upper()
    code = str((resource.get("dispute_outcome") or {}).get("outcome_code") or "").upper()
    stage = f"{status}/{code}" if code else status
    if status in DISPUTE_OPEN:
        return EventKind.DISPUTE_OPENED, "", stage
    if status == "RESOLVED":
        return EventKind.DISPUTE_CLOSED, DISPUTE_OUTCOMES.get(code, ""), stage
    return EventKind.DISPUTE_CLOSED, "", stage


def dispute_payment(resource: dict) -> tuple[str, str]:
    """(capture id, our order reference) of a dispute's first disputed transaction."""
    transactions = resource.get("disputed_transactions") or [{}]
    first = transactions[0] if isinstance(transactions[0], dict) else {}
    return str(first.get("seller_transaction_id") or ""), str(
        first.get("custom") or first.get("custom_id") or ""
    )


def _dispute_event(resource: dict) -> dict:
    """CUSTOMER.DISPUTE.CREATED / UPDATED / RESOLVED: the dispute's status and outcome say
    where it stands, whatever the event is called (events arrive in any order)."""
    transactions = resource.get("disputed_transactions") or [{}]
    first = transactions[0] if isinstance(transactions[0], dict) else {}
    money = resource.get("dispute_amount") or first.get("gross_amount") or {}
    kind, outcome, stage = dispute_reading(resource)
    capture_id, ref = dispute_payment(resource)
    return {
        "kind": kind,
        "dispute_id": resource.get("dispute_id", ""),
        "provider_payment_id": capture_id,
        "order_ref": ref,
        "amount": parse_amount(money.get("value")),
        "currency": money.get("currency_code", ""),
        "dispute_outcome": outcome,
        "dispute_stage": stage,
    }


def _subscription_event(kind: EventKind):
    def parse(resource: dict) -> dict:
        return {"kind": kind, "subscription_id": str(resource.get("id") or "")}

    return parse


def _sale_completed(resource: dict) -> dict:
    """A subscription period's payment: read back with its subscription."""
    agreement = str(resource.get("billing_agreement_id") or "")
    if not agreement:
        return {"kind": EventKind.IGNORED}
    return {
        "kind": EventKind.SUBSCRIPTION_INVOICE_PAID,
        "subscription_id": agreement,
        "invoice_id": f"{agreement}/{resource.get('id', '')}",
    }


def _sale_refunded(resource: dict) -> dict:
    """A refund (or reversal) of a subscription period's payment. PayPal's sale refund names
    the sale and this refund's amount, not a running total: the amount is taken as the total
    refunded (a full refund, or the first partial one); a reversal takes the whole payment."""
    money = resource.get("amount") or {}
    currency = str(money.get("currency") or money.get("currency_code") or "").upper()
    total = parse_amount(money.get("total") or money.get("value"))
    reversed_ = str(resource.get("state") or "").lower() == "reversed"
    return {
        "kind": EventKind.REFUNDED,
        "provider_payment_id": str(resource.get("sale_id") or resource.get("id") or ""),
        "amount_refunded": Decimal("1e9") if reversed_ else total,
        "currency": currency,
    }


EVENT_PARSERS = {
    "BILLING.SUBSCRIPTION.ACTIVATED": _subscription_event(EventKind.SUBSCRIPTION_UPDATED),
    "BILLING.SUBSCRIPTION.UPDATED": _subscription_event(EventKind.SUBSCRIPTION_UPDATED),
    "BILLING.SUBSCRIPTION.SUSPENDED": _subscription_event(EventKind.SUBSCRIPTION_UPDATED),
    "BILLING.SUBSCRIPTION.CANCELLED": _subscription_event(EventKind.SUBSCRIPTION_ENDED),
    "BILLING.SUBSCRIPTION.EXPIRED": _subscription_event(EventKind.SUBSCRIPTION_ENDED),
    "BILLING.SUBSCRIPTION.PAYMENT.FAILED": _subscription_event(
        EventKind.SUBSCRIPTION_PAYMENT_FAILED
    ),
    "PAYMENT.SALE.COMPLETED": _sale_completed,
    "PAYMENT.SALE.REFUNDED": _sale_refunded,
    "PAYMENT.SALE.REVERSED": _sale_refunded,
    "CHECKOUT.ORDER.APPROVED": _order_approved,
    "PAYMENT.CAPTURE.COMPLETED": _capture_event(EventKind.PAYMENT_SUCCEEDED),
    "PAYMENT.CAPTURE.PENDING": _capture_event(EventKind.PAYMENT_PENDING),
    "PAYMENT.CAPTURE.DENIED": _capture_event(EventKind.PAYMENT_FAILED),
    "PAYMENT.CAPTURE.DECLINED": _capture_event(EventKind.PAYMENT_FAILED),
    "PAYMENT.CAPTURE.REFUNDED": _refund_event,
    "PAYMENT.CAPTURE.REVERSED": _reversal_event,
    "CUSTOMER.DISPUTE.CREATED": _dispute_event,
    "CUSTOMER.DISPUTE.UPDATED": _dispute_event,
    "CUSTOMER.DISPUTE.RESOLVED": _dispute_event,
}

_CAPTURE_LINK = re.compile(r"/v2/payments/captures/([A-Za-z0-9-]+)")
_ORDER_LINK = re.compile(r"/v2/checkout/orders/([A-Za-z0-9-]+)")


def _capture_id_from_links(resource: dict) -> str:
    for link in resource.get("links") or []:
        if link.get("rel") == "up":
            match = _CAPTURE_LINK.search(link.get("href", ""))
            if match:
                return match.group(1)
    return ""


def _order_id_from_links(resource: dict) -> str:
    for link in resource.get("links") or []:
        if link.get("rel") == "up":
            match = _ORDER_LINK.search(link.get("href", ""))
            if match:
                return match.group(1)
    return ""


def _capture(data: dict) -> PayPalCapture:
    money = data.get("amount") or {}
    return PayPalCapture(
        id=data.get("id", ""),
        status=data.get("status", ""),
        amount=parse_amount(money.get("value")),
        currency=money.get("currency_code", ""),
        status_reason=((data.get("status_details") or {}).get("reason") or ""),
    )


def _refund(data: dict) -> PayPalRefund:
    money = data.get("amount") or {}
    return PayPalRefund(
        id=data.get("id", ""),
        status=data.get("status", ""),
        amount=parse_amount(money.get("value")),
        currency=money.get("currency_code", ""),
        capture_id=_capture_id_from_links(data),
    )


def _failure(code: str, message: str) -> dict:
    """The ``raw`` of a failed payment made without the buyer: PayPal's word for why."""
    return {"code": code, "message": message}


def _short(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:10]
