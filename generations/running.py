"""Running a job: claim it, call its backend outside any transaction, record the outcome.

A run holds a *claim*: a fresh token written when the job moves to PROCESSING, with
``started_at`` as its lease. Every later step (complete, retry, fail) happens in one
transaction that first checks, under the job's row lock, that the run still holds its claim.
So a duplicate delivery of the task does nothing (its claim fails), and of two runners of one
job - a worker thought dead and the one that took over from it - only the current claim
holder can finish the job; the other's result is thrown away.

A claim whose lease is older than ``GENERATIONS_STUCK_AFTER`` is stale: its worker is
presumed dead. A redelivered task may take such a job over (counting the lost run as a
retry), and the reaper re-queues it or, with no retries left, fails it with a full refund.
"""

import logging
import traceback
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q, TextField, Value
from django.db.models.functions import Concat
from django.urls import reverse
from django.utils import timezone

from notices.services import email_queue

from . import charges
from .api_keys import api_key_for
from .app_settings import app_settings
from .backends import (
    BackendError,
    BackendOutput,
    BackendRequest,
    PermanentBackendError,
    RetryableBackendError,
    get_backend,
)
from .exceptions import ApiKeyUnavailable
from .models import GenerationJob, Operation
from .pricing import final_cost
from .queue import enqueue_run, jobs_dispatch
from .text import credits_text
from .validation import check_output

logger = logging.getLogger(__name__)

Status = GenerationJob.Status
WORKER_LOST = "The worker running this job stopped before it finished."
MAX_DETAIL_CHARS = 8000
#: How early a task may start before its job's due time (clocks of machines differ a little).
CLOCK_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class Claim:
    job: GenerationJob
    token: uuid.UUID


def job_run(*, job_id: int) -> str:
    """One delivery of a job's task, start to end. Returns what happened:
    "skipped", "completed", "retrying", "failed" or "lost" (the claim was taken over)."""
    claim = job_claim(job_id=job_id)
    if claim is None:
        return "skipped"
    try:
        request = build_request(claim.job)
        output = get_backend(claim.job.parameters.get("backend", "procedural")).run(request)
    except BackendError as error:
        return job_attempt_failed(claim=claim, error=error)
    except ApiKeyUnavailable as exc:
        return job_attempt_failed(claim=claim, error=PermanentBackendError(str(exc)))
    except Exception:  # noqa: BLE001 - an unexpected failure: retry it, keep the traceback for staff
        logger.exception("Job %s failed unexpectedly", job_id)
        error = RetryableBackendError(
            "Something went wrong while running this job.", detail=traceback.format_exc()[-3000:]
        )
        return job_attempt_failed(claim=claim, error=error)
    return job_complete(claim=claim, output=output)


def job_claim(*, job_id: int) -> Claim | None:
    """Move the job to PROCESSING under a new claim, or return None when this delivery has
    nothing to do (the job is finished, another live run holds it, or a retry is not due yet:
    the delivery meant for it is still to come, and the sweep resends it if it never does)."""
    now = timezone.now()
    token = uuid.uuid4()
    # Only once it is due: a duplicate delivery (a resend) never cuts a retry's backoff short.
    # Tasks run in-process (no broker) ignore countdowns and have no duplicates: no check there.
    due = Q()
    if not current_app.conf.task_always_eager:
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + CLOCK_SLACK)
    claimed = GenerationJob.objects.filter(due, pk=job_id, status=Status.PENDING).update(
        status=Status.PROCESSING,
        claim_token=token,
        started_at=now,
        next_attempt_at=None,
        resend_at=None,
        updated_at=now,
    )
    if not claimed:
        # A stale run (its worker died, this is the redelivered message): take it over, counting
        # the lost run as a retry. Compare-and-set on the lease, so only one taker wins.
        claimed = GenerationJob.objects.filter(
            pk=job_id,
            status=Status.PROCESSING,
            started_at__lt=_stale_before(now),
            retry_count__lt=F("max_retries"),
        ).update(
            claim_token=token,
            started_at=now,
            updated_at=now,
            retry_count=F("retry_count") + 1,
            error_detail=Concat(
                F("error_detail"),
                Value(f"\n{now:%Y-%m-%d %H:%M:%S} {WORKER_LOST} Taken over."),
                output_field=TextField(),
            ),
        )
    if not claimed:
        job_reap_stale(job_id=job_id)  # stale with no retries left: fail and refund; else nothing
        return None
    return Claim(job=GenerationJob.objects.select_related("source").get(pk=job_id), token=token)


