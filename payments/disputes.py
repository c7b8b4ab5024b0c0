"""Disputes (chargebacks): freeze spending while open, take the credits back when lost.

Opening a dispute (any open stage: an inquiry, a chargeback awaiting evidence or review, an
appeal) places a spending hold on the buyer and marks the order DISPUTED; the credits stay.
A dispute closing as won, prevented or withdrawn releases the hold and the order returns
to what its refunds say. A lost dispute takes back all of the order's credits not already
taken back (never below a zero balance; the rest is recorded as unrecovered, as for
refunds), releases the hold and leaves the order REFUNDED. Events may arrive twice or in
any order: a close seen before its open places and releases the hold itself, and the late
open is then ignored. The buyer is emailed when a dispute opens and when it closes (once
each, in the transaction that records it). A decided dispute reported later with another outcome (an appeal
won after a loss) is not acted on: ``DisputeOutcomeChanged`` flags it for staff.
"""

import logging

from django.db import transaction

from credits.services import spending_hold, spending_release
from notices.services import email_queue

from .exceptions import DisputeOutcomeChanged, OrderNotReady
from .invoices import invoice_sync_status
from .models import Order
from .refunds import claw_back_to, refund_status
from .templatetags.money import money
from .transitions import order_transition

logger = logging.getLogger(__name__)

D = Order.DisputeStatus
#: Outcomes that end a dispute, and those of them that leave the buyer their credits.
CLOSED = frozenset({D.WON, D.LOST, D.PREVENTED, D.WITHDRAWN})
RELEASED = frozenset({D.WON, D.PREVENTED, D.WITHDRAWN})


def _hold_key(order: Order, dispute_id: str) -> str:
    return f"dispute:{order.provider}:{dispute_id}:hold"


def _lock(order_id: int) -> Order:
    return Order.objects.select_for_update(of=("self",)).select_related("user").get(pk=order_id)


def _closed_already(order: Order, dispute_id: str) -> bool:
    return order.dispute_id == dispute_id and order.dispute_status in CLOSED


def order_open_dispute(*, order_id: int, dispute_id: str, source: str) -> Order:
    """A dispute was opened on the order's payment: freeze the buyer's spending."""
    with transaction.atomic():
        order = _lock(order_id)
        if _closed_already(order, dispute_id):
            return order
        if not order.is_fulfilled:
            raise OrderNotReady(
                f"Dispute {dispute_id} on order #{order.pk}, whose payment is not fulfilled yet."
            )
        spending_hold(
            user=order.user,
            reason=f"Payment dispute {dispute_id} on order #{order.pk}",
            idempotency_key=_hold_key(order, dispute_id),
        )
        order.dispute_id, order.dispute_status = dispute_id, D.OPEN
        order_transition(order=order, to=Order.Status.DISPUTED, save=False)
        order.save()
        dispute_email_queue(order=order, dispute_id=dispute_id, outcome=D.OPEN)
        logger.warning(
            "order %s disputed (%s, %s): spending frozen for user %s",
            order.pk,
            dispute_id,
            source,
            order.user_id,
        )
    return order


def order_close_dispute(*, order_id: int, dispute_id: str, outcome: str, source: str) -> Order:
    """A dispute closed: ``outcome`` won, prevented or withdrawn restores spending; lost takes
    the credits back. Raises DisputeOutcomeChanged when the dispute was closed with another
    outcome before (nothing is changed)."""
    if outcome not in CLOSED:
        raise ValueError(f"A dispute closes as {', '.join(sorted(CLOSED))}, not {outcome!r}.")
    with transaction.atomic():
        order = _lock(order_id)
        if _closed_already(order, dispute_id):
            if order.dispute_status != outcome:
                raise DisputeOutcomeChanged(
                    f"Dispute {dispute_id} on order #{order.pk} was recorded {order.dispute_status}; the provider "
                    f"now says {outcome}. Nothing was changed: staff decide."
                )
            return order
        if not order.is_fulfilled:
            raise OrderNotReady(
                f"Dispute {dispute_id} closed on order #{order.pk}, whose payment is not fulfilled yet."
            )
        # The open event may not have arrived: hold first (a no-op when it did), then release.
        spending_hold(
            user=order.user,
            reason=f"Payment dispute {dispute_id} on order #{order.pk}",
            idempotency_key=_hold_key(order, dispute_id),
        )
        if outcome == D.LOST:
            claw_back_to(
                order=order,
                target=order.credits,
                key=f"order:{order.pk}:dispute-lost:{dispute_id}",
                reason=f"Dispute {dispute_id} lost on order #{order.pk}",
            )
        spending_release(
            user=order.user,
            reason=f"Payment dispute {dispute_id} {outcome}",
            idempotency_key=f"dispute:{order.provider}:{dispute_id}:release",
        )
        order.dispute_id, order.dispute_status = dispute_id, outcome
        if order.status != Order.Status.DISPUTED:
            order_transition(order=order, to=Order.Status.DISPUTED, save=False)
        final = Order.Status.REFUNDED if outcome == D.LOST else refund_status(order)
        order_transition(order=order, to=final, save=False)
        order.save()
        invoice_sync_status(order=order)
        dispute_email_queue(order=order, dispute_id=dispute_id, outcome=outcome)
        logger.warning("order %s dispute %s %s (%s)", order.pk, dispute_id, outcome, source)
    return order


#: What the buyer is told when a dispute closes, by outcome.
OUTCOME_TEXT = {
    D.WON: ("won", "The payment stands and your credits stay yours; spending is possible again."),
    D.PREVENTED: (
        "resolved",
        "The payment stands and your credits stay yours; spending is possible again.",
    ),
    D.WITHDRAWN: (
        "withdrawn",
        "The dispute was withdrawn: the payment stands and spending is possible again.",
    ),
    D.LOST: (
        "refunded to you by your bank",
        "The payment went back to you through your bank, so the order's credits were taken back.",
    ),
}


def dispute_email_queue(*, order: Order, dispute_id: str, outcome: str) -> None:
    """Tell the buyer a dispute opened or how it closed (in the dispute's transaction), once
    per dispute and outcome."""
    context = {
        "order_id": order.pk,
        "amount_display": money(order.amount, order.currency),
    }
    key = f"{order.provider.lower()}:{dispute_id}"
    if outcome == D.OPEN:
        email_queue(user=order.user, kind="dispute_opened", key=key, context=context)
        return
    word, text = OUTCOME_TEXT[outcome]
    email_queue(
        user=order.user,
        kind="dispute_closed",
        key=f"{key}:{outcome}",
        context={**context, "outcome": word, "outcome_text": text},
    )
