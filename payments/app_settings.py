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
- ``PAYMENTS_WEBHOOK_DISPATCH_SECONDS``: how often the dispatcher in each worker that reads the
  webhooks queue looks for due events and queues them (default 0.2; 0 runs no dispatcher,
  leaving the sweep alone to queue events). ``PAYMENTS_WEBHOOK_DISPATCH_BATCH``: the most
  events it claims and queues at once (default 200).
- ``PAYMENTS_WEBHOOK_INGEST_BATCH``: the most deliveries one web process stores with one
  INSERT and one commit, when several arrive while another is being stored (default 16; each
  size up to it is a prepared statement of its own; 1: each request stores its own, see
  ``payments.webhooks``).
- ``PAYMENTS_STATUS_RECHECK_SECONDS``: the success page asks the provider at most this often
  per order while it waits for the payment (default 5).
- ``INVOICE_SELLER_NAME``, ``INVOICE_SELLER_ADDRESS`` (lines separated by ``|``),
  ``INVOICE_SELLER_TAX_ID``: the seller printed on every invoice and credit note.
  ``INVOICE_TAX_RATE`` (percent, default 0: no tax line) and ``INVOICE_TAX_LABEL`` (VAT):
  prices include the tax; each document shows its net amount and tax at the rate of its day.
- ``PAYMENTS_AUTOTOPUP_MAX_PER_DAY``: automatic top-ups per user and UTC day (default 3).
- ``PAYMENTS_RECONCILE_WINDOW_HOURS``: how far back a reconciliation run lists provider
  payments (default 24); ``PAYMENTS_RECONCILE_PENDING_DAYS``: how old a pending order may be
  and still be asked about (default 3).
