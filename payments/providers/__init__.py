"""Which payment providers this deployment offers, and the adapter for each.

``PROVIDERS`` maps an ``Order.Provider`` value to the dotted path of its adapter class (a
``PaymentProvider``). Adapters are imported on first use, so a provider's SDK is loaded only
where that provider is used. An adapter class is built with no arguments and reads its own
settings.

A provider is available when it is configured: Stripe with ``STRIPE_SECRET_KEY``, PayPal
with ``PAYPAL_CLIENT_ID`` and ``PAYPAL_CLIENT_SECRET``. The offline sandbox (which pays for
free) stands in when neither is, and only where it is enabled (``PAYMENTS_SANDBOX_ENABLED``,
by default only with ``DEBUG``). So a production site without keys offers nothing at all.
"""

from django.utils.module_loading import import_string

from .. import app_settings
from ..exceptions import ProviderNotConfigured
from .base import PaymentProvider

STRIPE, PAYPAL, SANDBOX = "STRIPE", "PAYPAL", "SANDBOX"

#: Adapter class per provider, in the order the buy page offers them.
PROVIDERS: dict[str, str] = {
    STRIPE: "payments.providers.stripe_subscriptions.StripeBillingProvider",
    PAYPAL: "payments.providers.paypal.PayPalProvider",
    SANDBOX: "payments.providers.sandbox_subscriptions.SandboxBillingProvider",
}


def _real_provider_configured(name: str) -> bool:
    if name == STRIPE:
        return bool(app_settings.stripe_secret_key())
    if name == PAYPAL:
        return app_settings.paypal_configured()
    return False


def available_providers() -> list[str]:
    """The providers a buyer can pay with here, preferred first (empty when none is)."""
    return [name for name in PROVIDERS if is_available(name)]


def is_available(name: str) -> bool:
    """Whether a buyer can pay with ``name`` here, reading only the settings that decide it: a
    real provider's own; for the sandbox, whether it is enabled and no real one is set."""
    if name == SANDBOX:
        return app_settings.sandbox_enabled() and not any(
            _real_provider_configured(other) for other in PROVIDERS if other != SANDBOX
        )
    return name in PROVIDERS and _real_provider_configured(name)


def get_provider(name: str) -> PaymentProvider:
    """The adapter for ``name``. Raises ProviderNotConfigured when it is not available here."""
    if name not in PROVIDERS:
        raise ProviderNotConfigured(f"Unknown payment provider {name!r}.")
    if not is_available(name):
        raise ProviderNotConfigured(f"The {name.title()} provider is not configured here.")
    try:
        cls = import_string(PROVIDERS[name])
    except ImportError as exc:
        raise ProviderNotConfigured(f"The {name.title()} adapter cannot be loaded: {exc}") from exc
    return cls()


def default_provider() -> str:
    """The preferred available provider. Raises ProviderNotConfigured when there is none."""
    names = available_providers()
    if not names:
        raise ProviderNotConfigured("No payment method is available here.")
    return names[0]
