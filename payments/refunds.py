"""Refunds: giving money back and taking the matching credits back.

Policy. A refund takes back credits in proportion to the money refunded, counted on the
cumulative refunded amount (so several partial refunds never round twice):
``credits x refunded / paid``, rounded half up; a full refund takes all the order's
credits. Credits are taken from the balance as it stands. When the user has already spent
some, the balance goes to zero, never below: what could not be taken back is recorded on
the order as ``credits_unrecovered`` (and on the clawback ledger entry) for staff to see.
It is not taken from later purchases.

Provider-reported refunds (webhooks) are not trusted for their numbers: events arrive late,
twice and out of order, so a refund event only says "look again". The provider is asked for
every refund of the payment as it stands now (outside any transaction) and
``order_sync_refunds`` applies that: failed or canceled refunds are undone through the one
reversal path, the others recorded, and the total applied. Staff refunds go through
``order_refund``, which asks the provider first (outside any transaction) and applies the
result only when the provider agreed.

A refund the provider accepted but has not completed (Stripe's ``pending`` and
``requires_action``) counts as refunded at once: its credits are taken back while the
money is on its way, so a buyer never holds both. When such a refund later fails or is
canceled (``refund.failed`` / ``refund.updated``, or reconciliation), ``order_refund_status``
gives exactly those credits back (keyed by the refund's id, so only once) and lowers the
order's refunded amount.
"""

import logging
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Sum

from credits.models import LedgerKind
from credits.services import credits_clawback, credits_grant

from .exceptions import PaymentMismatch, ProviderError, RefundNotAllowed, UnknownProviderStatus
from .guards import assert_no_transaction
from .invoices import invoice_sync_status
from .ledger import order_source
from .models import Order, Refund
from .providers import get_provider
from .providers.base import RefundResult, RefundState
from .transitions import order_transition

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
REFUNDABLE = (Order.Status.COMPLETED, Order.Status.PARTIALLY_REFUNDED)
RS = Refund.Status
#: Refund statuses whose amount counts as refunded, and those that undo a refund for good.
COUNTED = frozenset({RS.PENDING, RS.REQUIRES_ACTION, RS.SUCCEEDED})
REVERSED = frozenset({RS.FAILED, RS.CANCELED})


