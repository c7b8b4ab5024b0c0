"""Settings for bench/webhooks.py: the app's own settings plus a benchmark-only URL."""

from config.settings.base import *  # noqa: F401,F403

ROOT_URLCONF = "bench.webhooks_urls"
DEBUG = False
