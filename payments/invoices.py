"""Invoices: one per fulfilled order, numbered INV-<year>-<sequence> without gaps or repeats."""

from datetime import datetime
from decimal import Decimal

from django.db import connection

from .models import Invoice, Order

_NEXT_SEQUENCE = """
INSERT INTO payments_invoicesequence (year, last) VALUES (%s, 1)
ON CONFLICT (year) DO UPDATE SET last = payments_invoicesequence.last + 1
RETURNING last
"""


def invoice_next_number(*, year: int) -> tuple[int, str]:
    """Take the next sequence number of ``year``; call inside the transaction that uses it.

    One upsert holds the year's counter row locked until that transaction ends, so concurrent
    fulfilments queue for the next number, and a rolled-back one gives its number back.
    """
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SEQUENCE, [year])
        (sequence,) = cursor.fetchone()
    return sequence, f"INV-{year}-{sequence:06d}"


def invoice_issue(
    *, order: Order, amount_paid: Decimal, currency: str, paid_at: datetime
) -> Invoice:
    """The order's invoice, issued once. Call with the order's row lock held."""
    existing = Invoice.objects.filter(order=order).first()
    if existing is not None:
        return existing
    sequence, number = invoice_next_number(year=paid_at.year)
    return Invoice.objects.create(
        order=order,
        year=paid_at.year,
        sequence=sequence,
        number=number,
        amount_paid=amount_paid,
        currency=currency,
        paid_at=paid_at,
    )


def invoice_status_for(order: Order) -> str:
    if order.status == Order.Status.REFUNDED:
        return Invoice.Status.REFUNDED
    if order.amount_refunded > 0:
        return Invoice.Status.PARTIALLY_REFUNDED
    return Invoice.Status.PAID


def invoice_sync_status(*, order: Order) -> None:
    """Keep the invoice's status in step with the order's refunds (order lock held)."""
    Invoice.objects.filter(order=order).exclude(status=invoice_status_for(order)).update(
        status=invoice_status_for(order)
    )
