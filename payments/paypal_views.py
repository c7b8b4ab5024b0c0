"""Where PayPal sends the buyer back after approving: capture, fulfil, show the order.

PayPal appends ``token`` (its order id) and ``PayerID`` to the return URL. The capture is
made once per order (the same PayPal-Request-Id as the CHECKOUT.ORDER.APPROVED webhook
and the reconciliation sweep use), and the credits are granted through the same
idempotent ``fulfil_order`` as the webhooks: whichever comes first grants, the others
find the order fulfilled. A PENDING capture leaves the order pending; the success page
then waits for PayPal's PAYMENT.CAPTURE.COMPLETED webhook.
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET

from .exceptions import PaymentsError, ProviderError
from .fulfilment import fetch_payment_status, fulfil_order, order_mark_unpaid
from .models import Order
from .providers import PAYPAL, get_provider

logger = logging.getLogger(__name__)

#: PayPal's answer when the buyer's funding source was declined: send them back to choose another.
INSTRUMENT_DECLINED = "INSTRUMENT_DECLINED"


@login_required
@require_GET
def paypal_return(request):
    token = request.GET.get("token", "").strip()
    if not token:
        messages.error(request, "PayPal did not say which payment this is. Nothing was charged.")
        return redirect("payments:orders")
    order = get_object_or_404(Order, provider=PAYPAL, provider_order_id=token, user=request.user)
    if not order.is_fulfilled:
        try:
            status = fetch_payment_status(order=order)  # captures the approved PayPal order
            if status.paid:
                fulfil_order(order_id=order.pk, status=status, source="paypal_return")
            elif status.state == "failed":
                order_mark_unpaid(order_id=order.pk, to=Order.Status.FAILED, source="paypal_return")
        except ProviderError as exc:
            if exc.code == INSTRUMENT_DECLINED:
                approve_url = _approve_url(order)
                if approve_url:
                    messages.error(
                        request, "PayPal declined that payment method. Please choose another one."
                    )
                    return HttpResponseRedirect(approve_url)
            logger.warning("PayPal return for order %s: %s", order.pk, exc)
            messages.warning(
                request,
                "PayPal has not confirmed the payment yet. This page will update "
                "as soon as it does; you will not be charged twice.",
            )
        except PaymentsError as exc:
            logger.error("PayPal return for order %s: %s", order.pk, exc)
            messages.error(
                request,
                "This payment needs a check by our staff before the credits arrive. "
                "You will not be charged twice.",
            )
    return redirect("payments:order_success", order.pk)


def _approve_url(order: Order) -> str:
    try:
        snapshot = get_provider(PAYPAL).fetch_order(provider_order_id=order.provider_order_id)
    except PaymentsError:
        return ""
    return snapshot.approve_url if snapshot is not None else ""
