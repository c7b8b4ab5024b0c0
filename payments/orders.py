"""Buying: a PENDING order priced on the server, then the provider's hosted checkout."""

import logging

from django.db import transaction

from .exceptions import ProviderError, ProviderNotConfigured
from .guards import assert_no_transaction
from .models import CreditPackage, Order
from .providers import get_provider, is_available
from .providers.base import CheckoutSession
from .transitions import order_transition
from .vouchers import voucher_release_for_order, voucher_reserve

logger = logging.getLogger(__name__)


def order_create(*, user, package: CreditPackage, provider: str, voucher_code: str = "") -> Order:
    """A PENDING order for ``package``: amount, currency and credits come from the package
    as it is now, never from the buyer's request.

    ``voucher_code``: a purchase-bonus code, whose use is reserved for the order in the same
    transaction (a code that cannot be used raises a VoucherError and creates nothing).
    """
    if not package.active:
        raise ProviderNotConfigured(f"The {package.name} package is not on sale.")
    if not is_available(provider):
        raise ProviderNotConfigured(f"Paying with {provider.title()} is not available here.")
    with transaction.atomic():
        order = Order.objects.create(
            user=user,
            package=package,
            amount=package.price,
            currency=package.currency.upper(),
            credits=package.credits,
            provider=provider,
        )
        if voucher_code:
            voucher_reserve(user=user, code=voucher_code, order=order)
        return order


def order_start_checkout(*, order: Order, success_url: str, cancel_url: str) -> CheckoutSession:
    """Open the provider's checkout for a PENDING order and remember its id.

    The provider is called outside any transaction. When it fails the order becomes FAILED
    (the buyer starts again with a new order) and the ProviderError is raised.
    """
    assert_no_transaction("order_start_checkout")
    try:
        session = get_provider(order.provider).create_checkout(
            order=order, success_url=success_url, cancel_url=cancel_url
        )
    except ProviderError:
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            if locked.status == Order.Status.PENDING:
                order_transition(order=locked, to=Order.Status.FAILED)
                voucher_release_for_order(order_id=locked.pk)
        logger.exception("could not open checkout for order %s", order.pk)
        raise
    Order.objects.filter(pk=order.pk, provider_order_id__isnull=True).update(
        provider_order_id=session.provider_order_id
    )
    order.provider_order_id = session.provider_order_id
    return session
