"""Invoices: one per fulfilled order, numbered INV-<year>-<sequence> without gaps or repeats;
credit notes for refunds, numbered CN-<year>-<sequence>, referring to the invoice.

An invoice says what it said when it was issued: seller and tax rate from the settings of
that day, buyer from the billing profile of that day. A refund never rewrites it: the
change of the order's refunded amount issues a credit note for the difference (a negative
one when a refund failed after it was credited), so the invoice's notes always add up to
what the order has refunded. Both are emailed in the transaction that issues them; their
PDF is drawn from the stored document when the email is sent, not while the transaction
holds the year's counter.
"""

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from accounts.outbox import LaterAttachment, attachment_renderer_register
from core.db import insert_statement, inserted
from notices.services import email_queue

from .app_settings import app_settings, invoice_seller, invoice_tax_rate, site_url
from .invoice_pdf import credit_note_pdf, invoice_pdf
from .models import BillingProfile, CreditNote, Invoice, Order
from .templatetags.money import money as format_money

CENT = Decimal("0.01")

_NEXT_SEQUENCE = """
INSERT INTO payments_invoicesequence (year, last) VALUES (%s, 1)
ON CONFLICT (year) DO UPDATE SET last = payments_invoicesequence.last + 1
RETURNING last
"""


_NEXT_CREDIT_NOTE = """
INSERT INTO payments_creditnotesequence (year, last) VALUES (%s, 1)
ON CONFLICT (year) DO UPDATE SET last = payments_creditnotesequence.last + 1
RETURNING last
"""


def rate_text(rate: Decimal) -> str:
    """20.000 -> "20", 8.500 -> "8.5"."""
    return format(rate.normalize(), "f")


def tax_split(gross: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """``(net, tax)`` of a tax-inclusive ``gross`` at ``rate`` percent; they add up to it."""
    if not rate:
        return gross, Decimal("0.00")
    net = (gross * 100 / (100 + rate)).quantize(CENT, rounding=ROUND_HALF_UP)
    return net, gross - net


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
    """The order's invoice. Call once, in the fulfilment that completes the order, with its
    row lock held (the one-invoice-per-order constraint refuses a second)."""
    rate = invoice_tax_rate()
    net, tax = tax_split(amount_paid, rate)
    seller = invoice_seller()
    profile = _billing_profile(order.user)
    buyer_address = ""
    if profile is not None:
        buyer_address = "\n".join(p for p in (profile.address.strip(), profile.country) if p)
    invoice = Invoice(
        order=order,
        year=paid_at.year,
        amount_paid=amount_paid,
        currency=currency,
        paid_at=paid_at,
        description=(
            f"{order.package.name} credit pack: {order.credits} "
            f"credit{'' if order.credits == 1 else 's'}"
        ),
        seller_name=seller["name"],
        seller_address=seller["address"],
        seller_tax_id=seller["tax_id"],
        buyer_name=(profile.name if profile and profile.name else order.user.name),
        buyer_email=order.user.email,
        buyer_address=buyer_address,
        buyer_tax_id=profile.tax_id if profile else "",
        tax_label=app_settings.INVOICE_TAX_LABEL if rate else "",
        tax_rate=rate,
        net_amount=net,
        tax_amount=tax,
    )
    _insert_numbered(invoice)
    _email_receipt(invoice)
    return invoice


def _insert_numbered(invoice: Invoice) -> None:
    """Store ``invoice`` with the next number of its year, taken by the same statement: the
    counter's upsert (as ``invoice_next_number`` takes it: its row locked until commit, a
    rollback gives the number back) and the invoice's INSERT in one round trip."""
    sql, params = insert_statement(invoice)
    head, rest = sql.split(" VALUES (", 1)
    values, returning = rest.rsplit(") RETURNING ", 1)
    columns = head[head.index("(") + 1 : -1].split(", ")
    if values.split(", ") != ["%s"] * len(params) or len(columns) != len(params):
        raise ValueError(f"not an INSERT of plain values: {sql}")
    quote = connection.ops.quote_name
    selected, selected_params = [], [invoice.year]
    for column, param in zip(columns, params, strict=True):
        if column == quote("sequence"):
            selected.append("counter.last")
        elif column == quote("number"):
            selected.append(_NUMBER)
            selected_params.append(f"INV-{invoice.year}-")
        else:
            selected.append("%s")
            selected_params.append(param)
    table = quote(Invoice._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH counter AS ({_NEXT_SEQUENCE.strip()})\n{head}\nSELECT {', '.join(selected)}"
            f" FROM counter RETURNING {returning}, {table}.{quote('sequence')},"
            f" {table}.{quote('number')}",
            selected_params,
        )
        *row, invoice.sequence, invoice.number = cursor.fetchone()
    inserted(invoice, tuple(row))


#: The invoice number from the year's prefix and the counter: at least six digits, as
#: ``invoice_next_number`` writes it.
_NUMBER = "%s || lpad(counter.last::text, greatest(6, length(counter.last::text)), '0')"


def _billing_profile(user) -> BillingProfile | None:
    """The buyer's billing profile (read with the user when the caller selected it along)."""
    try:
        return user.billing_profile
    except BillingProfile.DoesNotExist:
        return None


def invoice_status_for(order: Order) -> str:
    if order.status == Order.Status.REFUNDED:
        return Invoice.Status.REFUNDED
    if order.amount_refunded > 0:
        return Invoice.Status.PARTIALLY_REFUNDED
    return Invoice.Status.PAID


def invoice_sync_status(*, order: Order) -> None:
    """Keep the invoice's status label in step with the order's refunds, and issue the credit
    note for any change of the refunded amount (order lock held)."""
    Invoice.objects.filter(order=order).exclude(status=invoice_status_for(order)).update(
        status=invoice_status_for(order)
    )
    credit_note_issue(order=order)


def credit_note_issue(*, order: Order, reason: str = "") -> CreditNote | None:
    """Issue the credit note that brings the invoice's notes to the order's refunded amount.

    Call with the order's row lock held. Nothing happens when they already agree (a repeated
    or stale refund event), so each change of the refunded amount issues exactly one note.
    """
    invoice = Invoice.objects.filter(order=order).first()
    if invoice is None:
        return None
    credited = invoice.credit_notes.aggregate(total=Sum("amount"))["total"] or Decimal("0")
    difference = order.amount_refunded - credited
    if not difference:
        return None
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_CREDIT_NOTE, [now.year])
        (sequence,) = cursor.fetchone()
    net, tax = tax_split(difference, invoice.tax_rate)
    note = CreditNote.objects.create(
        invoice=invoice,
        year=now.year,
        sequence=sequence,
        number=f"CN-{now.year}-{sequence:06d}",
        amount=difference,
        currency=invoice.currency,
        tax_rate=invoice.tax_rate,
        net_amount=net,
        tax_amount=tax,
        refunded_total=order.amount_refunded,
        reason=(
            reason
            or (
                f"Refund on invoice {invoice.number}"
                if difference > 0
                else f"A refund on invoice {invoice.number} failed: the amount is owed again"
            )
        )[:255],
        issued_at=now,
    )
    if difference > 0:
        _email_credit_note(note, order)
    return note


