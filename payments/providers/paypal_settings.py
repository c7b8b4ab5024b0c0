"""PayPal settings, read from django.conf.settings with defaults, in one place.

Read on every use (not at import) so an environment change or a test override is seen.
A name missing from the Django settings falls back to the environment variable of the
same name, so a deployment configures PayPal without editing settings modules.

- ``PAYPAL_CLIENT_ID`` / ``PAYPAL_CLIENT_SECRET``: the REST app's credentials.
- ``PAYPAL_WEBHOOK_ID``: the id PayPal gave the webhook pointing at /webhooks/paypal/; it
  is part of every signed message, so PayPal counts as configured only with all three.
- ``PAYPAL_ENVIRONMENT``: ``sandbox`` (default) or ``live``.
- ``PAYPAL_BASE_URL``: overrides the API base URL the environment implies.
- ``PAYPAL_TIMEOUT``: seconds for each API call (default 20).
- ``PAYPAL_WEBHOOK_TOLERANCE``: how far ahead of our clock a transmission time may be, in
  seconds (default 900). An old transmission time is not refused: PayPal retries an event
  for up to three days (see payments/paypal_webhooks.py).
- ``PAYPAL_CERT_TIMEOUT``: seconds for fetching a signing certificate (default 5).
- ``PAYPAL_CERT_CACHE_SECONDS``: how long a fetched certificate is cached (default 86400).
- ``PAYPAL_WEBHOOK_CERT_EXTRA_ORIGINS``: origins (``scheme://host:port``) besides
  ``https://*.paypal.com`` that certificates may come from. Ignored when the environment
  is ``live``; the tests list their local fake here.
- ``PAYPAL_BRAND_NAME``: shown on PayPal's approval page (default "Credits").
- ``PAYPAL_INVOICE_PREFIX``: put before our order id to make PayPal's ``invoice_id``, which
  must be unique across the PayPal account (default "credits-order-"; give staging and
  production different prefixes when they share an account).
"""

import os
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

LIVE_BASE_URL = "https://api-m.paypal.com"
SANDBOX_BASE_URL = "https://api-m.sandbox.paypal.com"


@dataclass(frozen=True)
class PayPalSettings:
    client_id: str
    client_secret: str
    webhook_id: str
    environment: str
    base_url: str
    timeout: float
    webhook_tolerance: int
    cert_timeout: float
    cert_cache_seconds: int
    cert_extra_origins: tuple[str, ...]
    brand_name: str
    invoice_prefix: str

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret and self.webhook_id)

    @property
    def live(self) -> bool:
        return self.environment == "live"


def _get(name: str, default=""):
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return default if value is None or value == "" else value


def paypal_settings() -> PayPalSettings:
    environment = str(_get("PAYPAL_ENVIRONMENT", "sandbox")).strip().lower()
    if environment not in ("sandbox", "live"):
        raise ImproperlyConfigured(
            f"PAYPAL_ENVIRONMENT must be 'sandbox' or 'live', not {environment!r}."
        )
    default_base = LIVE_BASE_URL if environment == "live" else SANDBOX_BASE_URL
    base_url = str(_get("PAYPAL_BASE_URL", default_base)).rstrip("/")
    extra = _get("PAYPAL_WEBHOOK_CERT_EXTRA_ORIGINS", ())
    if isinstance(extra, str):
        extra = [part for part in extra.split(",") if part.strip()]
    return PayPalSettings(
        client_id=str(_get("PAYPAL_CLIENT_ID")),
        client_secret=str(_get("PAYPAL_CLIENT_SECRET")),
        webhook_id=str(_get("PAYPAL_WEBHOOK_ID")),
        environment=environment,
        base_url=base_url,
        timeout=float(_get("PAYPAL_TIMEOUT", 20)),
        webhook_tolerance=int(_get("PAYPAL_WEBHOOK_TOLERANCE", 900)),
        cert_timeout=float(_get("PAYPAL_CERT_TIMEOUT", 5)),
        cert_cache_seconds=int(_get("PAYPAL_CERT_CACHE_SECONDS", 86400)),
        cert_extra_origins=tuple(sorted(origin.strip().rstrip("/").lower() for origin in extra)),
        brand_name=str(_get("PAYPAL_BRAND_NAME", "Credits")),
        invoice_prefix=str(_get("PAYPAL_INVOICE_PREFIX", "credits-order-")),
    )
