"""Development: a laptop with nothing running but the project's own PostgreSQL.

With no DATABASE_URL the database is the PostgreSQL server `scripts/run.sh` starts under
var/postgres (config/local_postgres.py); Celery tasks run in-process; emails are printed on
the console (EMAIL_BACKEND=file writes them under var/mail instead). Setting DATABASE_URL,
REDIS_URL or CELERY_BROKER_URL switches to those servers and to real workers.
"""

from django.core.exceptions import ImproperlyConfigured

from config.local_postgres import data_dir, running_url

from .base import *  # noqa: F401,F403
from .env import database, env_bool

DEBUG = env_bool("DEBUG", True)

if not DATABASES:  # noqa: F405  (no DATABASE_URL)
    _local_url = running_url()
    if _local_url is None:
        raise ImproperlyConfigured(
            f"No database: DATABASE_URL is not set and the project's own PostgreSQL ({data_dir()}) "
            "is not running. `bash scripts/run.sh` starts it (and the app); "
            "`python -m config.local_postgres start` starts it alone. "
            "Or set DATABASE_URL=postgres://... to use another server."
        )
    DATABASES = {"default": database(_local_url)}
