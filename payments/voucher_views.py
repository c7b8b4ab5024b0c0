"""The redeem page: a promo code turned into credits. Thin: rate-limit, parse, call, render."""

from allauth.core import ratelimit
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.formats import date_format
from django.views.decorators.http import require_http_methods

from .vouchers import VoucherError, voucher_redeem

#: The rate-limit action (``ACCOUNT_RATE_LIMITS["voucher_redeem"]``: per user and per address).
RATE_LIMIT_ACTION = "voucher_redeem"
RATE_LIMITED_MESSAGE = "Too many codes tried. Please wait a while before trying another."


class RedeemForm(forms.Form):
    code = forms.CharField(
        label="Promo code",
        max_length=64,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
        error_messages={"required": "Enter a code."},
    )


def voucher_attempt_allowed(request) -> bool:
    """Count one code typed in by the signed-in user from this address; False once over."""
    return ratelimit.consume(request, action=RATE_LIMIT_ACTION, user=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def redeem(request):
    form = RedeemForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not voucher_attempt_allowed(request):
            form.add_error(None, RATE_LIMITED_MESSAGE)
            return render(request, "payments/redeem.html", {"form": form}, status=429)
        if form.is_valid():
            try:
                redemption = voucher_redeem(user=request.user, code=form.cleaned_data["code"])
            except VoucherError as exc:
                form.add_error("code", exc.message)
                status = exc.status
            else:
                lot = redemption.entry.lot
                until = (
                    f" They can be spent until {date_format(lot.expires_at, 'j F Y')}."
                    if lot.expires_at
                    else ""
                )
                messages.success(
                    request, f"Code accepted: {redemption.credits} credits added.{until}"
                )
                return redirect("credits:history")
        else:
            status = 400
    return render(request, "payments/redeem.html", {"form": form}, status=status)
