"""The auto top-up page: threshold and pack, saving a card, turning it on and off."""

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
    autotopup_save_method,
    autotopup_setup_finish,
    autotopup_setup_start,
    autotopup_turn_off,
    autotopup_turn_on,
)
from .exceptions import ProviderError
from .models import AutoTopUp, AutoTopUpAttempt, CreditPackage
from .providers import SANDBOX
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
            if action == "card" or not (config and config.payment_method_id):
                return _save_card(request)
            messages.success(request, "Your auto top-up settings were saved.")
            return redirect("payments:auto_topup")
    attempts = AutoTopUpAttempt.objects.filter(user=request.user).select_related("order")[:5]
    return render(
        request,
        "payments/auto_topup.html",
        {
            "form": form,
            "config": config,
            "provider": autotopup_provider(),
            "attempts": attempts,
            "max_per_day": autotopup_max_per_day(),
        },
        status=400 if form.errors else 200,
    )


def _save_card(request):
    back = request.build_absolute_uri(reverse("payments:auto_topup"))
    try:
        url = autotopup_setup_start(
            user=request.user,
            success_url=request.build_absolute_uri(reverse("payments:auto_topup_card_saved"))
            + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=back,
        )
    except (ProviderError, ValueError) as exc:
        messages.error(request, f"The card could not be saved: {exc}")
        return redirect("payments:auto_topup")
    return redirect(url)


@login_required
@require_http_methods(["GET"])
def auto_topup_card_saved(request):
    config = autotopup_setup_finish(user=request.user, session_id=request.GET.get("session_id", ""))
    if config is None:
        messages.error(request, "No card was saved. Nothing was charged.")
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