def build_request(job: GenerationJob) -> BackendRequest:
    source_text = None
    if job.operation == Operation.TEXT and job.is_edit:
        source_text = read_text_result(job.source)
    return BackendRequest(
        job_id=job.pk,
        operation=job.operation,
        model=job.model,
        tier=job.tier,
        prompt=job.prompt,
        parameters=job.parameters or {},
        is_edit=job.is_edit,
        source_text=source_text,
        api_key=api_key_for(user_id=job.user_id) if job.uses_own_key else None,
    )


def read_text_result(job: GenerationJob | None) -> str:
    if job is None or not job.result_file:
        raise PermanentBackendError("The text to edit is no longer available.")
    try:
        with job.result_file.open("rb") as fh:
            return fh.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentBackendError(
            "The text to edit could not be read.", detail=repr(exc)
        ) from exc


def job_complete(*, claim: Claim, output: BackendOutput) -> str:
    """Store the result, mark the job COMPLETED with its final cost and refund the rest of the
    estimate - all in one transaction, and only while ``claim`` still holds the job.

    An output that fails its check (``validation.check_output``) is never kept: the attempt
    fails permanently and the job is refunded in full."""
    try:
        check_output(output)
    except BackendError as error:
        return job_attempt_failed(claim=claim, error=error)
    try:
        stored = _store(claim.job, output)
    except OSError as exc:
        error = RetryableBackendError(
            "The result could not be saved.", detail=f"storage error: {exc!r}"
        )
        return job_attempt_failed(claim=claim, error=error)
    committed = False
    try:
        with transaction.atomic(durable=True):
            job = _locked_if_claimed(claim)
            if job is None:
                logger.warning("Job %s was taken over; discarding this run's result", claim.job.pk)
                return "lost"
            cost = final_cost(job=job, usage=output.usage)
            job.status = Status.COMPLETED
            job.result_file.name = stored
            job.credits_charged = cost
            job.usage = output.usage
            job.completed_at = timezone.now()
            job.claim_token = None
            job.error_message = ""
            job.save(
                update_fields=[
                    "status",
                    "result_file",
                    "credits_charged",
                    "usage",
                    "completed_at",
                    "claim_token",
                    "error_message",
                    "updated_at",
                ]
            )
            charges.refund(
                job,
                amount=job.estimated_credits - cost,
                reason=f"Unused part of the estimate for job #{job.pk}",
            )
        committed = True  # only once the commit itself has succeeded
    finally:
        if not committed:
            claim.job.result_file.storage.delete(stored)
    return "completed"


def job_attempt_failed(*, claim: Claim, error: BackendError) -> str:
    """Record a failed attempt: retry later with backoff when the error is retryable and
    retries remain, else fail the job and refund it in full."""
    with transaction.atomic(durable=True):
        job = _locked_if_claimed(claim)
        if job is None:
            return "lost"
        now = timezone.now()
        job.error_detail = _append(
            job.error_detail,
            f"{now:%Y-%m-%d %H:%M:%S} attempt {job.retry_count + 1}: {error.detail}",
        )
        if error.retryable and job.retry_count < job.max_retries:
            job.retry_count += 1
            countdown = backoff(retry=job.retry_count, retry_after=error.retry_after)
            _requeue(
                job,
                at=now + timedelta(seconds=countdown),
                countdown=countdown,
                message=f"{error.message} Trying again ({job.retry_count} of {job.max_retries}).",
            )
            return "retrying"
        message = error.message
        if error.retryable:
            message += f" It still failed after {job.retry_count} retr{'y' if job.retry_count == 1 else 'ies'}."
        _fail(job, message=message)
        return "failed"


def _requeue(job: GenerationJob, *, at, message: str, countdown: float | None = None) -> None:
    """Put a job (locked by the caller) back to PENDING for another attempt due ``at``, and
    send its task after commit (``countdown`` seconds later, when given)."""
    job.status = Status.PENDING
    job.claim_token = None
    job.next_attempt_at = at
    job.resend_at = first_resend_at(at)
    job.error_message = message
    job.save(
        update_fields=[
            "status",
            "claim_token",
            "next_attempt_at",
            "resend_at",
            "retry_count",
            "error_message",
            "error_detail",
            "updated_at",
        ]
    )
    transaction.on_commit(partial(enqueue_run, job_id=job.pk, countdown=countdown))


