"""The sandbox provider's hosted checkout page (it plays the part of Stripe's)."""

from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from . import app_settings
from .models import SandboxPayment
from .providers import SANDBOX, is_available
from .providers.sandbox import redirect_after, sandbox_deliver, sandbox_finish

ACTIONS = {
    "pay": SandboxPayment.Status.PAID,
    "fail": SandboxPayment.Status.FAILED,
    "cancel": SandboxPayment.Status.CANCELED,
}


def sandbox_checkout(request, token: str):
    if not is_available(SANDBOX):
        raise Http404("The sandbox provider is not enabled here.")
    payment = get_object_or_404(SandboxPayment, token=token)
    if request.method == "POST":
        outcome = ACTIONS.get(request.POST.get("action", ""))
        if outcome is None:
            return render(
                request,
                "payments/sandbox_checkout.html",
                {"payment": payment, "error": "Choose Pay, Fail or Cancel."},
                status=400,
            )
        payment, closed_now = sandbox_finish(token=token, outcome=outcome)
        if closed_now:
            url = app_settings.sandbox_webhook_url() or request.build_absolute_uri(
                reverse("webhooks:sandbox")
            )
            sandbox_deliver(payment=payment, webhook_url=url)
        return HttpResponseRedirect(redirect_after(payment), status=303)
    if payment.status != SandboxPayment.Status.OPEN:
        return HttpResponseRedirect(redirect_after(payment), status=303)
    return render(request, "payments/sandbox_checkout.html", {"payment": payment})
