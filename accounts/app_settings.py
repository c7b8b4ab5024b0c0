"""Settings of the accounts app, read from django.conf.settings on every use, with defaults.

=====================================  =========  ==============================================
Setting                                Default    Meaning
=====================================  =========  ==============================================
ACCOUNTS_EMAIL_RETRY_BASE_SECONDS      30         wait after a failed send, doubled per attempt
ACCOUNTS_EMAIL_RETRY_MAX_SECONDS       3600       longest wait between two attempts
ACCOUNTS_EMAIL_MAX_ATTEMPTS            12         attempts before an email is marked FAILED
ACCOUNTS_EMAIL_SEND_LEASE_SECONDS      300        how long one attempt holds an email; a worker
                                                  that dies mid-send leaves it due again then
                                                  (must exceed EMAIL_TIMEOUT)
=====================================  =========  ==============================================

With the defaults an email that cannot be sent is retried for about eight hours.
``accounts.checks`` validates these at start-up.

The beat sweep that sends overdue emails runs every ``EMAIL_SWEEP_INTERVAL_DEFAULT``
seconds; like every beat interval it is changed through the environment
(``ACCOUNTS_EMAIL_SWEEP_INTERVAL``, read by config/settings/schedule.py).
"""

from datetime import timedelta

from core.app_settings import AppSettings, Setting

#: Seconds between two beat sweeps of the outbox (the default of ACCOUNTS_EMAIL_SWEEP_INTERVAL).
EMAIL_SWEEP_INTERVAL_DEFAULT = 60


class AccountsSettings(AppSettings):
    EMAIL_RETRY_BASE_SECONDS = Setting(
        "ACCOUNTS_EMAIL_RETRY_BASE_SECONDS", 30, int, above=0, check_id="accounts.E001"
    )
    EMAIL_RETRY_MAX_SECONDS = Setting(
        "ACCOUNTS_EMAIL_RETRY_MAX_SECONDS", 3600, int, above=0, check_id="accounts.E001"
    )
    EMAIL_MAX_ATTEMPTS = Setting(
        "ACCOUNTS_EMAIL_MAX_ATTEMPTS", 12, int, above=0, check_id="accounts.E001"
    )
    EMAIL_SEND_LEASE_SECONDS = Setting(
        "ACCOUNTS_EMAIL_SEND_LEASE_SECONDS", 300, int, above=0, check_id="accounts.E001"
    )
    #: Proxies in front of the app that append to X-Forwarded-For (see accounts/net.py).
    TRUSTED_PROXY_COUNT = Setting(
        "TRUSTED_PROXY_COUNT", 0, int, minimum=0, check_id="accounts.E004"
    )


app_settings = AccountsSettings()
#: The outbox settings' defaults, by name.
DEFAULTS = {
    name: value for name, value in app_settings.defaults().items() if name.startswith("ACCOUNTS_")
}


def email_max_attempts() -> int:
    return app_settings.EMAIL_MAX_ATTEMPTS


def email_send_lease() -> timedelta:
    return timedelta(seconds=app_settings.EMAIL_SEND_LEASE_SECONDS)


def email_retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (1, 2, ...): doubling, capped."""
    base = app_settings.EMAIL_RETRY_BASE_SECONDS
    cap = app_settings.EMAIL_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** min(max(attempts - 1, 0), 30)))
