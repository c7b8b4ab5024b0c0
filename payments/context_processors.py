"""What every page may say about paying: which payment methods are live here."""

from django.utils.functional import SimpleLazyObject

from .models import Order
from .providers import SANDBOX, available_providers

LABELS = dict(Order.Provider.choices)


def _payment_methods() -> dict:
    names = available_providers()
    return {
        "labels": [LABELS[name] for name in names if name != SANDBOX],
        "sandbox": SANDBOX in names,
        "none": not names,
    }


def payment_methods(request) -> dict:
    """``payment_methods.labels`` (real providers, e.g. ["Stripe", "PayPal"]), ``.sandbox`` and
    ``.none``, worked out only on the pages that show them."""
    return {"payment_methods": SimpleLazyObject(_payment_methods)}
