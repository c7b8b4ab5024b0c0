"""Sending jobs' tasks to the workers.

A submitted job is due to be sent at once (its ``resend_at`` is its submission time); the
request sends no message. ``jobs_dispatch`` claims PENDING jobs whose ``resend_at`` has come
and sends their tasks together: the job dispatcher in every generations worker calls it a few
times a second (``generations.dispatch``), and the periodic sweep calls it too, as the
fallback. The same claim resends the task of a job that has not started by its
``resend_at`` (never sent, or lost by the broker): each claim moves ``resend_at`` forward by
as long as the job has already waited (``GENERATIONS_PENDING_RESEND_AFTER`` to
``GENERATIONS_PENDING_RESEND_MAX``), so a busy queue is not flooded with copies. A
duplicate message is harmless: only one delivery claims the job (``running.job_claim``).

With no dispatcher (``GENERATIONS_DISPATCH_SECONDS`` = 0, or tasks run in place without a
broker) a submission sends its task itself after commit (``enqueue_run``), and a retry
always does (with its countdown).
"""

import logging
from datetime import timedelta

from celery import current_app
from django.db import DatabaseError, connection
from django.utils import timezone
from kombu.exceptions import OperationalError

from core.queue import task_send, tasks_send

from .app_settings import app_settings
from .models import GenerationJob

logger = logging.getLogger(__name__)

TASK = "generations.tasks.run_job"

_JOBS = GenerationJob._meta.db_table
# Claim PENDING jobs whose resend_at has come (rows written before it existed: those waiting
# longer than PENDING_RESEND_AFTER past their due time) and lease each forward by as long as
# it has waited, within [PENDING_RESEND_AFTER, PENDING_RESEND_MAX]. SKIP LOCKED: a job being
# claimed by its worker, cancelled or claimed by another dispatcher is left to that.
_CLAIM = f"""
WITH due AS MATERIALIZED (
    SELECT id FROM "{_JOBS}"
     WHERE status = %(pending)s
       AND (resend_at <= %(due)s
            OR (resend_at IS NULL AND coalesce(next_attempt_at, created_at) < %(overdue)s))
     ORDER BY resend_at NULLS FIRST, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE "{_JOBS}" AS job
   SET resend_at = %(now)s + make_interval(secs => least(%(most)s, greatest(%(least)s,
                     extract(epoch FROM %(now)s - coalesce(job.next_attempt_at, job.created_at))))),
       updated_at = %(now)s
  FROM due
 WHERE job.id = due.id
RETURNING job.id, job.resend_at
"""
# Give a claim back when its messages could not be sent: each job is due again at once,
# unless something else moved it since (its run started, it was cancelled, claimed again).
_RELEASE = f"""
UPDATE "{_JOBS}" AS job SET resend_at = %s
  FROM unnest(%s::bigint[], %s::timestamptz[]) AS claim(id, lease)
 WHERE job.id = claim.id AND job.resend_at = claim.lease AND job.status = %s
"""


def dispatching() -> bool:
    """Whether a dispatcher sends submitted jobs' tasks (else the submission sends its own)."""
    return bool(app_settings.DISPATCH_SECONDS) and not current_app.conf.task_always_eager


def jobs_dispatch(*, limit: int | None = None, due_before=None) -> int:
    """Claim up to ``limit`` jobs due to be sent by ``due_before`` (now) and send their tasks,
    all together; returns how many were sent.

    When the messages cannot be sent (the broker is down) the claim is given back, the jobs
    are due again at once and the error is raised; were even that impossible, they are due
    again when their lease runs out.
    """
    now = timezone.now()
    params = {
        "pending": GenerationJob.Status.PENDING,
        "due": due_before or now,
        "overdue": now - timedelta(seconds=app_settings.PENDING_RESEND_AFTER),
        "limit": limit or app_settings.DISPATCH_BATCH,
        "now": now,
        "least": app_settings.PENDING_RESEND_AFTER,
        "most": app_settings.PENDING_RESEND_MAX,
    }
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, params)
        claimed = sorted(cursor.fetchall())
    if not claimed:
        return 0
    try:
        tasks_send(TASK, [[job_id] for job_id, _ in claimed])
    except Exception:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    _RELEASE,
                    [
                        timezone.now(),
                        [job_id for job_id, _ in claimed],
                        [lease for _, lease in claimed],
                        GenerationJob.Status.PENDING,
                    ],
                )
        except DatabaseError:
            logger.warning("could not give back %s claimed jobs", len(claimed))
        raise
    return len(claimed)


def enqueue_run(*, job_id: int, countdown: float | None = None) -> bool:
    """Send ``run_job(job_id)``. When the broker is unreachable, log it and return False: the
    job stays PENDING and the sweep sends it again later."""
    try:
        task_send(TASK, args=[job_id], countdown=countdown)
    except (OperationalError, OSError):
        logger.exception(
            "Could not send job %s to the workers; the sweep will send it again.", job_id
        )
        return False
    return True
