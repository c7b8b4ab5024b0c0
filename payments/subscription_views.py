"""Membership pages: subscribe, the billing section (change, cancel, resume, period
invoices), and the sandbox's hosted subscription pages."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Sum
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from credits.models import CreditLot, LotSource

from .exceptions import PaymentsError, ProviderError
from .models import Order, SandboxSubscription, Subscription, SubscriptionPeriod, SubscriptionPlan
from .providers import SANDBOX, available_providers, is_available
from .providers.sandbox_subscriptions import (
    sandbox_abandon,
    sandbox_cancel,
    sandbox_renew,
    sandbox_subscribe,
)
from .subscriptions import (
    PERIOD_SOURCE,
    subscription_cancel,
    subscription_change_plan,
    subscription_live,
    subscription_portal_url,
    subscription_refresh,
    subscription_resume,
    subscription_start,
)
from .voucher_views import RATE_LIMITED_MESSAGE, voucher_attempt_allowed
from .vouchers import VoucherError

PROVIDER_FAILED = (
    "The payment provider did not answer, so nothing changed. Please try again in a moment."
)


def plan_cards() -> list[dict]:
    """The plans on sale, with their USD price, for the pricing page."""
    cards = []
    for plan in SubscriptionPlan.objects.filter(active=True).prefetch_related("prices"):
        price = next((p for p in plan.prices.all() if p.currency == "USD"), None)
        cards.append({"plan": plan, "price": price})
    return cards


def _credits_of(sub: Subscription | None) -> dict:
    """This period's plan credits and rollover: granted and left."""
    if sub is None or sub.current_period_end is None:
        return {}
    periods = list(
        SubscriptionPeriod.objects.filter(
            subscription=sub, ends_at=sub.current_period_end
        ).values_list("pk", flat=True)
    )
    now = timezone.now()
    lots = CreditLot.objects.filter(
        source_type=PERIOD_SOURCE, source_id__in=periods, user_id=sub.user_id, expires_at__gt=now
    )
    plan = lots.filter(source=LotSource.SUBSCRIPTION).aggregate(
        g=Sum("original"), r=Sum("remaining")
    )
    rolled = lots.filter(source=LotSource.ROLLOVER).aggregate(g=Sum("original"), r=Sum("remaining"))
    return {
        "plan_granted": plan["g"] or 0,
        "plan_left": plan["r"] or 0,
        "rollover_granted": rolled["g"] or 0,
        "rollover_left": rolled["r"] or 0,
    }


@login_required
@require_safe
def subscription(request):
    """The billing section: the membership, its credits, changes and its invoices."""
    sub = subscription_live(user=request.user)
    if (
        sub is not None
        and sub.status == Subscription.Status.INCOMPLETE
        and cache.add(f"payments:subscription-check:{sub.pk}", 1, 5)
    ):
        try:
            subscription_refresh(subscription=sub)
        except PaymentsError:
            pass  # the webhook or reconciliation settles it
        sub = subscription_live(user=request.user)
    latest = sub or (Subscription.objects.select_related("plan").filter(user=request.user).first())
    periods = SubscriptionPeriod.objects.filter(subscription__user=request.user).select_related(
        "plan"
    )[:24]
    return render(
        request,
        "payments/subscription.html",
        {
            "sub": sub,
            "latest": latest,
            "credits": _credits_of(sub),
            "periods": periods,
            "plans": plan_cards(),
            "providers": [(p, dict(Order.Provider.choices)[p]) for p in available_providers()],
            "no_provider": not available_providers(),
            "sandbox_token": _sandbox_token(sub),
        },
    )


def _sandbox_token(sub: Subscription | None) -> str:
    if sub is None or sub.provider != SANDBOX or not is_available(SANDBOX):
        return ""
    return (sub.provider_subscription_id or "").removeprefix("sbx_sub_")


