"""How the ledger names an order: entries caused by an order carry ``("payments.order", id)``.

Registered with ``credits.references`` when the app starts; payments reads an order's
entries back by that pair (``credits`` holds no foreign key to orders).
"""

from django.db.models import QuerySet

from credits.models import LedgerEntry
from credits.references import Source, register_source_type

ORDER_SOURCE = "payments.order"


def order_source(order) -> Source:
    return Source(ORDER_SOURCE, order.pk)


def order_ledger_entries(order) -> QuerySet:
    """The ledger entries caused by ``order`` (its purchase, clawbacks, refund reversals)."""
    return LedgerEntry.objects.caused_by(order_source(order))


def register() -> None:
    from .models import Order

    register_source_type(
        name=ORDER_SOURCE,
        label="order",
        model=Order,
        export_column="order_id",
        customer_url_name="payments:orders",
    )
