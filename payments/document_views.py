"""Invoice and credit-note pages and PDFs, and the billing profile page."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_safe

from .billing import billing_profile_update
from .invoice_pdf import credit_note_pdf, invoice_pdf
from .models import BillingProfile, CreditNote, Invoice


class BillingProfileForm(forms.ModelForm):
    class Meta:
        model = BillingProfile
        fields = ["name", "address", "country", "tax_id"]
        widgets = {"address": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "name": "Leave empty to use the name on your account.",
            "tax_id": "For business purchases, e.g. DE123456789.",
        }


def _invoice(request, number):
    return get_object_or_404(
        Invoice.objects.select_related("order", "order__package", "order__user"),
        number=number,
        order__user=request.user,
    )


def _credit_note(request, number):
    return get_object_or_404(
        CreditNote.objects.select_related("invoice", "invoice__order", "invoice__order__user"),
        number=number,
        invoice__order__user=request.user,
    )


def _pdf(content: bytes, number: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{number}.pdf"'
    return response


@login_required
@require_safe
def invoice_pdf_view(request, number: str):
    invoice = _invoice(request, number)
    return _pdf(invoice_pdf(invoice), invoice.number)


@login_required
@require_safe
def credit_note(request, number: str):
    note = _credit_note(request, number)
    return render(
        request,
        "payments/credit_note.html",
        {"note": note, "invoice": note.invoice, "order": note.invoice.order},
    )


@login_required
@require_safe
def credit_note_pdf_view(request, number: str):
    note = _credit_note(request, number)
    return _pdf(credit_note_pdf(note), note.number)


@login_required
@require_http_methods(["GET", "POST"])
def billing_profile(request):
    profile = BillingProfile.objects.filter(user=request.user).first()
    form = BillingProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        billing_profile_update(user=request.user, **form.cleaned_data)
        messages.success(request, "Your billing details were saved. New invoices will use them.")
        return redirect("payments:billing_profile")
    return render(
        request,
        "payments/billing_profile.html",
        {"form": form},
        status=400 if form.errors else 200,
    )
