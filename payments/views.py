"""Pages for buying credits: landing, pricing, checkout start, return pages, orders, invoices."""

import logging

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from credits.models import CreditBalance

from . import app_settings
from .exceptions import PaymentsError, ProviderError
from .fulfilment import order_check_payment, order_mark_unpaid
from .models import CreditPackage, Invoice, Order, VoucherRedemption
from .orders import order_create, order_start_checkout
from .providers import SANDBOX, available_providers
from .voucher_views import RATE_LIMITED_MESSAGE, voucher_attempt_allowed
from .vouchers import VoucherError

logger = logging.getLogger(__name__)

PROVIDER_LABELS = dict(Order.Provider.choices)
NO_PROVIDER_MESSAGE = (
    "No payment method is available right now, so credits cannot be bought. Nothing was charged."
)
#: Statuses after which the return page stops polling.
SETTLED = {
    Order.Status.COMPLETED,
    Order.Status.FAILED,
    Order.Status.EXPIRED,
    Order.Status.CANCELLED,
    Order.Status.REFUNDED,
    Order.Status.PARTIALLY_REFUNDED,
    Order.Status.DISPUTED,
}


class BuyForm(forms.Form):
    """What the buyer chooses: a package and how to pay. Anything else posted is ignored."""

    package = forms.ModelChoiceField(
        queryset=CreditPackage.objects.filter(active=True),
        error_messages={"invalid_choice": "That package is not on sale."},
    )
    provider = forms.ChoiceField(required=False)
    #: A purchase-bonus code (optional), reserved with the order.
    voucher_code = forms.CharField(required=False, max_length=64, strip=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [(p, PROVIDER_LABELS[p]) for p in available_providers()]

    def clean_provider(self):
        if not available_providers():
            raise forms.ValidationError(NO_PROVIDER_MESSAGE)
        return self.cleaned_data.get("provider") or available_providers()[0]


def _pricing_context(user=None) -> dict:
    packages = list(CreditPackage.objects.filter(active=True))
    # Savings are measured against the dearest credit on sale (normally the smallest package).
    dearest = max((p.price / p.credits for p in packages), default=None)
    cards = []
    for package in packages:
        per_credit = package.price / package.credits
        saving = int(round((1 - per_credit / dearest) * 100)) if dearest else 0
        cards.append({"package": package, "per_credit": per_credit, "saving": saving})
    providers = available_providers()
    from .subscription_views import plan_cards
    from .subscriptions import subscription_live

    return {
        "plans": plan_cards(),
        "sub": subscription_live(user=user) if user is not None and user.is_authenticated else None,
        "cards": cards,
        "providers": [(p, PROVIDER_LABELS[p]) for p in providers],
        "sandbox_mode": providers == [SANDBOX],
        "no_provider": not providers,
        "featured_name": "Pro",
    }


@require_safe
def home(request):
    return render(request, "home.html", _pricing_context())


@require_safe
def pricing(request):
    return render(request, "payments/pricing.html", _pricing_context(request.user))


@login_required
@require_POST
def buy(request):
    form = BuyForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("payments:pricing")
    code = form.cleaned_data["voucher_code"]
    if code and not voucher_attempt_allowed(request):
        messages.error(request, f"{RATE_LIMITED_MESSAGE} Nothing was charged.")
        return redirect("payments:pricing")
    try:
        order = order_create(
            user=request.user,
            package=form.cleaned_data["package"],
            provider=form.cleaned_data["provider"],
            voucher_code=code,
        )
        success = request.build_absolute_uri(reverse("payments:order_success", args=[order.pk]))
        cancel = request.build_absolute_uri(reverse("payments:order_cancel", args=[order.pk]))
        session = order_start_checkout(
            order=order,
            success_url=f"{success}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=cancel,
        )
    except VoucherError as exc:
        messages.error(request, f"{exc.message} Nothing was charged.")
        return redirect("payments:pricing")
    except ProviderError:
        messages.error(
            request,
            "The payment provider did not answer, so the checkout could not start. "
            "Nothing was charged; please try again in a moment.",
        )
        return redirect("payments:pricing")
    except PaymentsError as exc:
        messages.error(request, f"We could not start the checkout: {exc} Nothing was charged.")
        return redirect("payments:pricing")
    return HttpResponseRedirect(session.redirect_url, status=303)


def _own_order(request, pk: int) -> Order:
    return get_object_or_404(Order.objects.select_related("package"), pk=pk, user=request.user)


def _status_context(request, order: Order) -> dict:
    balance = (
        CreditBalance.objects.filter(user_id=request.user.pk)
        .values_list("balance", flat=True)
        .first()
    )
    invoice = Invoice.objects.filter(order=order).only("number").first()
    bonus = VoucherRedemption.objects.filter(order=order).only("credits", "status").first()
    return {
        "order": order,
        "bonus": bonus,
        "balance": balance or 0,
        "invoice": invoice,
        "settled": order.status in SETTLED,
    }


@login_required
@require_safe
def order_success(request, pk: int):
    """The page the provider sends the buyer back to: it fulfils too, then shows the credits."""
    order = _own_order(request, pk)
    if not order.is_fulfilled:
        order = order_check_payment(order=order, source="success_page")
        cache.set(f"payments:status-check:{order.pk}", 1, app_settings.status_recheck_seconds())
    return render(request, "payments/order_success.html", _status_context(request, order))


@login_required
@require_safe
def order_status(request, pk: int):
    """The htmx fragment the return page polls until the order settles."""
    order = _own_order(request, pk)
    if not order.is_fulfilled and cache.add(
        f"payments:status-check:{order.pk}", 1, app_settings.status_recheck_seconds()
    ):
        order = order_check_payment(order=order, source="success_page")
    return render(
        request,
        "payments/_order_status.html",
        {**_status_context(request, order), "oob_balance": True},
    )


@login_required
@require_safe
def order_cancel(request, pk: int):
    """Where the provider sends a buyer who cancelled (or went back): the order says so.

    Only a PENDING order becomes CANCELLED; a payment the provider confirms later still
    fulfils it, and an order already paid goes to its own page.
    """
    order = _own_order(request, pk)
    if order.is_fulfilled:
        return redirect("payments:order_success", order.pk)
    order = order_mark_unpaid(order_id=order.pk, to=Order.Status.CANCELLED, source="cancel_page")
    return render(request, "payments/order_cancel.html", {"order": order})


@login_required
@require_safe
def orders(request):
    queryset = (
        Order.objects.filter(user=request.user)
        .select_related("package", "invoice")
        .order_by("-created_at")
    )
    page = Paginator(queryset, 20).get_page(request.GET.get("page"))
    return render(request, "payments/orders.html", {"page": page, "orders": page.object_list})


@login_required
@require_safe
def invoice(request, number: str):
    invoice = get_object_or_404(
        Invoice.objects.select_related("order", "order__package", "order__user"),
        number=number,
        order__user=request.user,
    )
    return render(request, "payments/invoice.html", {"invoice": invoice, "order": invoice.order})