def credits_for_refund(*, order: Order, refunded: Decimal) -> int:
    """How many of the order's credits a cumulative refund of ``refunded`` takes back."""
    if refunded <= 0:
        return 0
    if refunded >= order.amount:
        return order.credits
    share = Decimal(order.credits) * refunded / order.amount
    return min(order.credits, int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def refund_status(order: Order) -> str:
    """The status an order's refunds give it (outside a dispute)."""
    if order.amount_refunded >= order.amount:
        return Order.Status.REFUNDED
    if order.amount_refunded > 0:
        return Order.Status.PARTIALLY_REFUNDED
    return Order.Status.COMPLETED


def claw_back_to(*, order: Order, target: int, key: str, reason: str, created_by=None) -> None:
    """Take back credits until ``target`` of the order's credits are accounted for.

    Accounted means taken back or recorded as unrecoverable; the counters on ``order`` are
    updated (the caller saves). Call with the order's row lock held.
    """
    missing = target - (order.credits_clawed_back + order.credits_unrecovered)
    if missing <= 0:
        return
    result = credits_clawback(
        user=order.user,
        amount=missing,
        idempotency_key=key,
        reason=reason,
        source=order_source(order),
        metadata={"order_id": order.pk, "target": target},
        created_by=created_by,
    )
    order.credits_clawed_back += result.recovered
    order.credits_unrecovered += result.unrecovered
    if result.unrecovered:
        logger.warning(
            "order %s: %s credits could not be taken back (already spent); recorded as unrecovered",
            order.pk,
            result.unrecovered,
        )


def apply_refunded_total(*, order: Order, total: Decimal, source: str, created_by=None) -> Order:
    """Bring ``order`` (locked by the caller) up to a cumulative refunded amount of ``total``.

    Amounts only ever grow (events arrive out of order; a smaller total is old news). On an
    order whose payment we have not seen yet the amount is only recorded: fulfilment
    applies it right after granting the credits.
    """
    if total > order.amount:
        logger.error(
            "order %s: provider reports %s refunded of %s; capped", order.pk, total, order.amount
        )
        total = order.amount
    if total > order.amount_refunded:
        order.amount_refunded = total
    if order.is_fulfilled:
        target = credits_for_refund(order=order, refunded=order.amount_refunded)
        # After a refund was reversed (credits given back), taking back to the same target
        # again is a new movement: the key counts the reversals so far.
        reversals = Refund.objects.filter(order=order, status__in=REVERSED).count()
        claw_back_to(
            order=order,
            target=target,
            key=f"order:{order.pk}:refund-clawback:{target}"
            + (f":after-{reversals}" if reversals else ""),
            reason=f"Refund of {order.amount_refunded} {order.currency} on order #{order.pk}",
            created_by=created_by,
        )
        if order.status != Order.Status.DISPUTED:
            order_transition(order=order, to=refund_status(order), save=False)
    order.save()
    if order.is_fulfilled:
        invoice_sync_status(order=order)
    logger.info(
        "order %s: %s %s refunded in all (%s)",
        order.pk,
        order.amount_refunded,
        order.currency,
        source,
    )
    return order


def order_sync_refunds(*, order_id: int, state: RefundState, source: str) -> Order:
    """Bring the order's refunds to what the provider says about them now (``state``, asked
    outside any transaction, newer than any event that prompted it).

    Refunds that failed or were canceled are undone first, each once, through the reversal
    path (``order_refund_status``); the others are recorded as ``Refund`` rows (a row counted
    is a refund whose amount the order's refunded amount holds); then the order is brought
    up to the counted total. The total never goes down here: only a reversal lowers it, so
    credits are given back exactly once. A refund we recorded as reversed stays reversed,
    even when a state read before the reversal arrives after it. A status no rule knows
    raises UnknownProviderStatus and changes nothing.
    """
    unknown = [r for r in state.refunds if r.status not in RS.values]
    if unknown:
        raise UnknownProviderStatus(
            f"Refund {unknown[0].id} of order #{order_id} is {unknown[0].status!r}, a status "
            f"with no rule here: nothing was changed.",
            code="UNKNOWN_REFUND_STATUS",
        )
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",)).select_related("user").get(pk=order_id)
        )
        for refund in state.refunds:
            if refund.currency and refund.currency.upper() != order.currency.upper():
                raise PaymentMismatch(
                    f"Refund {refund.id} in {refund.currency} reported for order #{order.pk} "
                    f"in {order.currency}."
                )
        # Reversals before new rows: a refund never recorded here is judged applied or not
        # against the rows that were already counted.
        ordered = sorted(state.refunds, key=lambda r: r.status not in REVERSED)
        for refund in ordered:
            order_refund_status(
                order_id=order.pk,
                provider_refund_id=refund.id,
                status=refund.status,
                amount=refund.amount,
                currency=refund.currency,
                source=source,
            )
        reversed_here = set(
            Refund.objects.filter(order=order, status__in=REVERSED).values_list(
                "provider_refund_id", flat=True
            )
        )
        stale = sum(
            (
                r.amount or Decimal("0")
                for r in state.refunds
                if r.status in COUNTED and r.id in reversed_here
            ),
            Decimal("0"),
        )
        order = (
            Order.objects.select_for_update(of=("self",)).select_related("user").get(pk=order_id)
        )
        return apply_refunded_total(
            order=order, total=max(Decimal("0"), state.total - stale), source=source
        )


