"""The account page: who you are, your plan, your credits, your last login."""

from allauth.account.models import EmailAddress
from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import ProfileForm


def _balance(user) -> dict:
    """The user's credit balance row, read through the model (accounts imports no app)."""
    CreditBalance = apps.get_model("credits", "CreditBalance")
    row = (
        CreditBalance.objects.filter(user_id=user.pk)
        .values("balance", "lifetime_earned", "lifetime_spent", "spend_holds")
        .first()
    )
    return row or {"balance": 0, "lifetime_earned": 0, "lifetime_spent": 0, "spend_holds": 0}


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    user = request.user
    if request.method == "POST":
        form = ProfileForm(request.POST, instance=user)
        if form.is_valid():
            form.save()
            messages.success(request, "Your details were saved.")
            return redirect("accounts:profile")
    else:
        form = ProfileForm(instance=user)
    context = {
        "form": form,
        "credits": _balance(user),
        "email_addresses": list(EmailAddress.objects.filter(user=user).order_by("-primary", "email")),
    }
    return render(request, "accounts/profile.html", context, status=400 if form.errors else 200)
