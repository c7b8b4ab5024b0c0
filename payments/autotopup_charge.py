"""The charge of an automatic purchase, after the spend that started it committed.

Run by ``payments.tasks.run_auto_topup`` (and again by the sweep while the attempt is in
flight). The provider is asked outside any transaction, with the order's own idempotency
key, so a repeat never charges twice: it gets the first answer back, or reads the payment
the order already names. Paid: the ordinary fulfilment grants the credits and issues the
invoice and receipt. Failed: the order is marked FAILED and auto top-up turns itself off.
"""

from django.db import transaction

from .autotopup import autotopup_order_settled
from .fulfilment import fulfil_order, order_mark_unpaid
from .guards import assert_no_transaction
from .models import AutoTopUp, AutoTopUpAttempt, Order
from .providers import get_provider

FAILED_STATES = frozenset({"failed", "cancelled", "expired"})


def autotopup_key(order_id: int) -> str:
    return f"autotopup-{order_id}"


def autotopup_charge(*, attempt_id: int) -> str:
    """Charge the attempt's order once and settle it; "paid", "failed", "pending" or "settled".

    A ProviderError the provider may recover from (an outage) is raised for the task to
    retry; nothing was charged twice or granted.
    """
    assert_no_transaction("autotopup_charge")
    attempt = AutoTopUpAttempt.objects.select_related("order", "order__package", "order__user").get(
        pk=attempt_id
    )
    if attempt.status != AutoTopUpAttempt.Status.PENDING:
        return "settled"
    order = attempt.order
    source = f"auto-topup:{attempt.pk}"
    if order.status != Order.Status.PENDING:  # settled by a webhook meanwhile
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            autotopup_order_settled(order=locked)
        return "settled"
    provider = get_provider(order.provider)
    if order.provider_order_id:
        status = provider.fetch_payment_status(order=order)
    else:
        config = AutoTopUp.objects.get(user=order.user)
        status = provider.charge_saved(
            order=order,
            customer_id=config.customer_id,
            payment_method_id=config.payment_method_id,
            idempotency_key=autotopup_key(order.pk),
        )
        if status.provider_order_id:
            Order.objects.filter(pk=order.pk, provider_order_id__isnull=True).update(
                provider_order_id=status.provider_order_id
            )
    if status.paid:
        fulfil_order(order_id=order.pk, status=status, source=source)
        return "paid"
    if status.state in FAILED_STATES:
        order_mark_unpaid(
            order_id=order.pk,
            to=Order.Status.FAILED,
            source=source,
            code=str(status.raw.get("decline_code") or status.raw.get("code") or ""),
            message=str(status.raw.get("message") or ""),
        )
        return "failed"
    return "pending"
