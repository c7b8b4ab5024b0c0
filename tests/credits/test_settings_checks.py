"""The credits settings are validated by a system check."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from credits.app_settings import app_settings
from credits.checks import check_credits_settings


def test_the_defaults_pass_and_are_the_documented_ones():
    assert check_credits_settings() == []
    assert app_settings.TRIAL_GRANT == 10
    assert app_settings.REGEN_INTERVAL == timedelta(minutes=15)
    assert app_settings.REGEN_CAP == 100


def test_an_interval_in_seconds_is_accepted(settings):
    settings.CREDITS_REGEN_INTERVAL = 600

    assert check_credits_settings() == []
    assert app_settings.REGEN_INTERVAL == timedelta(minutes=10)


@pytest.mark.parametrize(
    "name, value, check_id",
    [
        ("CREDITS_TRIAL_GRANT", -1, "credits.E001"),
        ("CREDITS_TRIAL_GRANT", "10", "credits.E001"),
        ("CREDITS_REGEN_CAP", 2.5, "credits.E003"),
        ("CREDITS_HISTORY_PAGE_SIZE", 0, "credits.E004"),
        ("CREDITS_REGEN_INTERVAL", timedelta(0), "credits.E007"),
        ("CREDITS_REGEN_INTERVAL", timedelta(milliseconds=1500), "credits.E007"),
        ("CREDITS_REGEN_INTERVAL", "15m", "credits.E007"),
        ("CREDITS_IDEMPOTENCY_TTL", -5, "credits.E008"),
    ],
)
def test_bad_values_are_reported_by_manage_py_check(settings, name, value, check_id):
    setattr(settings, name, value)

    errors = check_credits_settings()

    assert [e.id for e in errors] == [check_id]
    assert name in errors[0].msg
    with pytest.raises(SystemCheckError, match=check_id):
        call_command("check")
