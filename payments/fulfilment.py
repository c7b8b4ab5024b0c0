"""Fulfilment: turning a payment the provider confirms into credits, an invoice and a
COMPLETED order, exactly once.

The webhook task and the success page both call ``fulfil_order`` with what the provider
said about the payment (asked before, outside any transaction). Either may run first, both
may run at once, and either may run again later: the order's row lock and the grant's
idempotency key make every run after the first a no-op.
"""

import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.services import user_mark_paying
from core.db import get_compiled, update_fields
from core.logs import set_context as set_log_context
from core.queue import task_send
from credits.models import LedgerKind
from credits.services import credits_grant

from .autotopup import autotopup_order_settled
from .exceptions import PaymentMismatch, PaymentNotConfirmed, PaymentsError
from .guards import assert_no_transaction
from .invoices import invoice_issue
from .ledger import order_source
from .models import AutoTopUpAttempt, Order, Refund, VoucherRedemption
from .providers import get_provider
from .providers.base import PaymentStatus
from .refunds import apply_refunded_total, closed_account_refund_key
from .transitions import UNPAID_ENDINGS, order_transition
from .vouchers import voucher_grant_bonus, voucher_release_for_order

logger = logging.getLogger(__name__)

#: The precision of a lot's cost basis (money per credit).
COST_BASIS_STEP = Decimal("0.000001")


def purchase_key(order_id: int) -> str:
    return f"order:{order_id}:purchase"


def fetch_payment_status(*, order: Order) -> PaymentStatus:
    """Ask ``order``'s provider what became of its payment. Raises ProviderError."""
    assert_no_transaction("fetch_payment_status")
    if not order.provider_order_id:
        return PaymentStatus(state="unknown")
    return get_provider(order.provider).fetch_payment_status(order=order)


#: What fulfilling an order writes on it.
FULFILLED_FIELDS = (
    "status",
    "completed_at",
    "provider_payment_id",
    "provider_order_id",
    "updated_at",
)


def _order_to_fulfil(order_id: int):
    """The order, locked, with the buyer, the package, the billing profile, and whether a
    voucher bonus or an automatic purchase goes with it (each is created with the order,
    never later). Compiled once per process (``core.db.select_compiled``)."""
    return (
        Order.objects.select_for_update(of=("self",))
        .select_related("user", "package", "user__billing_profile")
        .annotate(
            has_voucher=Exists(VoucherRedemption.objects.filter(order=OuterRef("pk"))),
            has_topup=Exists(
                AutoTopUpAttempt.objects.filter(
                    order=OuterRef("pk"), status=AutoTopUpAttempt.Status.PENDING
                )
            ),
        )
        .order_by()  # one row by its key: no sort by the model's ordering
        .filter(pk=order_id)
    )


def fulfil_order(*, order_id: int, status: PaymentStatus, source: str) -> Order:
    """Grant the order's credits, issue its invoice and mark it COMPLETED, once.

    ``status`` is what the provider says about the payment. Nothing is granted unless it
    says paid, for the order's amount and currency (a mismatch raises PaymentMismatch and
    is logged for staff). An order already fulfilled is returned unchanged, whatever
    ``status`` says. A refund recorded before the payment was seen is applied right after
    the grant. ``source`` says who asked (``webhook:<provider>:<event id>``,
    ``success_page``, ``reconciliation``) and is kept on the ledger entry.
    """
    set_log_context(order_id=order_id)
    # No savepoint of its own: every caller lets a failure here end its transaction, and the
    # two round trips of a savepoint are a tenth of a webhook's processing.
    with transaction.atomic(savepoint=False):
        # One statement locks the order and reads what the fulfilment needs besides.
        order = get_compiled(_order_to_fulfil, order_id)
        if order.is_fulfilled:
            return order
        _check_payment(order, status)
        if order.user.deleted_at is not None:
            return _paid_for_closed_account(order, status, source)

        now = timezone.now()
        credits_grant(
            user=order.user,
            amount=order.credits,
            kind=LedgerKind.PURCHASE,
            idempotency_key=purchase_key(order.pk),
            source=order_source(order),
            description=f"{order.package.name} package, order #{order.pk}",
            metadata={
                "source": source,
                "provider": order.provider,
                "amount": str(order.amount),
                "currency": order.currency,
            },
            # The lot is paid for at the order's price per credit.
            cost_basis=(order.amount / order.credits).quantize(COST_BASIS_STEP),
            currency=order.currency,
        )
        if order.has_voucher:
            # A bonus reserved at checkout, granted with the purchase (and voided with it).
            voucher_grant_bonus(order=order)
        if status.provider_payment_id:
            order.provider_payment_id = status.provider_payment_id
        if status.provider_order_id and not order.provider_order_id:
            order.provider_order_id = status.provider_order_id
        order_transition(order=order, to=Order.Status.COMPLETED, save=False)
        order.completed_at = now
        # The columns the fulfilment changed (the row is locked: the others are as read).
        update_fields(order, FULFILLED_FIELDS)
        if order.has_topup:
            autotopup_order_settled(order=order)
        user_mark_paying(user=order.user)
        # Last: the invoice number locks the year's counter until commit, and every fulfilment
        # waits for that lock, so it is taken as late as possible. The invoice is issued only
        # here, in the transaction that sets completed_at: an order not fulfilled has none (and
        # the one-invoice-per-order constraint refuses a second).
        invoice_issue(order=order, amount_paid=order.amount, currency=order.currency, paid_at=now)
        if order.amount_refunded > 0:
            apply_refunded_total(
                order=order, total=order.amount_refunded, source=f"{source} (refund seen earlier)"
            )
        logger.info(
            "order %s fulfilled: %s credits to user %s (%s)",
            order.pk,
            order.credits,
            order.user_id,
            source,
        )
    return order


