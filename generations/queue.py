"""Sending a job's task to the workers. Called only after the job's transaction commits."""

import logging

from kombu.exceptions import OperationalError

from core.queue import task_send

logger = logging.getLogger(__name__)


def enqueue_run(*, job_id: int, countdown: float | None = None) -> bool:
    """Send ``run_job(job_id)``. When the broker is unreachable, log it and return False: the
    job stays PENDING and the reaper sends it again later."""
    try:
        task_send("generations.tasks.run_job", args=[job_id], countdown=countdown)
    except (OperationalError, OSError):
        logger.exception(
            "Could not send job %s to the workers; the reaper will send it again.", job_id
        )
        return False
    return True
