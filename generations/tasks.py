"""Celery tasks of the generations app. Thin: each calls one service.

Messages are acknowledged late (CELERY_TASK_ACKS_LATE), so a task whose worker dies is
delivered again; the claim protocol in ``running`` makes that safe.
"""

from celery import shared_task

from .running import job_run, jobs_reap


@shared_task(name="generations.tasks.run_job", ignore_result=True)
def run_job(job_id: int) -> str:
    """Run one generation job (retries are scheduled by the job itself, with backoff)."""
    return job_run(job_id=job_id)


@shared_task(name="generations.tasks.reap_stuck_jobs", ignore_result=True)
def reap_stuck_jobs() -> dict:
    """Beat, every minute: settle jobs whose worker died; resend tasks that never arrived."""
    return jobs_reap()
