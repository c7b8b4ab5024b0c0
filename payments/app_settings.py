"""Settings of the payments app, read in one place from django.conf.settings with defaults.

Read on every use (not at import), so an environment change or a test override is seen. A
name missing from the Django settings falls back to the environment variable of the same
name, so a deployment configures providers without editing settings modules.

- ``STRIPE_SECRET_KEY``: turns Stripe on. ``STRIPE_WEBHOOK_SECRET``: the ``whsec_`` secret of
  the endpoint pointing at /webhooks/stripe/ (required with the key).
- ``STRIPE_API_BASE``: overrides Stripe's API address (the tests point it at a local fake).
- ``STRIPE_CHECKOUT_EXPIRES_MINUTES``: how long a Checkout Session stays open (30 to 1440,
  default 60).
- ``STRIPE_WEBHOOK_TOLERANCE``: how old a signed delivery may be, in seconds (default 300).
- ``PAYPAL_CLIENT_ID`` / ``PAYPAL_CLIENT_SECRET``: turn PayPal on (its own settings live in
  payments/providers/paypal_settings.py).
- ``PAYMENTS_SANDBOX_ENABLED``: whether the offline sandbox provider may run here at all
  (default: on with ``DEBUG``, off without). When on, it stands in for buyers while no real
  provider is configured; when off, it is never offered and its checkout page and webhook
  endpoint answer 404. Its checkout page pays for free: ``check --deploy`` fails whenever
  production would offer it.
- ``SANDBOX_WEBHOOK_SECRET``: the sandbox's signing secret; derived from ``SECRET_KEY`` by
  default.
- ``PAYMENTS_SANDBOX_WEBHOOK_URL``: where the sandbox delivers its webhooks (default: the
  app's own /webhooks/sandbox/ on the host the buyer used, else ``SITE_URL``).
- ``PAYMENTS_WEBHOOK_MAX_ATTEMPTS`` (default 8) and ``PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS``
  (default 10, doubled per attempt, at most an hour) for processing stored events.
- ``PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS``: the lease of a queued or running attempt (default
  60): an event not settled this long after it was queued, started, or due for its retry is
  queued again by the sweep (``payments.tasks.requeue_stuck_webhook_events``, every
  ``BEAT_REQUEUE_STUCK_WEBHOOK_EVENTS_SECONDS``), whatever its state.
- ``PAYMENTS_STATUS_RECHECK_SECONDS``: the success page asks the provider at most this often
  per order while it waits for the payment (default 5).
"""

import hashlib
import hmac
import os
from datetime import timedelta

from django.conf import settings


def _get(name: str, default=None):
    value = getattr(settings, name, None)
    if value in (None, ""):
        value = os.environ.get(name)
    return default if value in (None, "") else value


def _int(name: str, default: int) -> int:
    return int(_get(name, default))


def _bool(name: str, default: bool = False) -> bool:
    value = _get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def site_url() -> str:
    return str(_get("SITE_URL", "http://127.0.0.1:8000")).rstrip("/")


# --- Stripe ---------------------------------------------------------------------------------


def stripe_secret_key() -> str:
    return _get("STRIPE_SECRET_KEY", "")


def stripe_webhook_secret() -> str:
    return _get("STRIPE_WEBHOOK_SECRET", "")


def stripe_api_base() -> str:
    return _get("STRIPE_API_BASE", "")


def stripe_checkout_expires_minutes() -> int:
    return _int("STRIPE_CHECKOUT_EXPIRES_MINUTES", 60)


def stripe_webhook_tolerance() -> int:
    return _int("STRIPE_WEBHOOK_TOLERANCE", 300)


def stripe_max_network_retries() -> int:
    return _int("STRIPE_MAX_NETWORK_RETRIES", 2)


# --- PayPal (only whether it is configured; the adapter reads the rest) ---------------------


def paypal_configured() -> bool:
    return bool(_get("PAYPAL_CLIENT_ID", "") and _get("PAYPAL_CLIENT_SECRET", ""))


# --- the offline sandbox provider -----------------------------------------------------------


def sandbox_webhook_secret() -> str:
    explicit = _get("SANDBOX_WEBHOOK_SECRET", "")
    if explicit:
        return explicit
    derived = hmac.new(settings.SECRET_KEY.encode(), b"payments.sandbox.webhook-secret", hashlib.sha256)
    return "whsec_sbx_" + derived.hexdigest()


def sandbox_enabled() -> bool:
    """Whether the sandbox may run here: ``PAYMENTS_SANDBOX_ENABLED``, by default ``DEBUG``."""
    return _bool("PAYMENTS_SANDBOX_ENABLED", settings.DEBUG)


def sandbox_webhook_url() -> str:
    return _get("PAYMENTS_SANDBOX_WEBHOOK_URL", "")


def sandbox_webhook_tolerance() -> int:
    return _int("SANDBOX_WEBHOOK_TOLERANCE", 300)


# --- webhook processing ---------------------------------------------------------------------


def webhook_max_attempts() -> int:
    return _int("PAYMENTS_WEBHOOK_MAX_ATTEMPTS", 8)


def webhook_retry_base_seconds() -> int:
    return _int("PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS", 10)


def webhook_stuck_after_seconds() -> int:
    return _int("PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS", 60)


def webhook_lease() -> timedelta:
    """How long a queued or running attempt may take before the sweep queues the event again."""
    return timedelta(seconds=webhook_stuck_after_seconds())


def status_recheck_seconds() -> int:
    return _int("PAYMENTS_STATUS_RECHECK_SECONDS", 5)