# --- emails -------------------------------------------------------------------------------

INVOICE_PDF, CREDIT_NOTE_PDF = "payments.invoice_pdf", "payments.credit_note_pdf"


def _invoice_pdf_of(number: str) -> bytes:
    return invoice_pdf(
        Invoice.objects.select_related("order__user", "order__package").get(number=number)
    )


def _credit_note_pdf_of(number: str) -> bytes:
    return credit_note_pdf(
        CreditNote.objects.select_related("invoice__order__user").get(number=number)
    )


def register() -> None:
    """The receipt's and the credit note's PDFs, drawn when their email is sent."""
    attachment_renderer_register(INVOICE_PDF, _invoice_pdf_of)
    attachment_renderer_register(CREDIT_NOTE_PDF, _credit_note_pdf_of)


def _pdf(renderer: str, number: str) -> LaterAttachment:
    return LaterAttachment(f"{number}.pdf", "application/pdf", renderer, number)


def _email_receipt(invoice: Invoice) -> None:
    order = invoice.order
    email_queue(
        user=order.user,
        kind="receipt",
        key=invoice.number,
        context={
            "invoice_number": invoice.number,
            "order_id": order.pk,
            "credits": order.credits,
            "description": invoice.description,
            "net_display": format_money(invoice.net_amount, invoice.currency),
            "tax_label": f"{invoice.tax_label} {rate_text(invoice.tax_rate)}%",
            "tax_display": (
                format_money(invoice.tax_amount, invoice.currency) if invoice.tax_rate else ""
            ),
            "total_display": format_money(invoice.amount_paid, invoice.currency),
            "invoice_url": site_url() + reverse("payments:invoice", args=[invoice.number]),
        },
        attachments=[_pdf(INVOICE_PDF, invoice.number)],
        # Rendered by the worker that sends it, not while this transaction holds the year's
        # invoice counter; the outbox row is written here all the same.
        render_when_sent=True,
    )


def _email_credit_note(note: CreditNote, order: Order) -> None:
    email_queue(
        user=order.user,
        kind="credit_note",
        key=note.number,
        context={
            "order_id": order.pk,
            "credit_note_number": note.number,
            "invoice_number": note.invoice.number,
            "amount_display": format_money(note.amount, note.currency),
            "credits_taken": order.credits_clawed_back,
            "credit_note_url": site_url() + reverse("payments:credit_note", args=[note.number]),
        },
        attachments=[_pdf(CREDIT_NOTE_PDF, note.number)],
    )
