"""What each kind of provider event does, provider-neutrally: the explicit dispatch table.

A handler runs inside the processing task's transaction, with the event row locked. It
gets the normalised event, the order it names (or None) and, for events where the state
of the payment matters, what the provider says about it now (asked before the transaction
opened). It calls one service and says how the event ended.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .disputes import CLOSED, order_close_dispute, order_open_dispute
from .exceptions import OrderNotFound, OrderNotReady, PaymentNotConfirmed, UnknownProviderStatus
from .fulfilment import fulfil_order, order_mark_unpaid
from .models import Order, WebhookEvent
from .providers.base import EventKind, NormalizedEvent, PaymentStatus, RefundState
from .refunds import order_sync_refunds
from .subscriptions import period_for_payment, subscription_apply, subscription_period_refunded


@dataclass(frozen=True)
class Outcome:
    status: str  # WebhookEvent.Status.PROCESSED or IGNORED
    note: str = ""


PROCESSED, IGNORED = WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED


def _source(event: NormalizedEvent) -> str:
    return f"webhook:{event.provider}:{event.event_id}"


def _fulfil_if_paid(event: NormalizedEvent, order: Order, status: PaymentStatus | None) -> bool:
    """Fulfil when the provider says paid; True when the order is (now) fulfilled."""
    if order.is_fulfilled:
        return True
    if status is not None and status.paid:
        fulfil_order(order_id=order.pk, status=status, source=_source(event))
        return True
    return False


def handle_payment_succeeded(*, event, order, status, refunds=None) -> Outcome:
    if order is None:
        return Outcome(IGNORED, "names no order of ours")
    if order.is_fulfilled:
        return Outcome(PROCESSED, "already fulfilled")
    if not _fulfil_if_paid(event, order, status):
        # The event says paid but the provider does not (yet): ask again later.
        raise PaymentNotConfirmed(
            f"The provider does not report order #{order.pk} paid yet "
            f"({status.state if status else 'no status'})."
        )
    return Outcome(PROCESSED, "fulfilled")


def handle_payment_pending(*, event, order, status, refunds=None) -> Outcome:
    if order is None:
        return Outcome(IGNORED, "names no order of ours")
    if _fulfil_if_paid(event, order, status):
        return Outcome(PROCESSED, "fulfilled")
    return Outcome(PROCESSED, "payment not settled yet; waiting for the provider")


def _unpaid_ending(to: str):
    def handle(*, event, order, status, refunds=None) -> Outcome:
        if order is None:
            return Outcome(IGNORED, "names no order of ours")
        if _fulfil_if_paid(event, order, status):
            return Outcome(PROCESSED, "the provider says paid after all: fulfilled")
        order_mark_unpaid(order_id=order.pk, to=to, source=_source(event))
        return Outcome(PROCESSED, to.lower())

    handle.__name__ = f"handle_{to.lower()}"
    return handle


def handle_refunded(*, event, order, status, refunds=None) -> Outcome:
    """A payment was refunded (in part): the provider's refunds as they stand now are applied,
    not the event's cumulative number, which may be older than a refund that failed since."""
    if order is None:
        period = period_for_payment(
            provider_name=event.provider, payment_id=event.provider_payment_id
        )
        if period is not None and event.amount_refunded is not None:
            # A membership period's payment: the event's cumulative total, never lowered.
            done = subscription_period_refunded(
                period_id=period.pk, total_refunded=event.amount_refunded, source=_source(event)
            )
            return Outcome(PROCESSED, f"{done.invoice_number}: {done.amount_refunded} refunded")
        raise OrderNotFound("A refund for a payment we cannot match to an order (yet).")
    _fulfil_if_paid(event, order, status)
    done = _sync_refunds(event, order, refunds)
    return Outcome(PROCESSED, f"{done.amount_refunded} {done.currency} refunded in all")


def _sync_refunds(event: NormalizedEvent, order: Order, refunds: RefundState | None) -> Order:
    if refunds is None:
        raise OrderNotReady(f"The provider's refunds of order #{order.pk} were not read.")
    return order_sync_refunds(order_id=order.pk, state=refunds, source=_source(event))


def handle_dispute_opened(*, event, order, status, refunds=None) -> Outcome:
    if order is None and period_for_payment(
        provider_name=event.provider, payment_id=event.provider_payment_id
    ):
        # A membership period's payment: nothing is frozen; a lost dispute takes its credits.
        return Outcome(PROCESSED, f"dispute open ({event.dispute_stage}) on a membership period")
    if order is None:
        raise OrderNotFound("A dispute on a payment we cannot match to an order (yet).")
    _fulfil_if_paid(event, order, status)
    order_open_dispute(order_id=order.pk, dispute_id=event.dispute_id, source=_source(event))
    return Outcome(PROCESSED, f"dispute open ({event.dispute_stage}): spending frozen")


