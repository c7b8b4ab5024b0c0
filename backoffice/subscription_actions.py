"""Staff actions on memberships: end a subscription now, refund a paid period.

Each calls the payments service that owns the rule and writes one staff action row (who,
what, why, and how it ended, refusals included). No payment logic lives here.
"""

from core.audit import AuditAction
from payments.exceptions import PaymentsError
from payments.models import Subscription, SubscriptionPeriod
from payments.subscriptions import subscription_end_now, subscription_period_refund

from .audit import staff_action_record
from .exceptions import PermissionMissing

CANCEL_PERMISSION = "payments.cancel_subscription"
REFUND_PERMISSION = "payments.refund_order"


def staff_subscription_cancel(
    *, subscription: Subscription, reason: str, staff_user
) -> Subscription:
    """End ``subscription`` at once at its provider (no refund: refund a period for that)."""
    details = {"subscription_id": subscription.pk, "provider": subscription.provider}
    try:
        if not staff_user.has_perm(CANCEL_PERMISSION):
            raise PermissionMissing(f"{staff_user} may not cancel subscriptions.")
        done = subscription_end_now(subscription=subscription)
    except PaymentsError as exc:
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_SUBSCRIPTION_CANCEL,
            reason=reason,
            user=subscription.user_id,
            success=False,
            error=f"{type(exc).__name__}: {exc}",
            details=details,
        )
        raise
    staff_action_record(
        actor=staff_user,
        action=AuditAction.STAFF_SUBSCRIPTION_CANCEL,
        reason=reason,
        user=subscription.user_id,
        details={**details, "status": done.status},
    )
    return done


def staff_period_refund(
    *, period: SubscriptionPeriod, reason: str, staff_user, idempotency_key: str
) -> SubscriptionPeriod:
    """Refund a paid period in full (provider refund, then its credits taken back), the
    staff row written in the transaction that records it."""
    user_id = period.subscription.user_id
    details = {
        "period_id": period.pk,
        "invoice": period.invoice_number,
        "amount": str(period.amount),
        "currency": period.currency,
        "idempotency_key": idempotency_key,
    }

    def audit(done: SubscriptionPeriod) -> None:
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_PERIOD_REFUND,
            reason=reason,
            user=user_id,
            details={
                **details,
                "credits_clawed_back": done.credits_clawed_back,
                "credits_unrecovered": done.credits_unrecovered,
            },
        )

    try:
        if not staff_user.has_perm(REFUND_PERMISSION):
            raise PermissionMissing(f"{staff_user} may not refund payments.")
        return subscription_period_refund(
            period=period, reason=reason, idempotency_key=idempotency_key, audit=audit
        )
    except PaymentsError as exc:
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_PERIOD_REFUND,
            reason=reason,
            user=user_id,
            success=False,
            error=f"{type(exc).__name__}: {exc}",
            details=details,
        )
        raise