def job_reap_stale(*, job_id: int) -> str | None:
    """A PROCESSING job whose lease has run out: its worker died. Re-queue it if it has
    retries left, else fail it with a full refund. None when the job is not (or no longer) stale."""
    with transaction.atomic(durable=True):
        job = (
            GenerationJob.objects.select_for_update(skip_locked=True)
            .filter(
                pk=job_id, status=Status.PROCESSING, started_at__lt=_stale_before(timezone.now())
            )
            .first()
        )
        if job is None:
            return None
        now = timezone.now()
        job.error_detail = _append(job.error_detail, f"{now:%Y-%m-%d %H:%M:%S} {WORKER_LOST}")
        if job.retry_count < job.max_retries:
            job.retry_count += 1
            _requeue(
                job,
                at=now,
                message=f"{WORKER_LOST} It was queued again ({job.retry_count} of {job.max_retries}).",
            )
            return "requeued"
        _fail(job, message=f"{WORKER_LOST} No retries were left.")
        return "failed"


def jobs_reap() -> dict:
    """The periodic sweep, driven by the jobs' rows: settle stale PROCESSING jobs, and send
    the tasks of PENDING jobs due to be sent (``queue.jobs_dispatch``: those no dispatcher has
    taken yet, and those whose task has not started by their ``resend_at``)."""
    now = timezone.now()
    batch = app_settings.REAP_BATCH
    stale_ids = list(
        GenerationJob.objects.filter(status=Status.PROCESSING, started_at__lt=_stale_before(now))
        .order_by("started_at")
        .values_list("pk", flat=True)[:batch]
    )
    report = {"requeued": 0, "failed": 0, "resent": 0}
    for job_id in stale_ids:
        outcome = job_reap_stale(job_id=job_id)
        if outcome:
            report[outcome] += 1
    try:
        report["resent"] = jobs_dispatch(limit=batch, due_before=now)
    except Exception:  # noqa: BLE001 - the broker is down: the jobs stay due for the next sweep
        logger.exception("Could not send the tasks of due jobs; the next sweep tries again.")
    if any(report.values()):
        logger.warning("Reaped generation jobs: %s", report)
    return report


def first_resend_at(due):
    """When the sweep first sends again the task of a job due at ``due``, if it has not started."""
    return due + timedelta(seconds=app_settings.PENDING_RESEND_AFTER)


def backoff(*, retry: int, retry_after: float | None = None) -> float:
    """Seconds before retry number ``retry`` (1, 2, ...): doubling from the base, capped; at
    least what the service asked for with Retry-After (within the cap)."""
    cap = app_settings.RETRY_BACKOFF_MAX
    delay = min(cap, app_settings.RETRY_BACKOFF * (2 ** max(0, retry - 1)))
    if retry_after:
        delay = max(delay, min(cap, retry_after))
    return delay


# --- internals ----------------------------------------------------------------------------


def _fail(job: GenerationJob, *, message: str) -> None:
    """FAILED with a full refund, in the caller's transaction (the job row is locked)."""
    job.status = Status.FAILED
    job.claim_token = None
    job.next_attempt_at = None
    job.resend_at = None
    job.credits_charged = 0
    job.completed_at = timezone.now()
    job.error_message = f"{message} Your {credits_text(job.estimated_credits)} {'was' if job.estimated_credits == 1 else 'were'} refunded."
    job.save(
        update_fields=[
            "status",
            "claim_token",
            "next_attempt_at",
            "resend_at",
            "credits_charged",
            "completed_at",
            "error_message",
            "error_detail",
            "retry_count",
            "updated_at",
        ]
    )
    charges.refund(job, amount=None, reason=f"Job #{job.pk} failed")
    email_queue(
        user=job.user,
        kind="job_failed",
        key=str(job.pk),
        context={
            "job_id": job.pk,
            "credits": job.estimated_credits,
            "reason": message.rstrip("."),
            "job_url": settings.SITE_URL.rstrip("/") + reverse("generations:detail", args=[job.pk]),
        },
    )


def _locked_if_claimed(claim: Claim) -> GenerationJob | None:
    return (
        GenerationJob.objects.select_for_update()
        .filter(pk=claim.job.pk, status=Status.PROCESSING, claim_token=claim.token)
        .first()
    )


def _store(job: GenerationJob, output: BackendOutput) -> str:
    field = job.result_file.field
    name = field.generate_filename(job, f"job-{job.pk}.{output.extension}")
    return field.storage.save(name, ContentFile(output.content))


def _stale_before(now):
    return now - timedelta(seconds=app_settings.STUCK_AFTER)


def _append(text: str, line: str) -> str:
    combined = f"{text}\n{line}" if text else line
    return combined[-MAX_DETAIL_CHARS:]