def _paid_for_closed_account(order: Order, status: PaymentStatus, source: str) -> Order:
    """A payment for an account deleted since the checkout began: no credits, no invoice.

    The order (locked) keeps its status; the payment's ids are stored and the full refund is
    queued after commit (``order_refund_closed_account``, idempotent). Every later attempt
    to fulfil (a duplicate webhook, the return page, reconciliation) queues it again until
    the refund is recorded, so a lost message is picked up.
    """
    if status.provider_payment_id:
        order.provider_payment_id = status.provider_payment_id
    if status.provider_order_id and not order.provider_order_id:
        order.provider_order_id = status.provider_order_id
    order.save(update_fields=["provider_payment_id", "provider_order_id", "updated_at"])
    voucher_release_for_order(order_id=order.pk)  # no credits, so no bonus either
    if not Refund.objects.filter(idempotency_key=closed_account_refund_key(order.pk)).exists():
        logger.warning(
            "order %s paid after user %s closed the account: nothing granted, refund queued (%s)",
            order.pk,
            order.user_id,
            source,
        )
        order_id = order.pk
        transaction.on_commit(
            lambda: task_send("payments.tasks.refund_closed_account_order", args=[order_id])
        )
    return order


def order_mark_unpaid(
    *, order_id: int, to: str, source: str, code: str = "", message: str = ""
) -> Order:
    """Record that a checkout ended without payment (FAILED, EXPIRED or CANCELLED).

    Only a PENDING order changes: a payment seen earlier always wins over a late failure or
    expiry, and a completion seen later still fulfils (see ``transitions.ALLOWED``). An
    automatic purchase that failed turns auto top-up off (``code`` and ``message``: the
    provider's reason).
    """
    if to not in UNPAID_ENDINGS:
        raise ValueError(f"{to} is not an unpaid ending")
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status == Order.Status.PENDING:
            order_transition(order=order, to=to)
            voucher_release_for_order(order_id=order.pk)
            autotopup_order_settled(order=order, code=code, message=message)
            logger.info("order %s %s (%s)", order.pk, to.lower(), source)
    return order


def _check_payment(order: Order, status: PaymentStatus) -> None:
    if not status.paid:
        raise PaymentNotConfirmed(
            f"The provider says order #{order.pk} is {status.state}, not paid."
        )
    problems = []
    if (
        status.provider_order_id
        and order.provider_order_id
        and status.provider_order_id != order.provider_order_id
    ):
        problems.append(
            f"checkout {status.provider_order_id} is not the order's {order.provider_order_id}"
        )
    if status.amount is None:
        problems.append("the provider did not say how much was paid")
    elif Decimal(status.amount) != order.amount:
        problems.append(f"paid {status.amount} but the order is for {order.amount}")
    if (status.currency or "").upper() != order.currency.upper():
        problems.append(f"paid in {status.currency or '?'} but the order is in {order.currency}")
    if problems:
        message = (
            f"Payment for order #{order.pk} does not match: {'; '.join(problems)}. Nothing granted."
        )
        logger.error(message)
        raise PaymentMismatch(message)


def order_check_payment(*, order: Order, source: str) -> Order:
    """Ask the provider about an order not fulfilled yet and fulfil it when paid.

    For the return page and reconciliation: the same idempotent fulfilment as the webhook.
    A provider that cannot answer, or a payment that does not match, leaves the order as
    it is (the webhook or a later check will settle it); the problem is logged.
    """
    if order.is_fulfilled or not order.provider_order_id:
        return order
    try:
        status = fetch_payment_status(order=order)
        if status.paid:
            return fulfil_order(order_id=order.pk, status=status, source=source)
    except PaymentsError as exc:
        logger.warning("checking the payment of order %s failed: %s", order.pk, exc)
    return Order.objects.get(pk=order.pk)
