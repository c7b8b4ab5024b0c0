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

from core.app_settings import AppSettings, Setting

_WHOLE = {"type": int, "whole": True}


class CreditsSettings(AppSettings):
    """Typed access to the settings above: ``from credits.app_settings import app_settings``."""

    TRIAL_GRANT = Setting(
        "CREDITS_TRIAL_GRANT",
        10,
        **_WHOLE,
        minimum=0,
        check_id="credits.E001",
        meaning="credits granted on email verification; 0 turns it off",
    )
    REGEN_AMOUNT = Setting(
        "CREDITS_REGEN_AMOUNT",
        1,
        **_WHOLE,
        minimum=0,
        check_id="credits.E002",
        meaning="credits regenerated per interval; 0 turns regeneration off",
    )
    REGEN_CAP = Setting(
        "CREDITS_REGEN_CAP",
        100,
        **_WHOLE,
        minimum=0,
        check_id="credits.E003",
        meaning="the balance regeneration tops up to; 0 turns regeneration off",
    )
    HISTORY_PAGE_SIZE = Setting(
        "CREDITS_HISTORY_PAGE_SIZE",
        50,
        **_WHOLE,
        minimum=1,
        check_id="credits.E004",
        meaning="entries per history page",
    )
    EXPORT_CHUNK_SIZE = Setting(
        "CREDITS_EXPORT_CHUNK_SIZE",
        2000,
        **_WHOLE,
        minimum=1,
        check_id="credits.E005",
        meaning="rows per round trip of the CSV export",
    )
    MAX_AMOUNT = Setting(
        "CREDITS_MAX_AMOUNT",
        1_000_000_000,
        **_WHOLE,
        minimum=1,
        check_id="credits.E006",
        meaning="the largest single movement of credits",
    )
    REGEN_INTERVAL = Setting(
        "CREDITS_REGEN_INTERVAL",
        timedelta(minutes=15),
        timedelta,
        whole=True,
        minimum=timedelta(seconds=1),
        check_id="credits.E007",
        meaning="the free-tier regeneration period",
    )
    IDEMPOTENCY_TTL = Setting(
        "CREDITS_IDEMPOTENCY_TTL",
        timedelta(days=7),
        timedelta,
        whole=True,
        minimum=timedelta(seconds=1),
        check_id="credits.E008",
        meaning="how long an idempotency record is kept",
    )
    PREPARED_STATEMENTS = Setting(
        "CREDITS_PREPARED_STATEMENTS",
        True,
        bool,
        whole=True,
        check_id="credits.E009",
        meaning="prepare the ledger statements once per connection",
    )

    @property
    def REGEN_INTERVAL_SECONDS(self) -> int:
        return int(self.REGEN_INTERVAL.total_seconds())

    @property
    def REGEN_ENABLED(self) -> bool:
        return self.REGEN_CAP > 0 and self.REGEN_AMOUNT > 0


app_settings = CreditsSettings()
#: The defaults, by setting name.
DEFAULTS = app_settings.defaults()