def order_refund(
    *,
    order: Order,
    amount: Decimal,
    reason: str,
    staff_user,
    idempotency_key: str,
    audit: Callable[[Order, Refund], object] | None = None,
) -> Order:
    """Refund ``amount`` of ``order`` to the buyer through its provider, then take back credits.

    For staff (permission ``payments.refund_order``). The provider is asked first, outside
    any transaction, with ``idempotency_key`` (so a retry after a timeout never refunds
    twice); its answer is then recorded and applied in one transaction. A ProviderError
    (or a RefundNotAllowed for a bad request) changes nothing. Calling again with the same
    key returns the order as that refund left it. ``audit`` is called with the order and the
    new refund inside the transaction that records it (not on a repeat).
    """
    amount = _validate(
        order=order,
        amount=amount,
        reason=reason,
        staff_user=staff_user,
        idempotency_key=idempotency_key,
    )
    assert_no_transaction("order_refund")

    done = Refund.objects.filter(idempotency_key=idempotency_key).first()
    if done is not None:
        if done.order_id != order.pk:
            raise RefundNotAllowed("This idempotency key was used for a refund of another order.")
        return Order.objects.get(pk=order.pk)

    order = Order.objects.get(pk=order.pk)
    if order.status not in REFUNDABLE:
        raise RefundNotAllowed(
            f"Only a completed order can be refunded; order #{order.pk} is "
            f"{order.get_status_display().lower()}."
        )
    if amount > order.amount_refundable:
        raise RefundNotAllowed(
            f"At most {order.amount_refundable} {order.currency} of order #{order.pk} "
            f"can still be refunded."
        )

    result = get_provider(order.provider).refund(
        order=order, amount=amount, idempotency_key=idempotency_key, reason=reason.strip()
    )
    if result.status in REVERSED:
        raise ProviderError(
            f"The provider did not refund order #{order.pk}: refund {result.provider_refund_id} "
            f"is {result.status}.",
            provider=order.provider,
        )
    if result.status not in COUNTED:
        raise UnknownProviderStatus(
            f"The provider answered refund {result.provider_refund_id or '(no id)'} of order #{order.pk} with "
            f"status {result.status!r}, which has no rule here: nothing was recorded; check it at the provider.",
            provider=order.provider,
        )
    return order_record_refund(
        order_id=order.pk,
        result=result,
        reason=reason.strip(),
        staff_user=staff_user,
        idempotency_key=idempotency_key,
        audit=audit,
    )


def closed_account_refund_key(order_id: int) -> str:
    return f"order:{order_id}:closed-account-refund"


#: Why a payment for a deleted account was given back (kept on its refund).
CLOSED_ACCOUNT_REASON = "Paid after the account was closed: refunded in full, no credits granted"


def order_refund_closed_account(*, order_id: int) -> Order:
    """Give back in full a payment that arrived after its buyer deleted the account.

    Fulfilment grants nothing for such an order and queues this (after its commit, outside
    any transaction). The provider is asked with a key of its own for the order, so a repeat
    (a duplicate webhook, reconciliation, a retry after a timeout) never refunds twice; the
    refund is recorded on the order with ``CLOSED_ACCOUNT_REASON``. An order that was
    fulfilled, belongs to an open account or has no payment yet is left alone. A
    ProviderError changes nothing: the next fulfilment attempt queues it again.
    """
    assert_no_transaction("order_refund_closed_account")
    key = closed_account_refund_key(order_id)
    order = Order.objects.select_related("user").get(pk=order_id)
    if Refund.objects.filter(idempotency_key=key).exists():
        return order
    if order.is_fulfilled or order.user.deleted_at is None or not order.provider_payment_id:
        logger.warning("order %s: not a paid order of a closed account; no refund", order.pk)
        return order
    result = get_provider(order.provider).refund(
        order=order, amount=order.amount, idempotency_key=key, reason=CLOSED_ACCOUNT_REASON
    )
    if result.status not in COUNTED:
        raise ProviderError(
            f"The provider did not refund order #{order.pk} of a closed account: refund "
            f"{result.provider_refund_id or '(no id)'} is {result.status!r}.",
            provider=order.provider,
        )
    logger.warning(
        "order %s paid after the account was closed: %s %s refunded (%s)",
        order.pk,
        order.amount,
        order.currency,
        result.provider_refund_id,
    )
    return order_record_refund(
        order_id=order.pk,
        result=result,
        reason=CLOSED_ACCOUNT_REASON,
        staff_user=None,
        idempotency_key=key,
    )


