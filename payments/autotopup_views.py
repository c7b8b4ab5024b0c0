"""The auto top-up page: threshold and pack, saving a card or a PayPal account, turning it on
and off."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from .app_settings import autotopup_max_per_day
from .autotopup import (
    autotopup_configure,
    autotopup_provider,
    autotopup_providers,
    autotopup_save_method,
    autotopup_setup_finish,
    autotopup_setup_start,
    autotopup_turn_off,
    autotopup_turn_on,
)
from .exceptions import ProviderError
from .models import AutoTopUp, AutoTopUpAttempt, CreditPackage
from .providers import PAYPAL, SANDBOX, STRIPE
from .providers.sandbox import SANDBOX_CARDS


class AutoTopUpForm(forms.Form):
    threshold = forms.IntegerField(
        min_value=1, max_value=10_000_000, label="When my balance falls below (credits)"
    )
    package = forms.ModelChoiceField(
        queryset=CreditPackage.objects.filter(active=True), label="Buy this pack", empty_label=None
    )


@login_required
@require_http_methods(["GET", "POST"])
def auto_topup(request):
    config = AutoTopUp.objects.select_related("package").filter(user=request.user).first()
    initial = {"threshold": config.threshold, "package": config.package} if config else {}
    form = AutoTopUpForm(request.POST or None, initial=initial or {"threshold": 100})
    if request.method == "POST":
        action = request.POST.get("action", "save")
        if action == "off" and config:
            autotopup_turn_off(user=request.user)
            messages.success(request, "Auto top-up is off.")
            return redirect("payments:auto_topup")
        if action == "on" and config and config.payment_method_id:
            autotopup_turn_on(user=request.user)
            messages.success(request, "Auto top-up is on.")
            return redirect("payments:auto_topup")
        if form.is_valid():
            autotopup_configure(user=request.user, **form.cleaned_data)
            provider = _provider_for(action)
            if provider is None and not (config and config.payment_method_id):
                provider = autotopup_provider()
            if provider is not None:
                return _save_method(request, provider)
            messages.success(request, "Your auto top-up settings were saved.")
            return redirect("payments:auto_topup")
    attempts = AutoTopUpAttempt.objects.filter(user=request.user).select_related("order")[:5]
    providers = autotopup_providers()
    return render(
        request,
        "payments/auto_topup.html",
        {
            "form": form,
            "config": config,
            "provider": providers[0] if providers else None,
            "can_save_card": STRIPE in providers or SANDBOX in providers,
            "can_save_paypal": PAYPAL in providers,
            "attempts": attempts,
            "max_per_day": autotopup_max_per_day(),
        },
        status=400 if form.errors else 200,
    )


def _provider_for(action: str) -> str | None:
    """The provider a "save" button asks for: a card (Stripe, or the sandbox standing in for
    it) or a PayPal account; None for any other action or one not offered here."""
    providers = autotopup_providers()
    wanted = {"card": (STRIPE, SANDBOX), "paypal": (PAYPAL,)}.get(action, ())
    return next((name for name in wanted if name in providers), None)


def _save_method(request, provider: str):
    back = request.build_absolute_uri(reverse("payments:auto_topup"))
    success_url = request.build_absolute_uri(reverse("payments:auto_topup_card_saved"))
    if provider == STRIPE:  # PayPal appends its own approval_token_id
        success_url += "?session_id={CHECKOUT_SESSION_ID}"
    try:
        url = autotopup_setup_start(
            user=request.user, provider=provider, success_url=success_url, cancel_url=back
        )
    except (ProviderError, ValueError) as exc:
        what = "PayPal account" if provider == PAYPAL else "card"
        messages.error(request, f"The {what} could not be saved: {exc}")
        return redirect("payments:auto_topup")
    return redirect(url)


@login_required
@require_http_methods(["GET"])
def auto_topup_card_saved(request):
    """Back from saving a payment method: Stripe's setup checkout (``session_id``) or PayPal's
    approval of a vault setup token (``approval_token_id``)."""
    token = request.GET.get("session_id") or request.GET.get("approval_token_id") or ""
    config = autotopup_setup_finish(user=request.user, session_id=token)
    if config is None:
        messages.error(request, "No payment method was saved. Nothing was charged.")
    else:
        messages.success(request, f"{config.payment_method_label} saved: auto top-up is on.")
    return redirect("payments:auto_topup")


@login_required
@require_http_methods(["GET", "POST"])
def auto_topup_sandbox_card(request):
    """The sandbox's stand-in for Stripe's card form (no real money, only where it runs)."""
    if autotopup_provider() != SANDBOX:
        raise Http404
    if not AutoTopUp.objects.filter(user=request.user).exists():
        return redirect("payments:auto_topup")
    if request.method == "POST":
        card = request.POST.get("card", "")
        if card in SANDBOX_CARDS:
            autotopup_save_method(
                user=request.user,
                provider=SANDBOX,
                customer_id=f"sbx_cus_{request.user.pk}",
                payment_method_id=card,
                label=SANDBOX_CARDS[card],
            )
            messages.success(request, f"{SANDBOX_CARDS[card]} saved: auto top-up is on.")
            return redirect("payments:auto_topup")
    return render(request, "payments/auto_topup_sandbox_card.html", {"cards": SANDBOX_CARDS})
