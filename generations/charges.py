"""The ledger side of a job: its one charge and its at-most-one refund.

A job is charged its estimate when submitted (key ``job:<id>:charge``). Later exactly one of
these happens, under the same refund key ``job:<id>:refund`` (a spend is refunded at most
once): on completion the difference between estimate and final cost comes back; on failure
or cancellation everything comes back.
"""

from django.db.models import QuerySet

from credits.models import LedgerEntry
from credits.references import Source, register_source_type
from credits.services import credits_refund

#: How the ledger names a job: its charge and refunds carry ``("generations.job", id)``.
JOB_SOURCE = "generations.job"


def job_source(job) -> Source:
    return Source(JOB_SOURCE, job.pk)


def job_ledger_entries(job) -> QuerySet:
    """The ledger entries caused by ``job`` (its charge and its refund)."""
    return LedgerEntry.objects.caused_by(job_source(job))


def register() -> None:
    """Tell the ledger how to show a job (called when the app starts)."""
    from .models import GenerationJob

    register_source_type(
        name=JOB_SOURCE,
        label="job",
        model=GenerationJob,
        export_column="job_id",
        customer_url_name="generations:list",
    )


def charge_key(job_id: int) -> str:
    return f"job:{job_id}:charge"


def refund_key(job_id: int) -> str:
    return f"job:{job_id}:refund"


def charge_entry(job) -> LedgerEntry:
    return LedgerEntry.objects.get(idempotency_key=charge_key(job.pk))


def refund_entry(job) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(idempotency_key=refund_key(job.pk)).first()


def refund(
    job, *, amount: int | None, reason: str, internal_note: str = "", created_by=None
) -> LedgerEntry | None:
    """Give back ``amount`` (None: all) of the job's charge. Nothing happens for zero."""
    spend = charge_entry(job)
    if amount is not None and amount <= 0:
        return None
    return credits_refund(
        spend=spend,
        idempotency_key=refund_key(job.pk),
        amount=amount,
        reason=reason,
        internal_note=internal_note,
        created_by=created_by,
    )
