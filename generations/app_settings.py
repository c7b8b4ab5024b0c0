"""Settings of the generations app, read in one place.

Each value comes from Django settings when set there, else from the environment variable of
the same name (so a worker process can be configured by its environment alone), else from
the default below. Values are read on every access, so ``override_settings`` works.
"""

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_MISSING = object()


def _read(name: str, default, cast=None):
    value = getattr(settings, name, _MISSING)
    if value is _MISSING:
        raw = os.environ.get(name)
        if raw in (None, ""):
            return default
        value = raw
    if value is None or cast is None:
        return value
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} must be a {cast.__name__}, got {value!r}") from exc


class AppSettings:
    # --- jobs -------------------------------------------------------------------------------
    @property
    def MAX_RUNNING_JOBS(self) -> int:
        """Jobs one user may have pending or processing at once."""
        return _read("GENERATIONS_MAX_RUNNING_JOBS", 3, int)

    @property
    def MAX_RETRIES(self) -> int:
        """Retries after the first attempt for retryable backend errors (a job's default)."""
        return _read("GENERATIONS_MAX_RETRIES", 3, int)

    @property
    def RETRY_BACKOFF(self) -> float:
        """Seconds before the first retry; each further retry waits twice as long."""
        return _read("GENERATIONS_RETRY_BACKOFF", 5.0, float)

    @property
    def RETRY_BACKOFF_MAX(self) -> float:
        return _read("GENERATIONS_RETRY_BACKOFF_MAX", 300.0, float)

    @property
    def STUCK_AFTER(self) -> float:
        """Seconds after which a PROCESSING job's claim is stale (its worker is presumed dead).

        Must exceed the longest a backend call can take (the Celery hard time limit).
        """
        return _read("GENERATIONS_STUCK_AFTER", 900.0, float)

    @property
    def PENDING_RESEND_AFTER(self) -> float:
        """Seconds a PENDING job may wait past its due time before the sweep sends its task
        again (a duplicate is harmless: only one delivery claims the job)."""
        return _read("GENERATIONS_PENDING_RESEND_AFTER", 60.0, float)

    @property
    def PENDING_RESEND_MAX(self) -> float:
        """The longest wait between two resends of one job: each resend waits as long as the
        job has already waited, from PENDING_RESEND_AFTER up to this."""
        return _read("GENERATIONS_PENDING_RESEND_MAX", 600.0, float)

    @property
    def REAP_BATCH(self) -> int:
        return _read("GENERATIONS_REAP_BATCH", 200, int)

    @property
    def MAX_PROMPT_CHARS(self) -> int:
        return _read("GENERATIONS_MAX_PROMPT_CHARS", 4000, int)

    @property
    def MAX_OUTPUT_TOKENS(self) -> int:
        """The most output tokens a text job may ask for."""
        return _read("GENERATIONS_MAX_OUTPUT_TOKENS", 4096, int)

    @property
    def DEFAULT_OUTPUT_TOKENS(self) -> int:
        return _read("GENERATIONS_DEFAULT_OUTPUT_TOKENS", 512, int)

    # --- the OpenAI-compatible backend ------------------------------------------------------
    @property
    def OPENAI_BASE_URL(self) -> str:
        return _read("OPENAI_BASE_URL", "https://api.openai.com").rstrip("/")

    @property
    def OPENAI_API_KEY(self) -> str:
        return _read("OPENAI_API_KEY", "") or ""

    @property
    def OPENAI_MODEL(self) -> str:
        """The model for text jobs."""
        return _read("OPENAI_MODEL", "gpt-4o-mini")

    @property
    def OPENAI_IMAGE_MODEL(self) -> str:
        return _read("OPENAI_IMAGE_MODEL", "gpt-image-1")

    @property
    def OPENAI_IMAGE_SIZE(self) -> str:
        return _read("OPENAI_IMAGE_SIZE", "1024x1024")

    @property
    def OPENAI_CONNECT_TIMEOUT(self) -> float:
        return _read("OPENAI_CONNECT_TIMEOUT", 5.0, float)

    @property
    def OPENAI_TIMEOUT(self) -> float:
        """Seconds to wait for the endpoint to answer (read timeout)."""
        return _read("OPENAI_TIMEOUT", 120.0, float)

    @property
    def OPENAI_MAX_RESPONSE_BYTES(self) -> int:
        return _read("OPENAI_MAX_RESPONSE_BYTES", 25 * 1024 * 1024, int)

    # --- stored API keys --------------------------------------------------------------------
    @property
    def FIELD_ENCRYPTION_KEY(self) -> str:
        """Comma-separated keys for stored API keys; the first encrypts, all decrypt.

        Empty: a key derived from SECRET_KEY.
        """
        return _read("FIELD_ENCRYPTION_KEY", "") or ""


app_settings = AppSettings()