"""

import hashlib
import hmac
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings

from core.app_settings import AppSettings, Setting


def _debug() -> bool:
    return settings.DEBUG


class PaymentsSettings(AppSettings):
    SITE_URL = Setting("SITE_URL", "http://127.0.0.1:8000", str, env=True)
    # Stripe
    STRIPE_SECRET_KEY = Setting("STRIPE_SECRET_KEY", "", str, env=True)
    STRIPE_WEBHOOK_SECRET = Setting("STRIPE_WEBHOOK_SECRET", "", str, env=True)
    STRIPE_API_BASE = Setting("STRIPE_API_BASE", "", str, env=True)
    STRIPE_CHECKOUT_EXPIRES_MINUTES = Setting(
        "STRIPE_CHECKOUT_EXPIRES_MINUTES",
        60,
        int,
        env=True,
        minimum=30,
        maximum=1440,
        check_id="payments.E002",
        meaning="Stripe accepts 30 to 1440",
    )
    STRIPE_WEBHOOK_TOLERANCE = Setting(
        "STRIPE_WEBHOOK_TOLERANCE", 300, int, env=True, minimum=1, check_id="payments.E011"
    )
    STRIPE_MAX_NETWORK_RETRIES = Setting(
        "STRIPE_MAX_NETWORK_RETRIES", 2, int, env=True, minimum=0, check_id="payments.E011"
    )
    # PayPal (only whether it is configured; payments/providers/paypal_settings.py reads the rest)
    PAYPAL_CLIENT_ID = Setting("PAYPAL_CLIENT_ID", "", str, env=True)
    PAYPAL_CLIENT_SECRET = Setting("PAYPAL_CLIENT_SECRET", "", str, env=True)
    # the offline sandbox provider
    SANDBOX_WEBHOOK_SECRET = Setting("SANDBOX_WEBHOOK_SECRET", "", str, env=True)
    SANDBOX_ENABLED = Setting(
        "PAYMENTS_SANDBOX_ENABLED", _debug, bool, env=True, check_id="payments.E011"
    )
    SANDBOX_WEBHOOK_URL = Setting("PAYMENTS_SANDBOX_WEBHOOK_URL", "", str, env=True)
    SANDBOX_WEBHOOK_TOLERANCE = Setting(
        "SANDBOX_WEBHOOK_TOLERANCE", 300, int, env=True, minimum=1, check_id="payments.E011"
    )
    # webhook processing
    WEBHOOK_MAX_ATTEMPTS = Setting(
        "PAYMENTS_WEBHOOK_MAX_ATTEMPTS", 8, int, env=True, minimum=1, check_id="payments.E003"
    )
    WEBHOOK_RETRY_BASE_SECONDS = Setting(
        "PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS",
        10,
        int,
        env=True,
        minimum=1,
        check_id="payments.E010",
        meaning="seconds",
    )
    WEBHOOK_STUCK_AFTER_SECONDS = Setting(
        "PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS",
        60,
        int,
        env=True,
        minimum=1,
        check_id="payments.E010",
        meaning="seconds",
    )
    WEBHOOK_DISPATCH_SECONDS = Setting(
        "PAYMENTS_WEBHOOK_DISPATCH_SECONDS",
        0.2,
        float,
        env=True,
        minimum=0,
        maximum=60,
        check_id="payments.E010",
        meaning="seconds",
    )
    WEBHOOK_DISPATCH_BATCH = Setting(
        "PAYMENTS_WEBHOOK_DISPATCH_BATCH",
        200,
        int,
        env=True,
        minimum=1,
        maximum=10000,
        check_id="payments.E010",
    )
    WEBHOOK_INGEST_BATCH = Setting(
        "PAYMENTS_WEBHOOK_INGEST_BATCH",
        16,
        int,
        env=True,
        minimum=1,
        maximum=1000,
        check_id="payments.E010",
    )
    STATUS_RECHECK_SECONDS = Setting(
        "PAYMENTS_STATUS_RECHECK_SECONDS", 5, int, env=True, minimum=0, check_id="payments.E011"
    )
    # reconciliation
    RECONCILE_WINDOW_HOURS = Setting(
        "PAYMENTS_RECONCILE_WINDOW_HOURS", 24, int, env=True, minimum=1, check_id="payments.E011"
    )
    RECONCILE_PENDING_DAYS = Setting(
        "PAYMENTS_RECONCILE_PENDING_DAYS", 3, int, env=True, minimum=0, check_id="payments.E011"
    )
    # invoices and credit notes: the seller, and the tax included in every price
    INVOICE_SELLER_NAME = Setting("INVOICE_SELLER_NAME", "Credits", str, env=True)
    INVOICE_SELLER_ADDRESS = Setting("INVOICE_SELLER_ADDRESS", "", str, env=True)
    INVOICE_SELLER_TAX_ID = Setting("INVOICE_SELLER_TAX_ID", "", str, env=True)
    INVOICE_TAX_RATE = Setting(
        "INVOICE_TAX_RATE",
        "0",
        str,
        env=True,
        check_id="payments.E012",
        meaning="a percentage from 0 to 100, e.g. 20 or 8.5 (0: no tax line)",
    )
    INVOICE_TAX_LABEL = Setting("INVOICE_TAX_LABEL", "VAT", str, env=True)
    # auto top-up
    AUTOTOPUP_MAX_PER_DAY = Setting(
        "PAYMENTS_AUTOTOPUP_MAX_PER_DAY", 3, int, env=True, minimum=1, check_id="payments.E011"
    )


app_settings = PaymentsSettings()


def site_url() -> str:
    return str(app_settings.SITE_URL).rstrip("/")


# --- Stripe ---------------------------------------------------------------------------------


def stripe_secret_key() -> str:
    return app_settings.STRIPE_SECRET_KEY


def stripe_webhook_secret() -> str:
    return app_settings.STRIPE_WEBHOOK_SECRET


def stripe_api_base() -> str:
    return app_settings.STRIPE_API_BASE


def stripe_checkout_expires_minutes() -> int:
    return app_settings.STRIPE_CHECKOUT_EXPIRES_MINUTES


def stripe_webhook_tolerance() -> int:
    return app_settings.STRIPE_WEBHOOK_TOLERANCE


def stripe_max_network_retries() -> int:
    return app_settings.STRIPE_MAX_NETWORK_RETRIES


# --- PayPal (only whether it is configured; the adapter reads the rest) ---------------------


def paypal_configured() -> bool:
    return bool(app_settings.PAYPAL_CLIENT_ID and app_settings.PAYPAL_CLIENT_SECRET)


# --- the offline sandbox provider -----------------------------------------------------------


def sandbox_webhook_secret() -> str:
    explicit = app_settings.SANDBOX_WEBHOOK_SECRET
    if explicit:
        return explicit
    derived = hmac.new(
        settings.SECRET_KEY.encode(), b"payments.sandbox.webhook-secret", hashlib.sha256
    )
    return "whsec_sbx_" + derived.hexdigest()


def sandbox_enabled() -> bool:
    """Whether the sandbox may run here: ``PAYMENTS_SANDBOX_ENABLED``, by default ``DEBUG``."""
    return app_settings.SANDBOX_ENABLED


def sandbox_webhook_url() -> str:
    return app_settings.SANDBOX_WEBHOOK_URL


def sandbox_webhook_tolerance() -> int:
    return app_settings.SANDBOX_WEBHOOK_TOLERANCE


# --- webhook processing ---------------------------------------------------------------------


def webhook_max_attempts() -> int:
    return app_settings.WEBHOOK_MAX_ATTEMPTS


def webhook_retry_base_seconds() -> int:
    return app_settings.WEBHOOK_RETRY_BASE_SECONDS


def webhook_stuck_after_seconds() -> int:
    return app_settings.WEBHOOK_STUCK_AFTER_SECONDS


def webhook_lease() -> timedelta:
    """How long a queued or running attempt may take before the sweep queues the event again."""
    return timedelta(seconds=webhook_stuck_after_seconds())


def webhook_dispatch_seconds() -> float:
    """How often a worker's dispatcher looks for due events; 0: no dispatcher."""
    return app_settings.WEBHOOK_DISPATCH_SECONDS


