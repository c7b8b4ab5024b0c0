"""Start-up checks of the accounts app's settings (see accounts/app_settings.py)."""

from django.conf import settings
from django.core.checks import Error, register

from .app_settings import AccountsSettings, app_settings


@register()
def check_email_outbox_settings(app_configs=None, **kwargs) -> list[Error]:
    errors = app_settings.check()
    if errors:
        return errors
    if not isinstance(AccountsSettings.EMAIL_MAX_ATTEMPTS.given(), int):
        errors.append(
            Error("ACCOUNTS_EMAIL_MAX_ATTEMPTS must be a whole number.", id="accounts.E002")
        )
    lease = app_settings.EMAIL_SEND_LEASE_SECONDS
    timeout = getattr(settings, "EMAIL_TIMEOUT", None)
    if timeout is not None and lease <= timeout:
        errors.append(
            Error(
                f"ACCOUNTS_EMAIL_SEND_LEASE_SECONDS ({lease}) must be longer than EMAIL_TIMEOUT ({timeout}): "
                "an email still being sent would be sent again.",
                id="accounts.E003",
            )
        )
    return errors
