"""PDFs of invoices and credit notes (reportlab), drawn from what the document recorded."""

from decimal import Decimal
from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .models import CreditNote, Invoice
from .templatetags.money import money

ACCENT = colors.HexColor("#3b5bdb")
MUTED = colors.HexColor("#5b6477")
BORDER = colors.HexColor("#e1e5ee")


def _styles():
    base = getSampleStyleSheet()
    return {
        "brand": ParagraphStyle("brand", parent=base["Title"], alignment=0, textColor=ACCENT),
        "h": ParagraphStyle("h", parent=base["Heading2"], spaceAfter=2),
        "p": ParagraphStyle("p", parent=base["Normal"], leading=14),
        "muted": ParagraphStyle("muted", parent=base["Normal"], textColor=MUTED, fontSize=8),
    }


def _lines(*parts: str) -> str:
    return "<br/>".join(escape(p) for part in parts for p in (part or "").splitlines() if p)


def _party(title: str, name: str, address: str, tax_id: str, email: str = "") -> list:
    styles = _styles()
    tax = f"Tax id: {tax_id}" if tax_id else ""
    return [
        Paragraph(title, styles["muted"]),
        Paragraph(_lines(name, address, email, tax) or "—", styles["p"]),
    ]


def _document(
    *,
    title: str,
    number: str,
    date,
    seller: tuple[str, str, str],
    buyer: tuple[str, str, str, str],
    facts: list[tuple[str, str]],
    rows: list[tuple[str, str]],
    note: str,
) -> bytes:
    styles = _styles()
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{title} {number}",
        author=seller[0],
        pageCompression=0,  # small documents; their text stays searchable as written
    )
    header = Table(
        [
            [
                Paragraph(f"◆ {escape(seller[0])}", styles["brand"]),
                Paragraph(f"<b>{title}</b><br/>{escape(number)}", styles["h"]),
            ]
        ],
        colWidths=[110 * mm, 64 * mm],
    )
    parties = Table(
        [[_party("From", *seller), _party("Billed to", *buyer)]], colWidths=[87 * mm, 87 * mm]
    )
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    facts_table = Table(
        [["Date", date.strftime("%B %-d, %Y")], *facts], colWidths=[40 * mm, 134 * mm]
    )
    facts_table.setStyle(
        TableStyle([("TEXTCOLOR", (0, 0), (0, -1), MUTED), ("FONTSIZE", (0, 0), (-1, -1), 9)])
    )
    lines = Table([["Description", "Amount"], *rows], colWidths=[134 * mm, 40 * mm])
    lines.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, BORDER),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    story = [
        header,
        Spacer(1, 8 * mm),
        parties,
        Spacer(1, 6 * mm),
        facts_table,
        Spacer(1, 8 * mm),
        lines,
        Spacer(1, 8 * mm),
        Paragraph(escape(note), styles["muted"]),
    ]
    doc.build(story)
    return buffer.getvalue()


def _tax_rows(label: str, rate: Decimal, net, tax, currency: str, total_label: str, total):
    rows = []
    if rate:
        rows.append(("Net", money(net, currency)))
        rows.append((f"{label} {format(rate.normalize(), 'f')}%", money(tax, currency)))
    rows.append((total_label, money(total, currency)))
    return rows


def invoice_pdf(invoice: Invoice) -> bytes:
    order = invoice.order
    description = (
        invoice.description
        or f"{order.package.name}: {order.credits} credit{'' if order.credits == 1 else 's'}"
    )
    rows = [(description, money(invoice.net_amount or invoice.amount_paid, invoice.currency))]
    rows += _tax_rows(
        invoice.tax_label or "Tax",
        invoice.tax_rate,
        invoice.net_amount,
        invoice.tax_amount,
        invoice.currency,
        "Total paid",
        invoice.amount_paid,
    )
    return _document(
        title="Invoice",
        number=invoice.number,
        date=invoice.paid_at,
        seller=(invoice.seller_name or "Credits", invoice.seller_address, invoice.seller_tax_id),
        buyer=(
            invoice.buyer_name or order.user.name,
            invoice.buyer_address,
            invoice.buyer_tax_id,
            invoice.buyer_email or order.user.email,
        ),
        facts=[
            ("Order", f"#{order.pk}"),
            ("Paid with", order.get_provider_display()),
            ("Payment", order.provider_payment_id or "—"),
        ],
        rows=rows,
        note=(
            f"Amounts in {invoice.currency}"
            + (f", {invoice.tax_label} included" if invoice.tax_rate else "")
            + f". Questions about this invoice? Reply to your receipt email and quote {invoice.number}."
        ),
    )


def credit_note_pdf(note: CreditNote) -> bytes:
    invoice = note.invoice
    rows = [(note.reason, money(note.net_amount, note.currency))]
    rows += _tax_rows(
        invoice.tax_label or "Tax",
        note.tax_rate,
        note.net_amount,
        note.tax_amount,
        note.currency,
        "Total credited",
        note.amount,
    )
    return _document(
        title="Credit note",
        number=note.number,
        date=note.issued_at,
        seller=(invoice.seller_name or "Credits", invoice.seller_address, invoice.seller_tax_id),
        buyer=(
            invoice.buyer_name or invoice.order.user.name,
            invoice.buyer_address,
            invoice.buyer_tax_id,
            invoice.buyer_email or invoice.order.user.email,
        ),
        facts=[
            ("Refers to invoice", f"{invoice.number} of {invoice.paid_at:%B %-d, %Y}"),
            ("Order", f"#{invoice.order_id}"),
        ],
        rows=rows,
        note=f"Amounts in {note.currency}. This credit note corrects invoice {invoice.number}, "
        "which stays as issued.",
    )
