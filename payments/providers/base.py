"""The one small interface every payment provider adapter implements.

An adapter speaks its provider's API and wire format and nothing else: it never touches our
database. It turns our order into a hosted checkout, verifies and parses a webhook into a
``NormalizedEvent``, asks the provider what became of a payment, refunds, and lists what
reconciliation compares (checkouts, refunds, disputes) as provider-neutral records.
Fulfilment, refunds of credits, disputes and reconciliation are handled once,
provider-neutrally, on top of these: a new provider is a new adapter, not new branches.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Generic, Protocol, TypeVar


class EventKind(StrEnum):
    """What a provider event means to us, whatever the provider called it."""

    PAYMENT_SUCCEEDED = "payment_succeeded"  # money is ours: fulfil
    PAYMENT_PENDING = "payment_pending"  # buyer finished, money not yet settled: wait
    PAYMENT_FAILED = "payment_failed"
    CHECKOUT_APPROVED = "checkout_approved"  # buyer approved, we still have to capture (PayPal)
    CHECKOUT_EXPIRED = "checkout_expired"
    CHECKOUT_CANCELLED = "checkout_cancelled"  # the buyer left the checkout (cancel, back)
    REFUNDED = "refunded"  # amount_refunded is cumulative for the payment
    REFUND_UPDATED = "refund_updated"  # one refund's status (refund_id, refund_status, amount)
    DISPUTE_OPENED = "dispute_opened"  # any open stage: inquiry, needs response, review, appeal
    DISPUTE_CLOSED = "dispute_closed"  # dispute_outcome: won, lost, prevented or withdrawn
    IGNORED = "ignored"  # a type we store but do not act on
    # Subscriptions: the subscription and invoice are read again from the provider.
    SUBSCRIPTION_INVOICE_PAID = "subscription_invoice_paid"  # a period (or proration) paid: grant
    SUBSCRIPTION_PAYMENT_FAILED = "subscription_payment_failed"  # a renewal failed: past due
    SUBSCRIPTION_UPDATED = "subscription_updated"  # plan, status or cancel-at-period-end changed
    SUBSCRIPTION_ENDED = "subscription_ended"


@dataclass(frozen=True)
class CheckoutSession:
    provider_order_id: str
    redirect_url: str


@dataclass(frozen=True)
class PaymentStatus:
    """What the provider says about the payment of one of our orders right now."""

    state: str  # "paid", "pending", "failed", "expired", "cancelled" (the buyer left), "open", "unknown"
    provider_order_id: str = ""
    provider_payment_id: str = ""
    amount: Decimal | None = None
    currency: str = ""
    raw: dict = field(default_factory=dict)

    @property
    def paid(self) -> bool:
        return self.state == "paid"


@dataclass(frozen=True)
class SavedMethod:
    """A payment method the buyer saved for later, off-session payments."""

    customer_id: str
    payment_method_id: str
    label: str  # what the user recognises it by: "Visa ending 4242"


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str
    status: str  # a Refund.Status value ("succeeded", "pending", "requires_action", "failed", "canceled")
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class NormalizedEvent:
    provider: str  # an Order.Provider value
    event_id: str
    type: str  # the provider's own event type
    kind: EventKind
    order_ref: str = (
        ""  # our order id as the provider echoes it back (client_reference_id, custom_id)
    )
    provider_order_id: str = ""
    provider_payment_id: str = ""
    amount: Decimal | None = None
    amount_refunded: Decimal | None = None  # cumulative, for REFUNDED
    currency: str = ""
    dispute_id: str = ""
    dispute_outcome: str = ""  # an Order.DisputeStatus other than open, for DISPUTE_CLOSED
    #: The provider's own word for the dispute (Stripe's status, PayPal's status and outcome
    #: code), kept for the record; an outcome the adapter has no rule for leaves
    #: ``dispute_outcome`` empty on a DISPUTE_CLOSED event and is flagged.
    dispute_stage: str = ""
    refund_id: str = ""  # for REFUND_UPDATED
    refund_status: str = ""  # a Refund.Status value, or the provider's unknown word
    subscription_id: str = ""  # the provider's subscription, for subscription events
    invoice_id: str = ""  # the provider's invoice of a subscription period
    raw: dict = field(default_factory=dict)


# --- what reconciliation reads: provider-neutral records ---------------------------------------


@dataclass(frozen=True)
class ProviderRefund:
    """One refund as the provider has it now."""

    id: str
    payment_id: str  # the payment it refunds, as ``Order.provider_payment_id`` stores it
    status: str  # a Refund.Status value, or the provider's own word when no rule maps it
    amount: Decimal | None
    currency: str


#: Refund statuses (``Refund.Status`` values) whose amount counts as refunded.
COUNTED_REFUND_STATUSES = frozenset({"pending", "requires_action", "succeeded"})


@dataclass(frozen=True)
class RefundState:
    """Every refund of one payment as the provider has it now, and what they add up to.

    Asked when a refund event is handled: events arrive late and out of order, so the
    provider's present word is applied, never the number an event carried.
    """

    payment_id: str
    refunds: tuple[ProviderRefund, ...] = ()
    #: The cumulative amount refunded or on its way (succeeded, pending, requires action),
    #: including money the provider took back without a refund of its own (a PayPal reversal).
    total: Decimal = Decimal("0")
    currency: str = ""


@dataclass(frozen=True)
class ProviderCheckout:
    """One checkout as the provider has it now (a Stripe Checkout Session, a PayPal order)."""

    id: str  # as ``Order.provider_order_id`` stores it
    status: PaymentStatus
    order_ref: str = ""  # our order id as the provider echoes it back
    #: The buyer approved the payment and nobody captured it yet: ours to capture.
    approved: bool = False
    #: Refunds the provider reports with the checkout (a PayPal order carries its captures').
    refunds: tuple[ProviderRefund, ...] = ()


@dataclass(frozen=True)
class ProviderDispute:
    """One dispute as the provider has it now."""

    id: str
    #: False: the provider does not know this dispute (any more); nothing else is set.
    known: bool = True
    payment_id: str = ""  # the disputed payment, as ``Order.provider_payment_id`` stores it
    order_ref: str = ""  # our order id, when the dispute carries it
    kind: EventKind = EventKind.DISPUTE_OPENED  # DISPUTE_OPENED or DISPUTE_CLOSED
    dispute_outcome: str = (
        ""  # for DISPUTE_CLOSED: an Order.DisputeStatus, empty when no rule knows it
    )
    dispute_stage: str = ""  # the provider's own word for where the dispute stands


@dataclass(frozen=True)
class ProviderSubscription:
    """One subscription as the provider has it now."""

    id: str
    status: str  # "incomplete", "active", "past_due", "canceled"
    plan_code: str = ""
    subscription_ref: str = ""  # our Subscription id as the provider echoes it back
    period_start: datetime | None = None
    period_end: datetime | None = None
    cancel_at_period_end: bool = False
    customer_id: str = ""  # the provider's customer (Stripe), for its billing portal


@dataclass(frozen=True)
class ProviderInvoice:
    """One subscription invoice as the provider has it now."""

    id: str
    subscription_id: str
    status: str  # "paid", "failed", "open"
    billing_reason: str  # "subscription_create", "subscription_cycle", "subscription_update"
    plan_code: str
    amount: Decimal
    currency: str
    period_start: datetime
    period_end: datetime
    payment_id: str = ""
    previous_plan_code: str = ""  # for an upgrade's proration: the plan before it


T = TypeVar("T")


@dataclass(frozen=True)
class Listing(Generic[T]):
    """Records read from a provider, and how many of what were read (for the run's counts)."""

    items: list[T] = field(default_factory=list)
    counts: Mapping[str, int] = field(default_factory=dict)


class PaymentProvider(Protocol):
    name: str  # an Order.Provider value
    #: A PENDING order whose checkout the provider no longer knows, this long after it was
    #: made, was never paid: reconciliation closes it (None: never concluded from absence).
    checkout_lifetime: timedelta | None

    def create_checkout(self, *, order, success_url: str, cancel_url: str) -> CheckoutSession:
        """Open a hosted checkout for ``order`` (idempotent per order). Raises ProviderError."""

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        """Verify the signature on the raw ``body`` and parse it. Raises WebhookRejected."""

    def fetch_payment_status(self, *, order) -> PaymentStatus:
        """Ask the provider what became of ``order``'s payment. Raises ProviderError."""

    def refund(
        self, *, order, amount: Decimal, idempotency_key: str, reason: str = ""
    ) -> RefundResult:
        """Refund ``amount`` of ``order``'s payment, once per ``idempotency_key``. Raises ProviderError."""

    def refund_state(self, *, order, payment_id: str = "") -> RefundState:
        """Every refund of ``order``'s payment (``payment_id`` when the order has none stored
        yet) as the provider has it now. Raises ProviderError."""

    # Reconciliation reads (no writes; any failure raises ProviderError and the run drops
    # everything read from this provider). A provider with nothing to list returns an
    # empty Listing.

    def recent_checkouts(self, *, since: datetime, orders: Sequence) -> Listing[ProviderCheckout]:
        """The checkouts created since ``since``, and those of ``orders`` (our recent orders
        with this provider) however old. A checkout the provider does not know is left out."""

    def recent_refunds(
        self, *, since: datetime, payment_ids: Sequence[str]
    ) -> Listing[ProviderRefund]:
        """Every refund of each payment refunded since ``since`` and of each of ``payment_ids``
        (refunds we counted before the provider completed them), all of them, so a
        payment's refunded total is cumulative."""

    def disputes(self, *, since: datetime, open_ids: Sequence[str]) -> Listing[ProviderDispute]:
        """Disputes opened since ``since``, and those of ``open_ids`` (held open here) however old."""


def refund_state_of(
    payment_id: str, refunds: Sequence[ProviderRefund], *, taken_back: Decimal | None = None
) -> RefundState:
    """The RefundState of ``refunds``: their counted amounts added up, or ``taken_back`` (the
    whole payment, for a provider that took it back without a refund) when that is more."""
    total = sum(
        (r.amount or Decimal("0") for r in refunds if r.status in COUNTED_REFUND_STATUSES),
        Decimal("0"),
    )
    if taken_back is not None and taken_back > total:
        total = taken_back
    currencies = {r.currency.upper() for r in refunds if r.currency}
    return RefundState(
        payment_id=payment_id,
        refunds=tuple(refunds),
        total=total,
        currency=currencies.pop() if len(currencies) == 1 else "",
    )