def handle_dispute_closed(*, event, order, status, refunds=None) -> Outcome:
    if event.dispute_outcome not in CLOSED:
        # A status or outcome the adapter has no rule for: left FAILED with the reason for
        # staff (spending stays as it is; nothing is guessed).
        raise UnknownProviderStatus(
            f"Dispute {event.dispute_id} is {event.dispute_stage or '(no status)'!r}: "
            f"no rule says whether it is open, won or lost. Nothing was changed.",
            provider=event.provider,
        )
    if order is None:
        period = period_for_payment(
            provider_name=event.provider, payment_id=event.provider_payment_id
        )
        if period is not None:
            if event.dispute_outcome == Order.DisputeStatus.LOST:
                subscription_period_refunded(
                    period_id=period.pk, total_refunded=period.amount, source=_source(event)
                )
            return Outcome(PROCESSED, f"{period.invoice_number}: dispute {event.dispute_outcome}")
        raise OrderNotFound("A dispute on a payment we cannot match to an order (yet).")
    _fulfil_if_paid(event, order, status)
    order_close_dispute(
        order_id=order.pk,
        dispute_id=event.dispute_id,
        outcome=event.dispute_outcome,
        source=_source(event),
    )
    return Outcome(PROCESSED, f"dispute {event.dispute_outcome} ({event.dispute_stage})")


def handle_refund_updated(*, event, order, status, refunds=None) -> Outcome:
    """One refund's status changed (Stripe ``refund.*``): the payment's refunds as the provider
    has them now are applied (a failed or canceled one is undone)."""
    if order is None:
        raise OrderNotFound("A refund of a payment we cannot match to an order (yet).")
    if refunds is not None and event.refund_id not in {r.id for r in refunds.refunds}:
        raise OrderNotReady(
            f"The provider does not list refund {event.refund_id} of order #{order.pk} yet."
        )
    _sync_refunds(event, order, refunds)
    current = next((r.status for r in refunds.refunds if r.id == event.refund_id), "")
    return Outcome(PROCESSED, f"refund {event.refund_id} {current}")


def handle_subscription_event(*, event, order, status, refunds=None, facts=None) -> Outcome:
    """Any subscription event: the subscription (and invoice) as the provider has them now
    are applied, whatever the event said; a paid invoice is recorded and granted once."""
    if facts is None:
        raise OrderNotReady(f"The provider's subscription {event.subscription_id} was not read.")
    note = subscription_apply(
        provider_name=event.provider,
        facts=facts,
        source=_source(event),
        payment_failed=event.kind == EventKind.SUBSCRIPTION_PAYMENT_FAILED,
    )
    return Outcome(PROCESSED, note)


def handle_ignored(*, event, order, status, refunds=None) -> Outcome:
    return Outcome(IGNORED, f"{event.type} is not acted on")


Handler = Callable[..., Outcome]

HANDLERS: dict[EventKind, Handler] = {
    EventKind.PAYMENT_SUCCEEDED: handle_payment_succeeded,
    # The buyer approved (PayPal): fetching the status captured the payment when it could.
    EventKind.CHECKOUT_APPROVED: handle_payment_pending,
    EventKind.PAYMENT_PENDING: handle_payment_pending,
    EventKind.PAYMENT_FAILED: _unpaid_ending(Order.Status.FAILED),
    EventKind.CHECKOUT_EXPIRED: _unpaid_ending(Order.Status.EXPIRED),
    EventKind.CHECKOUT_CANCELLED: _unpaid_ending(Order.Status.CANCELLED),
    EventKind.REFUNDED: handle_refunded,
    EventKind.REFUND_UPDATED: handle_refund_updated,
    EventKind.DISPUTE_OPENED: handle_dispute_opened,
    EventKind.DISPUTE_CLOSED: handle_dispute_closed,
    EventKind.IGNORED: handle_ignored,
    EventKind.SUBSCRIPTION_INVOICE_PAID: handle_subscription_event,
    EventKind.SUBSCRIPTION_PAYMENT_FAILED: handle_subscription_event,
    EventKind.SUBSCRIPTION_UPDATED: handle_subscription_event,
    EventKind.SUBSCRIPTION_ENDED: handle_subscription_event,
}

#: Kinds about a subscription: the task reads the subscription (and invoice) first.
SUBSCRIPTION_KINDS = frozenset(
    {
        EventKind.SUBSCRIPTION_INVOICE_PAID,
        EventKind.SUBSCRIPTION_PAYMENT_FAILED,
        EventKind.SUBSCRIPTION_UPDATED,
        EventKind.SUBSCRIPTION_ENDED,
    }
)

#: Kinds that concern an order: the task finds the order and asks the provider about it.
ORDER_KINDS = frozenset(HANDLERS) - {EventKind.IGNORED} - SUBSCRIPTION_KINDS
#: Kinds for which the task also reads every refund of the payment from the provider.
REFUND_KINDS = frozenset({EventKind.REFUNDED, EventKind.REFUND_UPDATED})
