"""Start-up checks of the accounts app's settings (see accounts/app_settings.py)."""

from django.conf import settings
from django.core.checks import Error, register

from .app_settings import DEFAULTS


def _positive_number(name: str) -> list[Error]:
    value = getattr(settings, name, DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return [Error(f"{name} must be a number above zero, not {value!r}.", id="accounts.E001")]
    return []


@register()
def check_email_outbox_settings(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    for name in DEFAULTS:
        errors += _positive_number(name)
    if errors:
        return errors
    attempts = getattr(settings, "ACCOUNTS_EMAIL_MAX_ATTEMPTS", DEFAULTS["ACCOUNTS_EMAIL_MAX_ATTEMPTS"])
    if not isinstance(attempts, int):
        errors.append(Error("ACCOUNTS_EMAIL_MAX_ATTEMPTS must be a whole number.", id="accounts.E002"))
    lease = getattr(settings, "ACCOUNTS_EMAIL_SEND_LEASE_SECONDS", DEFAULTS["ACCOUNTS_EMAIL_SEND_LEASE_SECONDS"])
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
