"""The periodic tasks and their intervals: settings from the environment, read and checked here.

django-celery-beat's DatabaseScheduler writes ``CELERY_BEAT_SCHEDULE`` into its tables every
time a beat starts, so an interval edited in the admin lasts only until the next start (a
deploy, a restart). An interval is changed so that it lasts through its environment variable:
``BEAT_<ENTRY NAME>_SECONDS`` (``requeue-stuck-webhook-events`` reads
``BEAT_REQUEUE_STUCK_WEBHOOK_EVENTS_SECONDS``), or the name an entry gives explicitly.
"""

import os

from django.core.exceptions import ImproperlyConfigured


def interval_variable(name: str) -> str:
    """The environment variable holding the interval of the entry ``name``."""
    return "BEAT_" + name.upper().replace("-", "_").replace(".", "_") + "_SECONDS"


def every(name: str, task: str, *, seconds: float, variable: str | None = None) -> tuple[str, dict]:
    """One beat entry: ``task`` every ``seconds``, unless its environment variable says otherwise.

    Raises ImproperlyConfigured when the variable is not a number of seconds of at least 1.
    """
    variable = variable or interval_variable(name)
    raw = os.environ.get(variable)
    value = seconds if raw in (None, "") else raw
    try:
        interval = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{variable} must be a number of seconds, got {raw!r}") from exc
    if not interval >= 1 or interval == float("inf"):
        raise ImproperlyConfigured(f"{variable} must be at least 1 second, got {value!r}")
    return name, {"task": task, "schedule": interval}


def beat_schedule(*entries: tuple[str, dict]) -> dict:
    """``CELERY_BEAT_SCHEDULE`` from ``every(...)`` entries; an entry name may appear once."""
    schedule = dict(entries)
    if len(schedule) != len(entries):
        raise ImproperlyConfigured("CELERY_BEAT_SCHEDULE names an entry twice")
    return schedule
