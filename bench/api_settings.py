"""Settings for bench/api.py: the app's own settings, its baseline URLs, limits out of the way."""

from config.settings.base import *  # noqa: F401,F403

ROOT_URLCONF = "bench.api_urls"
DEBUG = False
# The benchmark measures the work of a request, not the refusals of the limits.
API_RATE_PER_KEY = 10**9
API_RATE_PER_USER = 10**9
GENERATIONS_MAX_RUNNING_JOBS = 10**6
