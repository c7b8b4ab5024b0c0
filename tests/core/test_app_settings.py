"""One settings helper: typed defaults read when used (environment where the app allows
it), bad values reported by the system checks with the app's check ids."""

from datetime import timedelta

import pytest
from django.core import checks
from django.test import override_settings

from accounts.app_settings import app_settings as accounts_settings
from backoffice.app_settings import app_settings as backoffice_settings
from credits.app_settings import app_settings as credits_settings
from generations.app_settings import app_settings as generations_settings
from payments import app_settings as payments_settings
from payments.reconciliation import default_window, pending_lookback


def test_every_app_reads_typed_defaults():
    assert credits_settings.REGEN_INTERVAL == timedelta(minutes=15)
    assert accounts_settings.EMAIL_MAX_ATTEMPTS == 12
    assert backoffice_settings.ADJUSTMENT_APPROVAL_THRESHOLD == 500
    assert generations_settings.RETRY_BACKOFF == 5.0
    assert payments_settings.webhook_max_attempts() == 8


def test_values_come_from_django_settings_then_the_environment(settings, monkeypatch):
    monkeypatch.setenv("GENERATIONS_MAX_RUNNING_JOBS", "7")
    assert generations_settings.MAX_RUNNING_JOBS == 7
    settings.GENERATIONS_MAX_RUNNING_JOBS = 2
    assert generations_settings.MAX_RUNNING_JOBS == 2


def test_a_value_read_once_is_read_again_after_any_change(settings, monkeypatch):
    """Reads are remembered (a hot path reads its settings at the cost of a dict lookup), but
    never past a change: of the Django setting, of the environment variable, or of a default
    that another setting decides."""
    assert generations_settings.MAX_RUNNING_JOBS == generations_settings.MAX_RUNNING_JOBS
    monkeypatch.setenv("GENERATIONS_MAX_RUNNING_JOBS", "7")
    assert generations_settings.MAX_RUNNING_JOBS == 7
    monkeypatch.setenv("GENERATIONS_MAX_RUNNING_JOBS", "9")
    assert generations_settings.MAX_RUNNING_JOBS == 9
    settings.GENERATIONS_MAX_RUNNING_JOBS = 3
    assert generations_settings.MAX_RUNNING_JOBS == 3
    del settings.GENERATIONS_MAX_RUNNING_JOBS
    assert generations_settings.MAX_RUNNING_JOBS == 9

    assert credits_settings.lot_priority("trial") == 100
    settings.CREDITS_LOT_PRIORITY = {"trial": 5}
    assert (credits_settings.lot_priority("trial"), credits_settings.lot_priority("bonus")) == (
        5,
        100,
    )
    with override_settings(CREDITS_CAP_TIMEZONE="Europe/Paris"):
        assert credits_settings.CAP_TIMEZONE == "Europe/Paris"
    assert credits_settings.CAP_TIMEZONE == "UTC"


def test_reconciliation_reads_its_window_through_the_payments_settings(settings, monkeypatch):
    assert (default_window(), pending_lookback()) == (timedelta(hours=24), timedelta(days=3))
    settings.PAYMENTS_RECONCILE_WINDOW_HOURS = 6
    monkeypatch.setenv("PAYMENTS_RECONCILE_PENDING_DAYS", "1")
    assert (default_window(), pending_lookback()) == (timedelta(hours=6), timedelta(days=1))


@pytest.mark.parametrize(
    "name, value, check_id",
    [
        ("BACKOFFICE_DASHBOARD_MAX_DAYS", 0, "backoffice.E001"),
        ("BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD", "many", "backoffice.E001"),
        ("BACKOFFICE_FILTERED_COUNT_CAP", 0, "backoffice.E001"),
        ("PAYMENTS_RECONCILE_WINDOW_HOURS", "a day", "payments.E011"),
        ("ACCOUNTS_EMAIL_SEND_LEASE_SECONDS", -1, "accounts.E001"),
        ("TRUSTED_PROXY_COUNT", -1, "accounts.E004"),
        ("CREDITS_PREPARED_STATEMENTS", "yes", "credits.E009"),
    ],
)
def test_a_bad_value_is_a_system_check_error_naming_the_setting(settings, name, value, check_id):
    setattr(settings, name, value)
    errors = [error for error in checks.run_checks() if error.id == check_id]
    assert len(errors) == 1 and errors[0].msg.startswith(name)
    assert errors[0].level == checks.ERROR