@login_required
@require_POST
def subscribe(request):
    plan = SubscriptionPlan.objects.filter(
        code=request.POST.get("plan", ""), active=True, prices__isnull=False
    ).first()
    providers = available_providers()
    if plan is None or not providers:
        messages.error(request, "That plan is not on sale here. Nothing was charged.")
        return redirect("payments:pricing")
    provider = request.POST.get("provider") or providers[0]
    if provider not in providers:
        provider = providers[0]
    code = (request.POST.get("voucher_code") or "").strip()[:64]
    if code and not voucher_attempt_allowed(request):
        messages.error(request, RATE_LIMITED_MESSAGE)
        return redirect("payments:pricing")
    back = request.build_absolute_uri(reverse("payments:subscription"))
    try:
        _, checkout = subscription_start(
            user=request.user,
            plan=plan,
            provider_name=provider,
            success_url=back,
            cancel_url=request.build_absolute_uri(reverse("payments:pricing")),
            voucher_code=code,
        )
    except VoucherError as exc:
        messages.error(request, exc.message)
        return redirect("payments:pricing")
    except ProviderError:
        messages.error(request, PROVIDER_FAILED)
        return redirect("payments:pricing")
    except PaymentsError as exc:
        messages.error(request, str(exc))
        return redirect("payments:subscription")
    return HttpResponseRedirect(checkout.redirect_url, status=303)


def _change(request, action, done: str):
    sub = subscription_live(user=request.user)
    try:
        action(sub)
    except ProviderError:
        messages.error(request, PROVIDER_FAILED)
    except PaymentsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect("payments:subscription")


@login_required
@require_POST
def subscription_cancel_view(request):
    return _change(
        request,
        lambda sub: subscription_cancel(subscription=sub),
        "Your membership will end with the current period. You keep its credits until then.",
    )


@login_required
@require_POST
def subscription_resume_view(request):
    return _change(
        request,
        lambda sub: subscription_resume(subscription=sub),
        "Your membership continues as before.",
    )


@login_required
@require_POST
def subscription_change_view(request):
    plan = SubscriptionPlan.objects.filter(code=request.POST.get("plan", ""), active=True).first()
    if plan is None:
        messages.error(request, "That plan is not on sale.")
        return redirect("payments:subscription")
    return _change(
        request,
        lambda sub: subscription_change_plan(subscription=sub, plan=plan),
        f"Plan change to {plan.name} requested.",
    )


@login_required
@require_POST
def subscription_portal(request):
    """Off to Stripe's customer portal (cards, the provider's invoices)."""
    try:
        url = subscription_portal_url(
            user=request.user,
            return_url=request.build_absolute_uri(reverse("payments:subscription")),
        )
    except ProviderError:
        messages.error(request, PROVIDER_FAILED)
        return redirect("payments:subscription")
    except PaymentsError as exc:
        messages.error(request, str(exc))
        return redirect("payments:subscription")
    return HttpResponseRedirect(url, status=303)


@login_required
@require_safe
def period_invoice(request, number: str):
    period = get_object_or_404(
        SubscriptionPeriod.objects.select_related("plan", "subscription__user"),
        invoice_number=number,
        subscription__user=request.user,
    )
    return render(request, "payments/period_invoice.html", {"period": period})


# --- the sandbox's hosted pages ---------------------------------------------------------------


def _sandbox_sub(token: str) -> SandboxSubscription:
    if not is_available(SANDBOX):
        raise Http404("The sandbox provider is not enabled here.")
    return get_object_or_404(SandboxSubscription, token=token)


def sandbox_subscribe_page(request, token: str):
    """The sandbox's subscription checkout: Subscribe (the first period is paid) or Cancel."""
    sub = _sandbox_sub(token)
    if request.method == "POST":
        if request.POST.get("action") == "subscribe":
            sub = sandbox_subscribe(token=token)
            return HttpResponseRedirect(sub.success_url, status=303)
        sandbox_abandon(token=token)
        return HttpResponseRedirect(sub.cancel_url, status=303)
    if sub.status != SandboxSubscription.Status.OPEN:
        return HttpResponseRedirect(sub.success_url, status=303)
    return render(request, "payments/sandbox_subscribe.html", {"sub": sub})


SANDBOX_ACTIONS = {
    "renew": lambda token: sandbox_renew(token=token),
    "fail": lambda token: sandbox_renew(token=token, fail=True),
    "cancel": lambda token: sandbox_cancel(token=token),
}


@require_POST
def sandbox_subscription_action(request, token: str):
    """The sandbox's side of time passing: renew now, fail the renewal, cancel now."""
    _sandbox_sub(token)
    action = SANDBOX_ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        messages.error(request, "Choose renew, fail or cancel.")
    else:
        try:
            action(token)
        except ProviderError as exc:
            messages.error(request, str(exc))
    return redirect("payments:subscription")
