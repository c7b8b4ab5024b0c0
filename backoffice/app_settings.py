"""Settings of the back office, read in one place from django.conf.settings with defaults."""

from django.conf import settings


def adjustment_approval_threshold() -> int:
    """Adjustments whose size (either sign) is above this need a second staff member."""
    return int(getattr(settings, "BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD", 500))


def estimated_count_threshold() -> int:
    """Unfiltered changelists of tables estimated above this many rows show an estimate."""
    return int(getattr(settings, "BACKOFFICE_ESTIMATED_COUNT_THRESHOLD", 50_000))


def filtered_count_cap() -> int:
    """Filtered changelists count matching rows only up to this many."""
    return int(getattr(settings, "BACKOFFICE_FILTERED_COUNT_CAP", 10_000))


def dashboard_max_days() -> int:
    """The longest date range the dashboard accepts."""
    return int(getattr(settings, "BACKOFFICE_DASHBOARD_MAX_DAYS", 366))
