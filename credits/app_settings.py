"""The credits app's settings, read from django.conf.settings in one place, with defaults.

Every value is read at access time (not import time), so ``override_settings`` works and a
changed setting takes effect without a restart of the importing module. ``credits.checks``
validates them at start-up.

=============================  ==========================  ==============================
Setting                        Default                     Meaning
=============================  ==========================  ==============================
CREDITS_TRIAL_GRANT            10                          credits granted once when a
                                                           user's email is verified (0: off)
CREDITS_REGEN_INTERVAL         timedelta(minutes=15)       free-tier regeneration period
                                                           (a timedelta or whole seconds)
CREDITS_REGEN_AMOUNT           1                           credits regenerated per period
CREDITS_REGEN_CAP              100                         regeneration tops up to this
                                                           balance, never beyond (0: off)
CREDITS_IDEMPOTENCY_TTL        timedelta(days=7)           how long an idempotency record
                                                           is kept by default
CREDITS_HISTORY_PAGE_SIZE      50                          entries per history page
CREDITS_EXPORT_CHUNK_SIZE      2000                        rows fetched per round trip by
                                                           the streaming CSV export
CREDITS_MAX_AMOUNT             1_000_000_000               largest single movement accepted
CREDITS_PREPARED_STATEMENTS    True                        prepare the ledger statements
                                                           once per connection (PostgreSQL;
                                                           False behind a transaction-pooling
                                                           PgBouncer older than 1.21)
=============================  ==========================  ==============================
"""

from datetime import timedelta

from django.conf import settings

DEFAULTS = {
    "CREDITS_TRIAL_GRANT": 10,
    "CREDITS_REGEN_INTERVAL": timedelta(minutes=15),
    "CREDITS_REGEN_AMOUNT": 1,
    "CREDITS_REGEN_CAP": 100,
    "CREDITS_IDEMPOTENCY_TTL": timedelta(days=7),
    "CREDITS_HISTORY_PAGE_SIZE": 50,
    "CREDITS_EXPORT_CHUNK_SIZE": 2000,
    "CREDITS_MAX_AMOUNT": 1_000_000_000,
    "CREDITS_PREPARED_STATEMENTS": True,
}


def _get(name: str):
    return getattr(settings, name, DEFAULTS[name])


def _as_timedelta(value) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


class AppSettings:
    """Typed access to the settings above: ``from credits.app_settings import app_settings``."""

    @property
    def TRIAL_GRANT(self) -> int:
        return _get("CREDITS_TRIAL_GRANT")

    @property
    def REGEN_INTERVAL(self) -> timedelta:
        return _as_timedelta(_get("CREDITS_REGEN_INTERVAL"))

    @property
    def REGEN_INTERVAL_SECONDS(self) -> int:
        return int(self.REGEN_INTERVAL.total_seconds())

    @property
    def REGEN_AMOUNT(self) -> int:
        return _get("CREDITS_REGEN_AMOUNT")

    @property
    def REGEN_CAP(self) -> int:
        return _get("CREDITS_REGEN_CAP")

    @property
    def REGEN_ENABLED(self) -> bool:
        return self.REGEN_CAP > 0 and self.REGEN_AMOUNT > 0

    @property
    def IDEMPOTENCY_TTL(self) -> timedelta:
        return _as_timedelta(_get("CREDITS_IDEMPOTENCY_TTL"))

    @property
    def HISTORY_PAGE_SIZE(self) -> int:
        return _get("CREDITS_HISTORY_PAGE_SIZE")

    @property
    def EXPORT_CHUNK_SIZE(self) -> int:
        return _get("CREDITS_EXPORT_CHUNK_SIZE")

    @property
    def MAX_AMOUNT(self) -> int:
        return _get("CREDITS_MAX_AMOUNT")


    @property
    def PREPARED_STATEMENTS(self) -> bool:
        return _get("CREDITS_PREPARED_STATEMENTS")


app_settings = AppSettings()
