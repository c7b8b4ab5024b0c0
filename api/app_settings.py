"""Settings of the API app.

- ``API_RATE_PER_KEY``: requests one key may make per window (default 120).
- ``API_RATE_PER_USER``: requests all of one user's keys together may make per window (default 300).
- ``API_RATE_WINDOW_SECONDS``: the rate limits' window (default 60).
- ``API_KEYS_PER_USER``: live keys a user may hold at once (default 10).
- ``API_IDEMPOTENCY_LEASE_SECONDS``: how long a POST in progress holds its Idempotency-Key
  before a retry may take it over (default 60).
- ``API_IDEMPOTENCY_DAYS``: how long a POST's stored response is replayed (default 1).
- ``API_RESULT_URL_SECONDS``: how long a job's signed result URL stays valid (default 3600).
"""

from core.app_settings import AppSettings, Setting


class ApiSettings(AppSettings):
    RATE_PER_KEY = Setting("API_RATE_PER_KEY", 120, int, minimum=1, whole=True, check_id="api.E001")
    RATE_PER_USER = Setting(
        "API_RATE_PER_USER", 300, int, minimum=1, whole=True, check_id="api.E001"
    )
    RATE_WINDOW_SECONDS = Setting(
        "API_RATE_WINDOW_SECONDS", 60, int, minimum=1, whole=True, check_id="api.E001"
    )
    KEYS_PER_USER = Setting(
        "API_KEYS_PER_USER", 10, int, minimum=1, whole=True, check_id="api.E001"
    )
    IDEMPOTENCY_LEASE_SECONDS = Setting(
        "API_IDEMPOTENCY_LEASE_SECONDS", 60, int, minimum=1, whole=True, check_id="api.E001"
    )
    IDEMPOTENCY_DAYS = Setting(
        "API_IDEMPOTENCY_DAYS", 1, int, minimum=1, whole=True, check_id="api.E001"
    )
    RESULT_URL_SECONDS = Setting(
        "API_RESULT_URL_SECONDS", 3600, int, minimum=60, whole=True, check_id="api.E001"
    )


app_settings = ApiSettings()
