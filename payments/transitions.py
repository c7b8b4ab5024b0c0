"""The order state machine: the only way an order's status changes.

Callers hold the order's row lock (``select_for_update``) while they change it, so the
check and the write cannot interleave with another change of the same order.
"""

from .exceptions import InvalidTransition
from .models import Order

S = Order.Status

#: Where each status may go. Staying in the same status is always allowed (a no-op).
ALLOWED: dict[str, frozenset[str]] = {
    # The provider says paid (even after a failure or expiry we saw first): fulfil.
    S.PENDING: frozenset({S.COMPLETED, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.FAILED: frozenset({S.COMPLETED}),
    S.EXPIRED: frozenset({S.COMPLETED}),
    # The buyer pressed cancel (or back) on the provider's page, but may still pay there.
    S.CANCELLED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED}),
    # A refund that fails or is canceled at the provider after we counted it goes back.
    S.PARTIALLY_REFUNDED: frozenset({S.REFUNDED, S.DISPUTED, S.COMPLETED}),
    # A closed dispute goes back to what the refunds say (won) or to REFUNDED (lost).
    S.DISPUTED: frozenset({S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    # A bank may still open a dispute on a refunded payment; a refund that fails goes back.
    S.REFUNDED: frozenset({S.DISPUTED, S.COMPLETED, S.PARTIALLY_REFUNDED}),
}

#: How a checkout ends without a payment; a payment the provider reports later still fulfils.
UNPAID_ENDINGS = frozenset({S.FAILED, S.EXPIRED, S.CANCELLED})

#: Statuses in which the order's credits have been granted.
FULFILLED = frozenset({S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED})


def can_transition(current: str, target: str) -> bool:
    return current == target or target in ALLOWED.get(current, frozenset())


def order_transition(*, order: Order, to: str, save: bool = True) -> Order:
    """Move ``order`` to status ``to`` along ``ALLOWED``; raise InvalidTransition otherwise.

    With ``save`` the status (and ``updated_at``) is written at once; callers that change
    more fields in the same unit of work pass ``save=False`` and save once.
    """
    if not can_transition(order.status, to):
        raise InvalidTransition(order_id=order.pk, current=order.status, target=to)
    if order.status != to:
        order.status = to
        if save:
            order.save(update_fields=["status", "updated_at"])
    return order
