"""System checks of the payments settings (run by ``manage.py check`` and at start-up)."""

from django.conf import settings
from django.core import checks

from . import app_settings


@checks.register(checks.Tags.security, deploy=False)
def check_payment_settings(app_configs=None, **kwargs) -> list:
    errors = app_settings.app_settings.check()  # types and bounds: payments.E002, E003, E010, E011
    if app_settings.stripe_secret_key() and not app_settings.stripe_webhook_secret():
        errors.append(
            checks.Error(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: Stripe's webhooks would all be refused.",
                hint="Set STRIPE_WEBHOOK_SECRET to the whsec_ secret of the endpoint pointing at /webhooks/stripe/.",
                id="payments.E001",
            )
        )
    try:
        app_settings.invoice_tax_rate()
    except ValueError as exc:
        errors.append(checks.Error(str(exc), id="payments.E012"))
    return errors


@checks.register(checks.Tags.security, deploy=True)
def check_payment_deployment(app_configs=None, **kwargs) -> list:
    """``check --deploy``: production must never offer the sandbox, and should sell something."""
    from .providers import SANDBOX, available_providers

    if settings.DEBUG:
        return []
    providers = available_providers()
    if SANDBOX in providers:
        return [
            checks.Error(
                "The offline sandbox payment provider is offered with DEBUG off: anyone can buy credits for free "
                "on its checkout page.",
                hint="Set PAYMENTS_SANDBOX_ENABLED=false (the default without DEBUG) and configure Stripe "
                "(STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET) or PayPal (PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET).",
                id="payments.E004",
            )
        ]
    if not providers:
        return [
            checks.Warning(
                "No payment provider is configured: nothing can be bought (the pricing page says so).",
                hint="Configure Stripe (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET) or PayPal "
                "(PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET).",
                id="payments.W002",
            )
        ]
    return []
