"""Staff actions on payments: refund an order, replay a webhook event.

Each calls the payments service that owns the rule and writes one staff action row (who,
what, why, and how it ended, refusals included). No payment logic lives here.
"""

from decimal import Decimal

from django.db import transaction

from core.audit import AuditAction
from payments.exceptions import PaymentsError
from payments.models import Order, Refund, WebhookEvent
from payments.refunds import order_refund
from payments.webhooks import DONE, webhook_replay

from .audit import staff_action_record
from .exceptions import BackofficeError, PermissionMissing

REFUND_PERMISSION = "payments.refund_order"
#: Replaying queues the event again: it may change its processing state, so it takes the
#: permission to change webhook events (the admin itself never edits them).
REPLAY_PERMISSION = "payments.change_webhookevent"


def staff_order_refund(
    *, order: Order, amount: Decimal | None, reason: str, staff_user, idempotency_key: str
) -> tuple[Order, Refund | None]:
    """Refund ``amount`` of ``order`` (None: all that is left) through ``order_refund``.

    Outside any transaction (the provider is called). The same ``idempotency_key`` refunds
    once: a repeat returns the order as the first call left it. A ProviderError or a
    RefundNotAllowed changes nothing and is recorded as a refused staff action. The row of a
    done refund is written in the transaction that records the refund and takes back credits.
    """
    reason = (reason or "").strip()
    earlier = Refund.objects.filter(idempotency_key=idempotency_key).first()
    if amount is None:
        amount = earlier.amount if earlier else Order.objects.get(pk=order.pk).amount_refundable
    details = {
        "order_id": order.pk,
        "amount": str(amount),
        "currency": order.currency,
        "idempotency_key": idempotency_key,
    }

    def audit(done: Order, refund: Refund) -> None:
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_ORDER_REFUND,
            reason=reason,
            user=order.user_id,
            details={
                **details,
                "refund_id": refund.pk,
                "provider_refund_id": refund.provider_refund_id,
                "order_status": done.status,
                "amount_refunded": str(done.amount_refunded),
                "credits_clawed_back": done.credits_clawed_back,
                "credits_unrecovered": done.credits_unrecovered,
            },
        )

    try:
        done = order_refund(
            order=order,
            amount=amount,
            reason=reason,
            staff_user=staff_user,
            idempotency_key=idempotency_key,
            audit=audit,
        )
    except PaymentsError as exc:
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_ORDER_REFUND,
            reason=reason,
            user=order.user_id,
            success=False,
            error=f"{type(exc).__name__}: {exc}",
            details=details,
        )
        raise
    return done, Refund.objects.filter(idempotency_key=idempotency_key).first()


def staff_webhook_replay(*, event: WebhookEvent, reason: str, staff_user) -> WebhookEvent:
    """Queue a stored, verified event for processing again (a FAILED one with fresh attempts).

    An event already processed or ignored is refused: processing it again would change
    nothing (the pipeline handles each event once).
    """
    reason = (reason or "").strip()
    details = {
        "webhook_event_id": event.pk,
        "provider": event.provider,
        "event_id": event.event_id,
        "type": event.type,
    }
    try:
        if (
            staff_user is None
            or not staff_user.is_staff
            or not staff_user.has_perm(REPLAY_PERMISSION)
        ):
            raise PermissionMissing(f"{staff_user} may not replay webhook events.")
        if not reason:
            raise BackofficeError("A replay needs a reason.")
        with transaction.atomic(durable=True):
            row = WebhookEvent.objects.select_for_update().get(pk=event.pk)
            if not row.signature_valid:
                raise BackofficeError(
                    f"Event {row.event_id} was never verified; it cannot be replayed."
                )
            if row.status in DONE:
                raise BackofficeError(
                    f"Event {row.event_id} is already {row.get_status_display().lower()}; replaying it would change nothing."
                )
            previous = row.status
            webhook_replay(event_pk=row.pk)
            staff_action_record(
                actor=staff_user,
                action=AuditAction.STAFF_WEBHOOK_REPLAY,
                reason=reason,
                user=row.order.user_id if row.order_id else None,
                details={**details, "previous_status": previous, "attempts": row.attempts},
            )
    except BackofficeError as exc:
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_WEBHOOK_REPLAY,
            reason=reason,
            success=False,
            error=f"{type(exc).__name__}: {exc}",
            details=details,
        )
        raise
    return WebhookEvent.objects.get(pk=event.pk)
