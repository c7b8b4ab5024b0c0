"""System checks of the payments settings (run by ``manage.py check`` and at start-up)."""

from django.conf import settings
from django.core import checks

from . import app_settings


@checks.register(checks.Tags.security, deploy=False)
def check_payment_settings(app_configs=None, **kwargs) -> list:
    errors = []
    if app_settings.stripe_secret_key() and not app_settings.stripe_webhook_secret():
        errors.append(checks.Error(
            "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: Stripe's webhooks would all be refused.",
            hint="Set STRIPE_WEBHOOK_SECRET to the whsec_ secret of the endpoint pointing at /webhooks/stripe/.",
            id="payments.E001",
        ))
    minutes = app_settings.stripe_checkout_expires_minutes()
    if not 30 <= minutes <= 1440:
        errors.append(checks.Error(
            f"STRIPE_CHECKOUT_EXPIRES_MINUTES is {minutes}; Stripe accepts 30 to 1440.", id="payments.E002"))
    if app_settings.webhook_max_attempts() < 1:
        errors.append(checks.Error("PAYMENTS_WEBHOOK_MAX_ATTEMPTS must be at least 1.", id="payments.E003"))
    for name, value in (("PAYMENTS_WEBHOOK_RETRY_BASE_SECONDS", app_settings.webhook_retry_base_seconds()),
                        ("PAYMENTS_WEBHOOK_STUCK_AFTER_SECONDS", app_settings.webhook_stuck_after_seconds())):
        if value < 1:
            errors.append(checks.Error(f"{name} is {value}; it must be at least 1 second.", id="payments.E010"))
    return errors


@checks.register(checks.Tags.security, deploy=True)
def check_payment_deployment(app_configs=None, **kwargs) -> list:
    """``check --deploy``: production must never offer the sandbox, and should sell something."""
    from .providers import SANDBOX, available_providers

    if settings.DEBUG:
        return []
    providers = available_providers()
    if SANDBOX in providers:
        return [checks.Error(
            "The offline sandbox payment provider is offered with DEBUG off: anyone can buy credits for free "
            "on its checkout page.",
            hint="Set PAYMENTS_SANDBOX_ENABLED=false (the default without DEBUG) and configure Stripe "
                 "(STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET) or PayPal (PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET).",
            id="payments.E004",
        )]
    if not providers:
        return [checks.Warning(
            "No payment provider is configured: nothing can be bought (the pricing page says so).",
            hint="Configure Stripe (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET) or PayPal "
                 "(PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET).",
            id="payments.W002",
        )]
    return []
