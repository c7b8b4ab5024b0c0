"""System checks: the credits settings are validated when Django starts (and by manage.py check)."""

from datetime import timedelta

from django.core.checks import Error, register

from .app_settings import DEFAULTS, _get

# name: (check id, smallest allowed, what it means)
_WHOLE_NUMBERS = {
    "CREDITS_TRIAL_GRANT": ("credits.E001", 0, "credits granted on email verification; 0 turns it off"),
    "CREDITS_REGEN_AMOUNT": ("credits.E002", 0, "credits regenerated per interval; 0 turns regeneration off"),
    "CREDITS_REGEN_CAP": ("credits.E003", 0, "the balance regeneration tops up to; 0 turns regeneration off"),
    "CREDITS_HISTORY_PAGE_SIZE": ("credits.E004", 1, "entries per history page"),
    "CREDITS_EXPORT_CHUNK_SIZE": ("credits.E005", 1, "rows per round trip of the CSV export"),
    "CREDITS_MAX_AMOUNT": ("credits.E006", 1, "the largest single movement of credits"),
}
# name: (check id, shortest allowed)
_DURATIONS = {
    "CREDITS_REGEN_INTERVAL": ("credits.E007", timedelta(seconds=1)),
    "CREDITS_IDEMPOTENCY_TTL": ("credits.E008", timedelta(seconds=1)),
}


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if _is_whole(value) or isinstance(value, float):
        return float(value)
    return None


@register()
def check_credits_settings(app_configs=None, **kwargs) -> list[Error]:
    errors: list[Error] = []
    for name, (check_id, minimum, meaning) in _WHOLE_NUMBERS.items():
        value = _get(name)
        if not _is_whole(value) or value < minimum:
            errors.append(
                Error(
                    f"{name} must be a whole number >= {minimum} ({meaning}); it is {value!r}.",
                    hint=f"The default is {DEFAULTS[name]!r}.",
                    id=check_id,
                )
            )
    for name, (check_id, minimum) in _DURATIONS.items():
        value = _get(name)
        seconds = _seconds(value)
        if seconds is None or seconds < minimum.total_seconds() or seconds != int(seconds):
            errors.append(
                Error(
                    f"{name} must be a timedelta (or a number of seconds) of whole seconds, "
                    f"at least {minimum}; it is {value!r}.",
                    hint=f"The default is {DEFAULTS[name]!r}.",
                    id=check_id,
                )
            )
    if not isinstance(_get("CREDITS_PREPARED_STATEMENTS"), bool):
        errors.append(
            Error(
                f"CREDITS_PREPARED_STATEMENTS must be True or False; it is {_get('CREDITS_PREPARED_STATEMENTS')!r}.",
                id="credits.E009",
            )
        )
    return errors
