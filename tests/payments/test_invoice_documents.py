"""Invoices fit to send: seller, buyer and tax as issued, a receipt email with the PDF, and
refunds issuing numbered credit notes that refer to the invoice, which never changes."""

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import OutboundEmail
from payments.billing import billing_profile_update
from payments.models import CreditNote, Invoice
from tests.notices.conftest import mailbox, smtp_server, text_part  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

YEAR = date.today().year


@pytest.fixture
def seller(settings):
    settings.INVOICE_SELLER_NAME = "Credits Ltd"
    settings.INVOICE_SELLER_ADDRESS = "1 Market Street|Dublin D01 2AB|Ireland"
    settings.INVOICE_SELLER_TAX_ID = "IE1234567T"
    settings.INVOICE_TAX_RATE = "20"
    settings.INVOICE_TAX_LABEL = "VAT"


def refunded_event(fake_stripe, order, cents: int) -> str:
    charge = fake_stripe.charge_for(order.provider_payment_id)
    fake_stripe.refund(order.provider_payment_id, cents - charge["amount_refunded"])
    return fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id))


def attachments(message) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}


def test_a_paid_order_is_invoiced_as_issued_and_the_receipt_carries_the_pdf_once(
    paid_order, user, seller, mailbox, deliver, fake_stripe
):
    billing_profile_update(
        user=user,
        name="Hopper Analytics GmbH",
        address="Hauptstr. 5\n10115 Berlin",
        country="Germany",
        tax_id="de 123 456 789",
    )
    order = paid_order()
    invoice = Invoice.objects.get(order=order)
    assert invoice.number == f"INV-{YEAR}-000001"
    assert (invoice.seller_name, invoice.seller_tax_id) == ("Credits Ltd", "IE1234567T")
    assert invoice.seller_address == "1 Market Street\nDublin D01 2AB\nIreland"
    assert (invoice.buyer_name, invoice.buyer_tax_id) == ("Hopper Analytics GmbH", "DE123456789")
    assert invoice.buyer_address == "Hauptstr. 5\n10115 Berlin\nGermany"
    # $9.99 including 20% VAT: 8.33 net + 1.66 tax.
    assert (invoice.net_amount, invoice.tax_amount, invoice.amount_paid) == (
        Decimal("8.33"),
        Decimal("1.66"),
        Decimal("9.99"),
    )

    (message,) = mailbox.messages
    assert message["Subject"] == f"Your receipt {invoice.number}: 50 credits"
    body = text_part(message)
    assert "Total paid: $9.99" in body and "VAT 20%: $1.66" in body
    assert f"/billing/invoices/{invoice.number}/" in body
    pdf = attachments(message)[f"{invoice.number}.pdf"]
    assert pdf.startswith(b"%PDF") and invoice.number.encode() in pdf

    # The same payment reported again (a duplicate webhook) sends no second receipt.
    session = fake_stripe.sessions[order.provider_order_id]
    deliver(fake_stripe.event("checkout.session.completed", fake_stripe.public(session)))
    assert len(mailbox.messages) == 1
    assert OutboundEmail.objects.filter(kind="receipt").count() == 1

    # A later change of address or tax rate never rewrites the issued invoice.
    billing_profile_update(user=user, name="Someone Else", address="", country="", tax_id="")
    invoice.refresh_from_db()
    assert invoice.buyer_name == "Hopper Analytics GmbH"


def test_refunds_issue_numbered_credit_notes_referring_to_the_unchanged_invoice(
    paid_order, seller, mailbox, deliver, fake_stripe, client
):
    order = paid_order()
    mailbox.clear()
    invoice = Invoice.objects.get(order=order)
    issued = Invoice.objects.filter(pk=invoice.pk).values().get()

    deliver(refunded_event(fake_stripe, order, 500))
    deliver(refunded_event(fake_stripe, order, 500))  # the same state again: no new note
    deliver(refunded_event(fake_stripe, order, 999))

    notes = list(CreditNote.objects.order_by("sequence"))
    assert [(n.number, n.amount, n.invoice_id) for n in notes] == [
        (f"CN-{YEAR}-000001", Decimal("5.00"), invoice.pk),
        (f"CN-{YEAR}-000002", Decimal("4.99"), invoice.pk),
    ]
    assert (notes[0].net_amount, notes[0].tax_amount) == (Decimal("4.17"), Decimal("0.83"))
    after = Invoice.objects.filter(pk=invoice.pk).values().get()
    assert {k: v for k, v in after.items() if k != "status"} == {
        k: v for k, v in issued.items() if k != "status"
    }

    subjects = [m["Subject"] for m in mailbox.messages]
    assert subjects == [
        f"Refund on order #{order.pk}: credit note CN-{YEAR}-000001",
        f"Refund on order #{order.pk}: credit note CN-{YEAR}-000002",
    ]
    assert f"invoice {invoice.number}" in text_part(mailbox.messages[0])
    assert set(attachments(mailbox.messages[1])) == {f"CN-{YEAR}-000002.pdf"}

    client.force_login(order.user)
    page = client.get(reverse("payments:credit_note", args=[notes[0].number]))
    assert page.status_code == 200 and invoice.number in page.content.decode()
    pdf = client.get(reverse("payments:credit_note_pdf", args=[notes[0].number]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert notes[0].number.encode() in pdf.content and invoice.number.encode() in pdf.content


def test_a_refund_that_fails_after_it_was_credited_issues_a_cancelling_credit_note(
    paid_order, seller, mailbox, deliver, fake_stripe
):
    order = paid_order()
    deliver(refunded_event(fake_stripe, order, 300))
    refund_id = next(iter(fake_stripe.refunds))
    deliver(fake_stripe.event("refund.failed", fake_stripe.set_refund_status(refund_id, "failed")))

    amounts = list(CreditNote.objects.order_by("sequence").values_list("amount", flat=True))
    assert amounts == [Decimal("3.00"), Decimal("-3.00")]
    order.refresh_from_db()
    assert sum(amounts) == order.amount_refunded == 0


def test_invoice_pdfs_are_for_their_buyer_only(paid_order, client, make_user):
    order = paid_order()
    invoice = Invoice.objects.get(order=order)
    url = reverse("payments:invoice_pdf", args=[invoice.number])
    client.force_login(make_user())
    assert client.get(url).status_code == 404
    client.force_login(order.user)
    response = client.get(url)
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    page = client.get(reverse("payments:invoice", args=[invoice.number])).content.decode()
    assert "Credits" in page and "Tax id" not in page  # no seller tax id configured, no tax line


def test_disputes_email_the_buyer_when_they_open_and_when_they_close(
    paid_order, mailbox, deliver, fake_stripe
):
    order = paid_order()
    mailbox.clear()
    opened = fake_stripe.dispute(order.provider_payment_id)
    deliver(fake_stripe.event("charge.dispute.created", opened))
    deliver(fake_stripe.event("charge.dispute.updated", dict(opened, status="under_review")))
    deliver(fake_stripe.event("charge.dispute.closed", dict(opened, status="lost")))

    subjects = [m["Subject"] for m in mailbox.messages]
    assert subjects == [
        f"A payment dispute was opened on order #{order.pk}",
        f"The payment dispute on order #{order.pk} is closed: refunded to you by your bank",
    ]
    assert "spending credits on your account is paused" in " ".join(
        text_part(mailbox.messages[0]).split()
    )
