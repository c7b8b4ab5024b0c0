"""Celery tasks of the generations app. Thin: each calls one service.

Messages are acknowledged late (CELERY_TASK_ACKS_LATE), so a task whose worker dies is
delivered again; the claim protocol in ``running`` makes that safe.
"""

from celery import shared_task

from core.logs import log_context
from core.metrics import JOB_SECONDS, JOBS_FINISHED, count_safely, observe_safely

from .running import job_run, jobs_reap


@shared_task(name="generations.tasks.run_job", ignore_result=True)
def run_job(job_id: int) -> str:
    """Run one generation job (retries are scheduled by the job itself, with backoff)."""
    with log_context(job_id=job_id):
        outcome = job_run(job_id=job_id)
    if outcome in FINISHED:
        _count_finished(job_id, outcome)
    return outcome


#: job_run's outcomes that settle the job, and the status each leaves.
FINISHED = {"completed": "COMPLETED", "failed": "FAILED"}


def _count_finished(job_id: int, outcome: str) -> None:
    """Metrics: one more settled job, and its time from submission to end."""
    from .models import GenerationJob

    count_safely(JOBS_FINISHED, FINISHED[outcome])
    job = (
        GenerationJob.objects.filter(pk=job_id)
        .values("operation", "created_at", "completed_at")
        .first()
    )
    if job and job["completed_at"]:
        seconds = (job["completed_at"] - job["created_at"]).total_seconds()
        observe_safely(JOB_SECONDS, seconds, job["operation"])


@shared_task(name="generations.tasks.reap_stuck_jobs", ignore_result=True)
def reap_stuck_jobs() -> dict:
    """Beat, every minute: settle jobs whose worker died; resend tasks that never arrived."""
    return jobs_reap()
