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

from django.conf import settings

#: Seconds between two beat sweeps of the outbox (the default of ACCOUNTS_EMAIL_SWEEP_INTERVAL).
EMAIL_SWEEP_INTERVAL_DEFAULT = 60

DEFAULTS = {
    "ACCOUNTS_EMAIL_RETRY_BASE_SECONDS": 30,
    "ACCOUNTS_EMAIL_RETRY_MAX_SECONDS": 3600,
    "ACCOUNTS_EMAIL_MAX_ATTEMPTS": 12,
    "ACCOUNTS_EMAIL_SEND_LEASE_SECONDS": 300,
}


def _get(name: str):
    return getattr(settings, name, DEFAULTS[name])


def email_max_attempts() -> int:
    return int(_get("ACCOUNTS_EMAIL_MAX_ATTEMPTS"))


def email_send_lease() -> timedelta:
    return timedelta(seconds=int(_get("ACCOUNTS_EMAIL_SEND_LEASE_SECONDS")))


def email_retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (1, 2, ...): doubling, capped."""
    base = int(_get("ACCOUNTS_EMAIL_RETRY_BASE_SECONDS"))
    cap = int(_get("ACCOUNTS_EMAIL_RETRY_MAX_SECONDS"))
    return timedelta(seconds=min(cap, base * 2 ** min(max(attempts - 1, 0), 30)))