def webhook_dispatch_batch() -> int:
    return app_settings.WEBHOOK_DISPATCH_BATCH


def webhook_ingest_batch() -> int:
    return app_settings.WEBHOOK_INGEST_BATCH


def status_recheck_seconds() -> int:
    return app_settings.STATUS_RECHECK_SECONDS


# --- reconciliation -------------------------------------------------------------------------


def reconcile_window() -> timedelta:
    """How far back a reconciliation run lists the provider's payments."""
    return timedelta(hours=app_settings.RECONCILE_WINDOW_HOURS)


def invoice_tax_rate() -> Decimal:
    """The tax rate included in prices, in percent (0: none). A bad value raises ValueError."""
    try:
        rate = Decimal(str(app_settings.INVOICE_TAX_RATE).strip() or "0")
    except InvalidOperation:
        raise ValueError(
            f"INVOICE_TAX_RATE is not a number: {app_settings.INVOICE_TAX_RATE!r}"
        ) from None
    if not rate.is_finite() or not Decimal("0") <= rate <= Decimal("100"):
        raise ValueError(f"INVOICE_TAX_RATE must be from 0 to 100, not {rate}")
    return rate


def invoice_seller() -> dict:
    """Who issues the invoices: name, address lines (``|`` or newlines between), tax id."""
    address = str(app_settings.INVOICE_SELLER_ADDRESS).replace("|", "\n")
    return {
        "name": app_settings.INVOICE_SELLER_NAME,
        "address": "\n".join(line.strip() for line in address.splitlines() if line.strip()),
        "tax_id": app_settings.INVOICE_SELLER_TAX_ID,
    }


def autotopup_max_per_day() -> int:
    return app_settings.AUTOTOPUP_MAX_PER_DAY


def reconcile_pending_age() -> timedelta:
    """How old a pending order may be and still be asked about."""
    return timedelta(days=app_settings.RECONCILE_PENDING_DAYS)
