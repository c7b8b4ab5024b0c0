"""The credits app's settings, read from django.conf.settings in one place, with defaults.

Every value is read at access time (not import time) and remembered until a setting changes
(see ``core.app_settings``), so ``override_settings`` works and a changed setting takes effect
without a restart of the importing module. ``credits.checks``
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
CREDITS_LOT_PRIORITY           100 for every source        burn order rank of a lot, by
                                                           source (lower burns first);
                                                           sources left out keep 100
CREDITS_LOT_EXPIRY             purchase None, trial 30     how long a lot stays spendable,
                               days, regeneration None     by source (a timedelta, whole
                                                           seconds, or None: never); other
                                                           sources expire as their grant
                                                           says (no expiry when it says none)
CREDITS_LOT_EXPIRY_BATCH       500                         lots the expiry task expires per
                                                           run at most
CREDITS_CAP_TIMEZONE           "UTC"                       the time zone whose calendar
                                                           days and months the spending
                                                           caps count in (an IANA name)
=============================  ==========================  ==============================
"""

from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.app_settings import AppSettings, Setting, to_timedelta

_WHOLE = {"type": int, "whole": True}

#: The lot sources (``credits.models.LotSource`` values; not imported: the models read these
#: settings).
LOT_SOURCES = (
    "purchase",
    "subscription",
    "rollover",
    "trial",
    "bonus",
    "voucher",
    "regeneration",
    "adjustment",
    "opening",
)
DEFAULT_LOT_PRIORITY = 100
#: Sources whose lots expire by setting; the others are given their expiry where granted.
DEFAULT_LOT_EXPIRY = {"purchase": None, "trial": timedelta(days=30), "regeneration": None}


def _per_source(value) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"not a mapping of lot source to value: {value!r}")
    unknown = sorted(set(value) - set(LOT_SOURCES))
    if unknown:
        raise ValueError(f"unknown lot sources {unknown}; the sources are {list(LOT_SOURCES)}")
    return value


def lot_priorities(value) -> dict[str, int]:
    """Every source's priority: the given ones over the default (a SMALLINT, -32768..32767)."""
    given = _per_source(value)
    for source, rank in given.items():
        if isinstance(rank, bool) or not isinstance(rank, int) or not -32768 <= rank <= 32767:
            raise ValueError(f"the priority of {source!r} must be a whole number, not {rank!r}")
    return {source: given.get(source, DEFAULT_LOT_PRIORITY) for source in LOT_SOURCES}


def lot_expiries(value) -> dict[str, timedelta | None]:
    """The sources' expiries: the given ones over the defaults (None: never expires)."""
    given = _per_source(value)
    merged = {**DEFAULT_LOT_EXPIRY}
    for source, after in given.items():
        if after is not None:
            after = to_timedelta(after)
            if after <= timedelta(0):
                raise ValueError(f"the expiry of {source!r} must be positive, not {after!r}")
        merged[source] = after
    return merged


def time_zone_name(value) -> str:
    """An IANA time zone name both Python and PostgreSQL know (``zoneinfo`` reads the same
    database)."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"not a time zone name: {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


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
    LOT_PRIORITY = Setting(
        "CREDITS_LOT_PRIORITY",
        lambda: lot_priorities({}),
        lot_priorities,
        check_id="credits.E010",
        meaning="a mapping of lot source to burn-order priority, lower first",
    )
    LOT_EXPIRY = Setting(
        "CREDITS_LOT_EXPIRY",
        lambda: lot_expiries({}),
        lot_expiries,
        check_id="credits.E011",
        meaning="a mapping of lot source to a duration or None",
    )
    LOT_EXPIRY_BATCH = Setting(
        "CREDITS_LOT_EXPIRY_BATCH",
        500,
        **_WHOLE,
        minimum=1,
        check_id="credits.E012",
        meaning="lots expired per run of the expiry task",
    )

    CAP_TIMEZONE = Setting(
        "CREDITS_CAP_TIMEZONE",
        "UTC",
        time_zone_name,
        check_id="credits.E013",
        meaning="an IANA time zone name such as 'UTC' or 'Europe/Paris'",
    )

    def lot_priority(self, source: str) -> int:
        return self.LOT_PRIORITY[source]

    def lot_expiry(self, source: str) -> timedelta | None:
        """The expiry the settings give ``source``'s lots (None: never, or set at the grant)."""
        return self.LOT_EXPIRY.get(source)

    @property
    def REGEN_INTERVAL_SECONDS(self) -> int:
        return int(self.REGEN_INTERVAL.total_seconds())

    @property
    def REGEN_ENABLED(self) -> bool:
        return self.REGEN_CAP > 0 and self.REGEN_AMOUNT > 0


app_settings = CreditsSettings()
#: The defaults, by setting name.
DEFAULTS = app_settings.defaults()
