"""Development: a laptop with nothing running.

No environment needed: a SQLite file under var/, Celery tasks run in-process, emails are
printed on the console (EMAIL_BACKEND=file writes them under var/mail instead). Setting
DATABASE_URL, REDIS_URL or CELERY_BROKER_URL switches to PostgreSQL, Redis and real workers.
"""

from .base import *  # noqa: F401,F403
from .env import env_bool

DEBUG = env_bool("DEBUG", True)
