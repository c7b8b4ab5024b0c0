"""Settings for the generation tests' worker processes: the test settings, with tasks sent
from inside the worker (retries, re-queues) going through the broker as in production
rather than running in place."""

from config.settings.test import *  # noqa: F401,F403

CELERY_TASK_ALWAYS_EAGER = False
