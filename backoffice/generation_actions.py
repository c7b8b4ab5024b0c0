"""Staff actions on generation jobs. Each calls the generations service that owns the rule
and writes one staff action row (who, what, why, and how it ended): a done action's row in
the service's own transaction, a refusal's after it was rolled back."""

from core.audit import AuditAction
from generations.exceptions import GenerationsError
from generations.models import GenerationJob
from generations.services import job_refund_completed, job_retry_failed

from .audit import staff_action_record

MANAGE_JOBS_PERMISSION = "generations.manage_jobs"


def staff_job_refund(*, job: GenerationJob, reason: str, staff_user) -> GenerationJob:
    """Give back what a completed job cost (a bad result), through ``job_refund_completed``.

    A failed job was already refunded in full when it failed; the service refuses it, and
    the refusal is recorded.
    """
    return _recorded(
        job=job,
        action=AuditAction.STAFF_JOB_REFUND,
        reason=reason,
        staff_user=staff_user,
        details={"credits_charged": job.credits_charged},
        service=job_refund_completed,
        outcome=lambda done: {"new_status": done.status},
    )


def staff_job_retry(*, job: GenerationJob, reason: str, staff_user) -> GenerationJob:
    """Run a failed job again as a new job, through ``job_retry_failed`` (charged like a fresh
    submission: the failed job was refunded in full when it failed)."""
    return _recorded(
        job=job,
        action=AuditAction.STAFF_JOB_RETRY,
        reason=reason,
        staff_user=staff_user,
        details={},
        service=job_retry_failed,
        outcome=lambda retry: {
            "retry_job_id": retry.pk,
            "estimated_credits": retry.estimated_credits,
        },
    )


def _recorded(
    *, job, action: AuditAction, reason: str, staff_user, details: dict, service, outcome
) -> GenerationJob:
    """Call ``service`` for ``job`` and write one staff action row, refused or done.

    The row of a done action is written by the service's ``audit`` hook, inside the
    transaction of the change: if either fails, neither is kept.
    """
    reason = (reason or "").strip()
    details = {"job_id": job.pk, "status": job.status, **details}

    def audit(result: GenerationJob) -> None:
        staff_action_record(
            actor=staff_user,
            action=action,
            reason=reason,
            user=job.user_id,
            details={**details, **outcome(result)},
        )

    try:
        return service(job_id=job.pk, staff_user=staff_user, reason=reason, audit=audit)
    except GenerationsError as exc:
        staff_action_record(
            actor=staff_user,
            action=action,
            reason=reason,
            user=job.user_id,
            success=False,
            error=f"{type(exc).__name__}: {exc}",
            details=details,
        )
        raise
