"""System checks for the generations settings (run by manage.py check, migrate, runserver)."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .app_settings import app_settings


@register(Tags.compatibility)
def check_generations_settings(app_configs=None, **kwargs):
    problems = app_settings.check()  # generations.E001: a value that is not a number
    if problems:
        return problems
    values = {
        "GENERATIONS_MAX_RUNNING_JOBS": app_settings.MAX_RUNNING_JOBS,
        "GENERATIONS_MAX_RETRIES": app_settings.MAX_RETRIES,
        "GENERATIONS_RETRY_BACKOFF": app_settings.RETRY_BACKOFF,
        "GENERATIONS_STUCK_AFTER": app_settings.STUCK_AFTER,
        "GENERATIONS_MAX_OUTPUT_TOKENS": app_settings.MAX_OUTPUT_TOKENS,
        "GENERATIONS_DEFAULT_OUTPUT_TOKENS": app_settings.DEFAULT_OUTPUT_TOKENS,
        "OPENAI_TIMEOUT": app_settings.OPENAI_TIMEOUT,
        "GENERATIONS_PENDING_RESEND_AFTER": app_settings.PENDING_RESEND_AFTER,
        "GENERATIONS_PENDING_RESEND_MAX": app_settings.PENDING_RESEND_MAX,
    }
    if values["GENERATIONS_MAX_RUNNING_JOBS"] < 1:
        problems.append(
            Error("GENERATIONS_MAX_RUNNING_JOBS must be at least 1.", id="generations.E002")
        )
    if values["GENERATIONS_MAX_RETRIES"] < 0 or values["GENERATIONS_RETRY_BACKOFF"] < 0:
        problems.append(
            Error(
                "GENERATIONS_MAX_RETRIES and GENERATIONS_RETRY_BACKOFF cannot be negative.",
                id="generations.E003",
            )
        )
    if (
        not 16
        <= values["GENERATIONS_DEFAULT_OUTPUT_TOKENS"]
        <= values["GENERATIONS_MAX_OUTPUT_TOKENS"]
    ):
        problems.append(
            Error(
                "GENERATIONS_DEFAULT_OUTPUT_TOKENS must be between 16 and "
                "GENERATIONS_MAX_OUTPUT_TOKENS.",
                id="generations.E004",
            )
        )
    if (
        not 0
        < values["GENERATIONS_PENDING_RESEND_AFTER"]
        <= values["GENERATIONS_PENDING_RESEND_MAX"]
    ):
        problems.append(
            Error(
                "GENERATIONS_PENDING_RESEND_AFTER must be above 0 and at most "
                "GENERATIONS_PENDING_RESEND_MAX.",
                id="generations.E005",
            )
        )
    hard_limit = getattr(settings, "CELERY_TASK_TIME_LIMIT", None) or 0
    longest = max(hard_limit, values["OPENAI_TIMEOUT"] + app_settings.OPENAI_CONNECT_TIMEOUT)
    if values["GENERATIONS_STUCK_AFTER"] <= longest:
        problems.append(
            Warning(
                f"GENERATIONS_STUCK_AFTER ({values['GENERATIONS_STUCK_AFTER']:g}s) should exceed the longest a job can "
                f"run ({longest:g}s): live jobs would be taken for dead and run twice (only one result is kept).",
                id="generations.W001",
            )
        )
    return problems
