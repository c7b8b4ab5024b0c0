"""Settings of the back office, read in one place from django.conf.settings with defaults.

- ``BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD`` (default 500): adjustments whose size (either
  sign) is above this need a second staff member.
- ``BACKOFFICE_DASHBOARD_MAX_DAYS`` (default 366): the longest date range the dashboard accepts.

The big-table changelist settings (``BACKOFFICE_ESTIMATED_COUNT_THRESHOLD``,
``BACKOFFICE_FILTERED_COUNT_CAP``) are read by the shared admin paginator in ``core``.
``backoffice.checks`` validates these at start-up.
"""

from core.app_settings import AppSettings, Setting


class BackofficeSettings(AppSettings):
    ADJUSTMENT_APPROVAL_THRESHOLD = Setting(
        "BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD",
        500,
        int,
        minimum=0,
        check_id="backoffice.E001",
        meaning="adjustments above this need a second staff member",
    )
    DASHBOARD_MAX_DAYS = Setting(
        "BACKOFFICE_DASHBOARD_MAX_DAYS",
        366,
        int,
        minimum=1,
        check_id="backoffice.E001",
        meaning="the longest date range the dashboard accepts",
    )


app_settings = BackofficeSettings()


def adjustment_approval_threshold() -> int:
    """Adjustments whose size (either sign) is above this need a second staff member."""
    return app_settings.ADJUSTMENT_APPROVAL_THRESHOLD


def dashboard_max_days() -> int:
    """The longest date range the dashboard accepts."""
    return app_settings.DASHBOARD_MAX_DAYS
