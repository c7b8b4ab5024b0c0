"""Settings of the generations app, read in one place.

Each value comes from Django settings when set there, else from the environment variable of
the same name (so a worker process can be configured by its environment alone), else from
the default below. Values are read when used and remembered until a setting or the variable
changes (see ``core.app_settings``), so ``override_settings`` works.
"""

from core.app_settings import AppSettings, Setting


def _setting(name: str, default, type=str):  # noqa: A002
    """A generations setting: from Django settings, else the environment, else ``default``;
    a value that cannot be converted is reported by check generations.E001."""
    return Setting(name, default, type, env=True, check_id="generations.E001")


class GenerationsSettings(AppSettings):
    # --- jobs -------------------------------------------------------------------------------
    #: Jobs one user may have pending or processing at once.
    MAX_RUNNING_JOBS = _setting("GENERATIONS_MAX_RUNNING_JOBS", 3, int)
    #: Retries after the first attempt for retryable backend errors (a job's default).
    MAX_RETRIES = _setting("GENERATIONS_MAX_RETRIES", 3, int)
    #: Seconds before the first retry; each further retry waits twice as long.
    RETRY_BACKOFF = _setting("GENERATIONS_RETRY_BACKOFF", 5.0, float)
    RETRY_BACKOFF_MAX = _setting("GENERATIONS_RETRY_BACKOFF_MAX", 300.0, float)
    #: Seconds after which a PROCESSING job's claim is stale (its worker is presumed dead).
    #: Must exceed the longest a backend call can take (the Celery hard time limit).
    STUCK_AFTER = _setting("GENERATIONS_STUCK_AFTER", 900.0, float)
    #: Seconds a PENDING job may wait past its due time before the sweep sends its task
    #: again (a duplicate is harmless: only one delivery claims the job).
    PENDING_RESEND_AFTER = _setting("GENERATIONS_PENDING_RESEND_AFTER", 60.0, float)
    #: The longest wait between two resends of one job: each resend waits as long as the
    #: job has already waited, from PENDING_RESEND_AFTER up to this.
    PENDING_RESEND_MAX = _setting("GENERATIONS_PENDING_RESEND_MAX", 600.0, float)
    REAP_BATCH = _setting("GENERATIONS_REAP_BATCH", 200, int)
    #: Seconds between two looks of a worker's job dispatcher for jobs due to be sent (the
    #: generations workers run one; see ``generations.dispatch``). 0: no dispatcher; a
    #: submission sends its job's task itself, after commit.
    DISPATCH_SECONDS = Setting(
        "GENERATIONS_DISPATCH_SECONDS",
        0.2,
        float,
        env=True,
        minimum=0,
        maximum=60,
        check_id="generations.E001",
        meaning="seconds",
    )
    #: The most jobs one look of the dispatcher sends.
    DISPATCH_BATCH = Setting(
        "GENERATIONS_DISPATCH_BATCH",
        200,
        int,
        env=True,
        minimum=1,
        maximum=10000,
        check_id="generations.E001",
    )
    MAX_PROMPT_CHARS = _setting("GENERATIONS_MAX_PROMPT_CHARS", 4000, int)
    #: The most output tokens a text job may ask for.
    MAX_OUTPUT_TOKENS = _setting("GENERATIONS_MAX_OUTPUT_TOKENS", 4096, int)
    DEFAULT_OUTPUT_TOKENS = _setting("GENERATIONS_DEFAULT_OUTPUT_TOKENS", 512, int)

    # --- the OpenAI-compatible backend ------------------------------------------------------
    _OPENAI_BASE_URL = _setting("OPENAI_BASE_URL", "https://api.openai.com")
    _OPENAI_API_KEY = _setting("OPENAI_API_KEY", "")
    #: The model for text jobs.
    OPENAI_MODEL = _setting("OPENAI_MODEL", "gpt-4o-mini")
    OPENAI_IMAGE_MODEL = _setting("OPENAI_IMAGE_MODEL", "gpt-image-1")
    OPENAI_IMAGE_SIZE = _setting("OPENAI_IMAGE_SIZE", "1024x1024")
    OPENAI_CONNECT_TIMEOUT = _setting("OPENAI_CONNECT_TIMEOUT", 5.0, float)
    #: Seconds to wait for the endpoint to answer (read timeout).
    OPENAI_TIMEOUT = _setting("OPENAI_TIMEOUT", 120.0, float)
    OPENAI_MAX_RESPONSE_BYTES = _setting("OPENAI_MAX_RESPONSE_BYTES", 25 * 1024 * 1024, int)

    # --- stored API keys --------------------------------------------------------------------
    #: Comma-separated keys for stored API keys; the first encrypts, all decrypt.
    #: Empty: a key derived from SECRET_KEY.
    _FIELD_ENCRYPTION_KEY = _setting("FIELD_ENCRYPTION_KEY", "")

    @property
    def OPENAI_BASE_URL(self) -> str:
        return self._OPENAI_BASE_URL.rstrip("/")

    @property
    def OPENAI_API_KEY(self) -> str:
        return self._OPENAI_API_KEY or ""

    @property
    def FIELD_ENCRYPTION_KEY(self) -> str:
        return self._FIELD_ENCRYPTION_KEY or ""


app_settings = GenerationsSettings()
