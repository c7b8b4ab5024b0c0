"""The one small interface every payment provider adapter implements.

An adapter speaks its provider's API and wire format and nothing else: it never touches our
database. It turns our order into a hosted checkout, verifies and parses a webhook into a
``NormalizedEvent``, asks the provider what became of a payment, and refunds. Fulfilment,
refunds of credits and disputes are handled once, provider-neutrally, on top of these.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Mapping, Protocol


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


@dataclass(frozen=True)
class CheckoutSession:
    provider_order_id: str
    redirect_url: str


@dataclass(frozen=True)
class PaymentStatus:
    """What the provider says about the payment of one of our orders right now."""

    state: str  # "paid", "pending", "failed", "expired", "open", "unknown"
    provider_order_id: str = ""
    provider_payment_id: str = ""
    amount: Decimal | None = None
    currency: str = ""
    raw: dict = field(default_factory=dict)

    @property
    def paid(self) -> bool:
        return self.state == "paid"


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
    order_ref: str = ""  # our order id as the provider echoes it back (client_reference_id, custom_id)
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
    raw: dict = field(default_factory=dict)


class PaymentProvider(Protocol):
    name: str  # an Order.Provider value

    def create_checkout(self, *, order, success_url: str, cancel_url: str) -> CheckoutSession:
        """Open a hosted checkout for ``order`` (idempotent per order). Raises ProviderError."""

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        """Verify the signature on the raw ``body`` and parse it. Raises WebhookRejected."""

    def fetch_payment_status(self, *, order) -> PaymentStatus:
        """Ask the provider what became of ``order``'s payment. Raises ProviderError."""

    def refund(self, *, order, amount: Decimal, idempotency_key: str, reason: str = "") -> RefundResult:
        """Refund ``amount`` of ``order``'s payment, once per ``idempotency_key``. Raises ProviderError."""