def order_record_refund(
    *,
    order_id: int,
    result: RefundResult,
    reason: str,
    staff_user,
    idempotency_key: str,
    audit: Callable[[Order, Refund], object] | None = None,
) -> Order:
    """Record a refund the provider made for us and apply it (idempotent per key).

    ``audit`` is called with the order as left and the refund, in the same transaction, when
    this call recorded the refund.
    """
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",)).select_related("user").get(pk=order_id)
        )
        reported = (
            Refund.objects.filter(provider_refund_id=result.provider_refund_id)
            .exclude(idempotency_key=idempotency_key)
            .first()
            if result.provider_refund_id
            else None
        )
        adopted = (
            reported is not None and reported.order_id == order.pk and reported.created_by is None
        )
        if adopted:
            # The provider's webhook told us of this refund first: it is ours, made by staff.
            reported.idempotency_key = idempotency_key
            reported.reason = reason[:255]
            reported.created_by = staff_user
            reported.save(update_fields=["idempotency_key", "reason", "created_by", "updated_at"])
        refund, created = Refund.objects.get_or_create(
            idempotency_key=idempotency_key,
            defaults={
                "order": order,
                "amount": result.amount,
                "currency": (result.currency or order.currency).upper(),
                "reason": reason[:255],
                "provider_refund_id": result.provider_refund_id,
                "status": result.status,
                "created_by": staff_user,
            },
        )
        ours = Refund.objects.filter(order=order, status__in=COUNTED).aggregate(
            total=Sum("amount")
        )["total"] or Decimal("0")
        done = apply_refunded_total(
            order=order,
            total=max(order.amount_refunded, ours),
            source=f"staff refund by user {staff_user.pk}" if staff_user else reason,
            created_by=staff_user,
        )
        if audit is not None and (created or adopted):
            audit(done, refund)
        return done


def order_refund_status(
    *,
    order_id: int,
    provider_refund_id: str,
    status: str,
    amount: Decimal | None,
    currency: str,
    source: str,
) -> Order:
    """Record what the provider now says about one refund of the order, and undo it if it
    failed or was canceled.

    The refund is kept as a ``Refund`` row (made here when the refund did not come from us).
    A refund reversed for the first time lowers the order's refunded amount by its amount
    and gives back the credits the lower total no longer takes: first from what was
    recorded as unrecovered (never taken), then as a grant keyed by the refund's id, so a
    repeated or concurrent report gives back nothing more. A reversed refund stays
    reversed. An unknown status raises UnknownProviderStatus and changes nothing.
    """
    if status not in RS.values:
        raise UnknownProviderStatus(
            f"Refund {provider_refund_id} of order #{order_id} is {status!r}, a status "
            f"with no rule here: nothing was changed.",
            code="UNKNOWN_REFUND_STATUS",
        )
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",)).select_related("user").get(pk=order_id)
        )
        if currency and currency.upper() != order.currency.upper():
            raise PaymentMismatch(
                f"Refund {provider_refund_id} in {currency} reported for order #{order.pk} in "
                f"{order.currency}."
            )
        refund = (
            Refund.objects.select_for_update().filter(provider_refund_id=provider_refund_id).first()
        )
        if refund is not None and refund.order_id != order.pk:
            raise PaymentMismatch(
                f"Refund {provider_refund_id} belongs to order #{refund.order_id}, not #{order.pk}."
            )
        if refund is None:
            if amount is None or amount <= 0:
                raise PaymentMismatch(
                    f"Refund {provider_refund_id} of order #{order.pk} has no amount."
                )
            # A refund made at the provider (its dashboard): was its amount part of the
            # cumulative total we applied? Only the part of our total that no refund row of
            # ours explains can hold it.
            known = Refund.objects.filter(order=order, status__in=COUNTED).aggregate(
                total=Sum("amount")
            )["total"] or Decimal("0")
            applied = order.amount_refunded - known >= amount
            refund = Refund.objects.create(
                order=order,
                amount=amount,
                currency=(currency or order.currency).upper(),
                reason="Reported by the provider",
                idempotency_key=f"{order.provider.lower()}:{provider_refund_id}",
                provider_refund_id=provider_refund_id,
                status=status,
            )
            if status in REVERSED and applied:
                _reverse(order=order, refund=refund, source=source)
            elif status in REVERSED:
                logger.info(
                    "order %s: refund %s %s before it was applied here",
                    order.pk,
                    provider_refund_id,
                    status,
                )
            return order
        if refund.status in REVERSED or refund.status == status:
            return order  # a reversal is final; the same news again changes nothing
        refund.status = status
        refund.save(update_fields=["status", "updated_at"])
        if status in REVERSED:
            _reverse(order=order, refund=refund, source=source)
        logger.info("order %s: refund %s is %s (%s)", order.pk, provider_refund_id, status, source)
    return order


