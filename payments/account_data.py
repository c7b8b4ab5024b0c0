"""The payments part of a user's data export and account deletion (see ``accounts.lifecycle``).

Orders, their invoices and refunds are exported and kept on deletion: they are financial
records (and hold no personal data beyond the link to the anonymised user). An account with
an order still waiting for its payment cannot be deleted until that order has settled: a
payment arriving afterwards would be for an account nobody can use.

The billing profile and the auto top-up rule are exported too. Deletion erases the billing
profile and turns auto top-up off, forgetting the saved card (issued invoices keep the
details they were issued with, as financial records).
"""

from accounts.lifecycle import register_account_data, register_account_summary

from .models import AutoTopUp, BillingProfile, Order, Refund


def export_orders(user):
    orders = (
        Order.objects.filter(user_id=user.pk)
        .select_related("package", "invoice")
        .order_by("created_at", "pk")
    )
    refunds: dict[int, list[dict]] = {}
    for refund in Refund.objects.filter(order__user_id=user.pk).order_by("created_at", "pk"):
        refunds.setdefault(refund.order_id, []).append(
            {
                "amount": refund.amount,
                "currency": refund.currency,
                "status": refund.status,
                "created_at": refund.created_at,
            }
        )
    for order in orders.iterator(chunk_size=500):
        invoice = getattr(order, "invoice", None)
        yield {
            "id": order.pk,
            "created_at": order.created_at,
            "completed_at": order.completed_at,
            "status": order.status,
            "package": order.package.name,
            "credits": order.credits,
            "amount": order.amount,
            "currency": order.currency,
            "provider": order.provider,
            "amount_refunded": order.amount_refunded,
            "invoice": None
            if invoice is None
            else {
                "number": invoice.number,
                "status": invoice.status,
                "amount_paid": invoice.amount_paid,
                "currency": invoice.currency,
                "paid_at": invoice.paid_at,
            },
            "refunds": refunds.get(order.pk, []),
        }


def deletion_blockers(user) -> list[str]:
    pending = list(
        Order.objects.filter(user_id=user.pk, status=Order.Status.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not pending:
        return []
    numbers = ", ".join(f"#{pk}" for pk in pending)
    return [
        f"Order {numbers} is still waiting for its payment: finish or cancel the checkout, "
        "or wait until it expires, then try again."
    ]


def export_billing(user):
    profile = BillingProfile.objects.filter(user_id=user.pk).first()
    if profile is not None:
        yield {
            "billing_profile": {
                "name": profile.name,
                "address": profile.address,
                "country": profile.country,
                "tax_id": profile.tax_id,
            }
        }
    config = AutoTopUp.objects.filter(user_id=user.pk).select_related("package").first()
    if config is not None:
        yield {
            "auto_topup": {
                "enabled": config.enabled,
                "threshold": config.threshold,
                "package": config.package.name,
                "payment_method": config.payment_method_label,
            }
        }


def erase_billing(*, user, actor=None, reason: str = "") -> None:
    BillingProfile.objects.filter(user_id=user.pk).delete()
    AutoTopUp.objects.filter(user_id=user.pk).update(
        enabled=False,
        customer_id="",
        payment_method_id="",
        payment_method_label="",
        setup_session_id="",
        disabled_reason="The account was deleted.",
    )


def billing_summary(user) -> dict:
    """The account page's billing details card."""
    profile = BillingProfile.objects.filter(user_id=user.pk).first()
    auto = AutoTopUp.objects.filter(user_id=user.pk).only("enabled").first()
    return {
        "profile": profile,
        "auto_topup_on": bool(auto and auto.enabled),
    }


def register() -> None:
    register_account_summary("billing", billing_summary)
    register_account_data("orders", export=export_orders, blockers=deletion_blockers)
    register_account_data("billing", export=export_billing, erase=erase_billing)
