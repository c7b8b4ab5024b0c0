"""Reads for the generation pages. A user only ever sees their own jobs."""

from dataclasses import dataclass

from django.http import Http404
from django.utils import timezone

from credits.models import LedgerEntry

from .app_settings import app_settings
from .charges import job_ledger_entries
from .models import GenerationJob, Operation
from .text import seconds_text

MAX_TEXT_PREVIEW_BYTES = 200_000


def jobs_for_user(*, user):
    return GenerationJob.objects.filter(user_id=user.pk).order_by("-created_at", "-pk")


def job_for_user(*, user, pk: int) -> GenerationJob:
    """``user``'s job ``pk``; Http404 for anyone else's (never revealing that it exists)."""
    job = GenerationJob.objects.filter(user_id=user.pk, pk=pk).select_related("source").first()
    if job is None:
        raise Http404("No such job.")
    return job


def job_ledger(*, job: GenerationJob) -> list[LedgerEntry]:
    return list(job_ledger_entries(job).order_by("id"))


def source_jobs(
    *, user, operation: str, backend: str | None = None, limit: int = 30
) -> list[GenerationJob]:
    """Finished jobs of ``user`` that a new job of ``operation`` could edit or enhance
    (only those ``backend`` made, when it is given)."""
    wanted = Operation.IMAGE if operation in (Operation.IMAGE, Operation.ENHANCE) else operation
    jobs = jobs_for_user(user=user).filter(status=GenerationJob.Status.COMPLETED, operation=wanted)
    if backend is not None:
        jobs = jobs.filter(parameters__backend=backend)
    return list(jobs.exclude(result_file="")[:limit])


def text_result(*, job: GenerationJob) -> str:
    if job.result_kind != "text":
        return ""
    with job.result_file.open("rb") as fh:
        data = fh.read(MAX_TEXT_PREVIEW_BYTES + 1)
    text = data[:MAX_TEXT_PREVIEW_BYTES].decode("utf-8", "replace")
    return text + ("\n…" if len(data) > MAX_TEXT_PREVIEW_BYTES else "")


def job_retry_of(*, job: GenerationJob) -> GenerationJob | None:
    """The job that ran ``job`` again, if it was retried."""
    return GenerationJob.objects.filter(retry_of_id=job.pk).only("pk", "status").first()


@dataclass(frozen=True)
class Waiting:
    """How long a PENDING job has waited for a worker, for its status panel."""

    #: Seconds since its task was due (0 while it is not due yet).
    waited: int
    #: Seconds until a retry is due (0 once it is due).
    due_in: int
    #: It has waited past the resend delay: the sweep sends its task again.
    overdue: bool

    @property
    def waited_text(self) -> str:
        return seconds_text(self.waited)

    @property
    def due_in_text(self) -> str:
        return seconds_text(self.due_in)


def job_waiting(*, job: GenerationJob, now=None) -> Waiting:
    now = now or timezone.now()
    due = job.next_attempt_at or job.created_at
    seconds = (now - due).total_seconds()
    return Waiting(
        waited=max(0, int(seconds)),
        due_in=max(0, int(-seconds + 0.999)),
        overdue=seconds > app_settings.PENDING_RESEND_AFTER,
    )
