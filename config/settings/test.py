"""Tests: always real PostgreSQL and Redis (the test script starts them)."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .env import env_bool, env_int, env_str

if not os.environ.get("DATABASE_URL"):
    raise ImproperlyConfigured(
        "Tests run against PostgreSQL: set DATABASE_URL (scripts/test.sh does this for you)."
    )
# Connections are not kept, unless a test's worker process is told to keep them.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)  # noqa: F405

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/15")
# Each test run gets its own cache key prefix (inherited by the worker subprocesses it starts),
# so rate-limit counters left in Redis by an earlier run never throttle this one.
os.environ.setdefault("TEST_CACHE_PREFIX", f"test-{os.getpid()}")
# A beat started by a test takes a lock of this run's own (a killed beat's lock lasts a minute).
CELERY_BEAT_LOCK_KEY = f"{os.environ['TEST_CACHE_PREFIX']}:celery-beat-lock"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ["TEST_CACHE_PREFIX"],
    }
}
# The request-driven tests run tasks eagerly; the end-to-end tests start real worker processes
# with CELERY_TASK_ALWAYS_EAGER=false, so tasks sent inside a worker (retries, re-queues) go
# through Redis as in production (see tests/conftest.py).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)
# Each test's worker reads one queue of its own: every task goes there unless a test asks for
# the production routing (tests/core/test_queues.py).
if not env_bool("CELERY_ROUTE_BY_KIND", False):
    CELERY_TASK_ROUTES = {}

# Tests run with DEBUG off, as production does, yet exercise the offline sandbox provider when
# no real one is configured; the tests of the production gate switch it off.
PAYMENTS_SANDBOX_ENABLED = env_bool("PAYMENTS_SANDBOX_ENABLED", True)

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = env_str("MEDIA_ROOT", str(VAR_DIR / "test-media"))  # noqa: F405
# Static files straight from the app folders, as in development (no collectstatic for tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