def _reverse(*, order: Order, refund: Refund, source: str) -> None:
    """Undo ``refund`` (already marked failed or canceled) on the locked ``order``."""
    order.amount_refunded = max(Decimal("0"), order.amount_refunded - refund.amount)
    lost = (
        order.dispute_status == Order.DisputeStatus.LOST
    )  # the lost dispute took every credit back
    if order.is_fulfilled:
        target = (
            order.credits
            if lost
            else credits_for_refund(order=order, refunded=order.amount_refunded)
        )
        excess = order.credits_clawed_back + order.credits_unrecovered - target
        never_taken = min(max(excess, 0), order.credits_unrecovered)
        order.credits_unrecovered -= never_taken
        give_back = min(max(excess - never_taken, 0), order.credits_clawed_back)
        if give_back:
            credits_grant(
                user=order.user,
                amount=give_back,
                kind=LedgerKind.PURCHASE,
                idempotency_key=f"order:{order.pk}:refund-reversed:{refund.provider_refund_id}",
                source=order_source(order),
                description=f"Refund of {refund.amount} {refund.currency} on order #{order.pk} {refund.status}: "
                f"credits given back",
                metadata={
                    "source": source,
                    "refund_id": refund.provider_refund_id,
                    "refund_status": refund.status,
                },
            )
            order.credits_clawed_back -= give_back
        if order.status != Order.Status.DISPUTED and not lost:
            order_transition(order=order, to=refund_status(order), save=False)
    order.save()
    if order.is_fulfilled:
        invoice_sync_status(order=order)
    logger.warning(
        "order %s: refund %s of %s %s %s; %s %s refunded in all (%s)",
        order.pk,
        refund.provider_refund_id,
        refund.amount,
        refund.currency,
        refund.status,
        order.amount_refunded,
        order.currency,
        source,
    )


def _validate(*, order, amount, reason, staff_user, idempotency_key) -> Decimal:
    if (
        staff_user is None
        or not staff_user.is_active
        or not staff_user.has_perm("payments.refund_order")
    ):
        raise RefundNotAllowed("Refunding needs the 'Can refund an order' permission.")
    if not reason or not reason.strip():
        raise RefundNotAllowed("A refund needs a reason.")
    if not idempotency_key:
        raise RefundNotAllowed("A refund needs an idempotency key.")
    try:
        amount = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise RefundNotAllowed(f"{amount!r} is not an amount of money.") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
        raise RefundNotAllowed("The refund must be a positive amount with at most two decimals.")
    return amount
