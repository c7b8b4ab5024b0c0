"""Ordering, cancelling and refunding generation jobs.

``job_submit`` is one unit of work: under a lock on the user's row it checks the limit of
jobs running at once, creates the job and charges its estimate (``job:<id>:charge``); the
job is then due to be sent, and a worker's dispatcher sends its task once that commits
(``generations.queue``). Too few credits, frozen spending or too many running
jobs leave nothing behind.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.db import insert_statement, inserted, run_together
from core.logs import set_context as set_log_context
from credits.services import credits_adjust, credits_spend

from . import catalog, charges
from .api_keys import has_api_key
from .app_settings import app_settings
from .backends import JobDraft, get_backend
from .catalog import Offering
from .exceptions import (
    AlreadyRetried,
    InvalidRequest,
    InvalidTransition,
    NotAllowed,
    TooManyRunningJobs,
)
from .models import GenerationJob, Operation
from .pricing import (
    PRICES_STAMP_SQL,
    Estimate,
    PriceList,
    Rates,
    estimate,
    forget_kept_prices,
    kept_prices,
)
from .queue import dispatching, enqueue_run
from .running import first_resend_at, read_text_result
from .validation import clean_prompt

__all__ = [
    "JobRequest",
    "NotAllowed",
    "PreparedJob",
    "job_cancel",
    "job_prepare",
    "job_refund_completed",
    "job_retry_failed",
    "job_retry_own",
    "job_submit",
]

Status = GenerationJob.Status

_USERS = get_user_model()._meta
_LOCK_USER = f'SELECT 1 FROM "{_USERS.db_table}" WHERE "{_USERS.pk.column}" = %s FOR UPDATE'
_COUNT_RUNNING = (
    f'SELECT count(*) FROM "{GenerationJob._meta.db_table}"'
    f' WHERE "user_id" = %s AND "status" IN ({", ".join(["%s"] * len(GenerationJob.ACTIVE_STATUSES))})'
)


@dataclass(frozen=True)
class JobRequest:
    """What a user asks for, as typed into the form (validated by ``job_prepare``)."""

    operation: str
    model: str = ""
    tier: str = ""
    prompt: str = ""
    is_edit: bool = False
    source_id: int | None = None
    seed: int | None = None
    max_output_tokens: int | None = None
    use_own_key: bool = True
    #: What another app hands the backend to work on (kept as the job's ``parameters
    #: ["inputs"]``, so a retry sends it again); checked by the backend's ``prepare``.
    inputs: dict | None = None


@dataclass(frozen=True)
class PreparedJob:
    """A validated, priced request: everything needed to create the job."""

    offering: Offering
    estimate: Estimate
    prompt: str
    tier: str
    is_edit: bool
    source: GenerationJob | None
    own_key: bool
    parameters: dict


def membership_tier_of(user) -> str:
    """The plan tier prices are looked up for: the member's while the membership is paid up."""
    if getattr(user, "has_paid_plan", False):
        return user.membership_tier
    return "FREE"


def job_prepare(
    *, user, request: JobRequest, draft: bool = False, prices: PriceList | None = None
) -> PreparedJob:
    """Validate and price ``request`` for ``user`` without changing anything.

    The common checks are made here; the offering's backend adds and checks its own
    parameters (``Backend.prepare``). ``draft``: the request is still being typed (the live
    estimate), so an empty prompt is allowed. ``prices``: the price list to price it by
    (default: read now). Raises InvalidRequest (with the form field at fault) or NoPriceRule.
    """
    offering, user_has_key = _offering_for(user=user, request=request)
    prompt = _checked_prompt(request.prompt, offering=offering, draft=draft)
    tier = _checked_tier(request.tier, offering=offering)
    is_edit = bool(request.is_edit) and not offering.needs_source
    if is_edit and not offering.supports_edit:
        raise InvalidRequest("This model cannot edit an earlier result.", field="is_edit")
    source = None
    if (offering.needs_source or is_edit) and not (draft and not request.source_id):
        source = _source_job(user=user, source_id=request.source_id, offering=offering)
    own_key = _uses_own_key(
        offering=offering, wanted=request.use_own_key, user_has_key=user_has_key
    )

    parameters: dict = {
        "backend": offering.backend,
        **get_backend(offering.backend).prepare(
            JobDraft(
                operation=offering.operation,
                model=offering.model,
                prompt=prompt,
                is_edit=is_edit,
                source_parameters=source.parameters if source is not None else None,
                source_prompt=source.prompt if source is not None else "",
                seed=request.seed,
                max_output_tokens=request.max_output_tokens,
                user_id=user.pk,
                inputs=dict(request.inputs or {}),
            )
        ),
    }
    if request.inputs:
        parameters["inputs"] = dict(request.inputs)
    text_edit = offering.operation == Operation.TEXT and is_edit and source is not None
    source_text = _text_to_edit(source) if text_edit else None
    if offering.needs_source and not prompt and source is not None:
        prompt = f"Enhance job #{source.pk} to {tier}"

    priced = estimate(
        operation=offering.operation,
        model=offering.model,
        tier=tier,
        prompt=prompt,
        source_text=source_text,
        max_output_tokens=parameters.get("max_output_tokens", 0),
        is_edit=is_edit,
        own_key=own_key,
        membership=membership_tier_of(user),
        prices=prices,
    )
    parameters["pricing"] = {**Rates.of(priced.rule).as_json(), "rule_id": priced.rule.pk}
    if offering.operation == Operation.TEXT:
        parameters["input_token_bound"] = priced.input_tokens
    return PreparedJob(
        offering=offering,
        estimate=priced,
        prompt=prompt,
        tier=tier,
        is_edit=is_edit,
        source=source,
        own_key=own_key,
        parameters=parameters,
    )


def _offering_for(*, user, request: JobRequest) -> tuple[Offering, bool]:
    """The offering asked for, and whether the user has an API key of their own. A model the
    site runs itself is found without reading the user's key (a database round trip that
    would change nothing for it)."""
    if request.model:
        try:
            local = catalog.find(
                operation=request.operation, model=request.model, user_has_key=False
            )
        except InvalidRequest:
            local = None
        if local is not None and not local.remote:
            return local, False
    user_has_key = has_api_key(user=user)
    model = request.model or catalog.default_model(
        operation=request.operation, user_has_key=user_has_key
    )
    offering = catalog.find(operation=request.operation, model=model, user_has_key=user_has_key)
    return offering, user_has_key


def _checked_prompt(text: str, *, offering: Offering, draft: bool) -> str:
    prompt = clean_prompt(text)
    if len(prompt) > app_settings.MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"Keep the prompt under {app_settings.MAX_PROMPT_CHARS} characters.", field="prompt"
        )
    if not prompt and not offering.needs_source and not draft:
        raise InvalidRequest("Describe what you want to make.", field="prompt")
    return prompt


def _checked_tier(tier: str, *, offering: Offering) -> str:
    if not offering.tiers:
        return ""
    if (tier or "") not in offering.tiers:
        raise InvalidRequest(f"Choose one of {', '.join(offering.tiers)}.", field="tier")
    return tier or ""


def _uses_own_key(*, offering: Offering, wanted: bool, user_has_key: bool) -> bool:
    """Whether a remote model runs on the user's own key (when they have one and want it, or
    when the platform has none)."""
    if not offering.remote:
        return False
    if wanted and user_has_key:
        return True
    if app_settings.OPENAI_API_KEY:
        return False
    if user_has_key:
        return True
    raise InvalidRequest("This model needs an API key.", field="model")


def _text_to_edit(source: GenerationJob) -> str:
    try:
        return read_text_result(source)
    except Exception as exc:  # noqa: BLE001 - any reason the text is unreadable
        raise InvalidRequest(
            "The text to edit cannot be read any more.", field="source_id"
        ) from exc


#: Submissions priced by this process's copy of the price list that found it out of date
#: are priced again from a fresh copy; the last attempt checks nothing (as when prices are
#: read before the transaction that charges them).
SUBMIT_ATTEMPTS = 3


class _PricesChanged(Exception):
    """The price list a submission was priced by is not the current one."""


def job_submit(
    *,
    user,
    request: JobRequest,
    retry_of: GenerationJob | None = None,
    audit: Callable[[GenerationJob], object] | None = None,
) -> GenerationJob:
    """Create the job and charge its estimate in one transaction; its task is sent once that
    commits (by a dispatcher, see ``generations.queue``, or by this call).

    ``retry_of``: the FAILED job this one runs again (see ``job_retry_failed``).
    ``audit``: called with the new job inside the transaction (a staff action's audit row,
    kept or rolled back with the job).
    Raises InvalidRequest, NoPriceRule, TooManyRunningJobs, InvalidTransition (``retry_of``
    is not FAILED or was retried already), or the credits errors InsufficientCredits /
    SpendingFrozen. In every such case nothing was created or charged.

    The job is priced by this process's copy of the price list (``kept_prices``), checked
    inside the transaction against the price rules as they are then: when they changed, it
    is priced again from a fresh copy.
    """
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        prepared = job_prepare(user=user, request=request, prices=kept_prices())
        try:
            return _create_and_charge(
                user=user,
                prepared=prepared,
                retry_of=retry_of,
                audit=audit,
                check_prices=attempt < SUBMIT_ATTEMPTS,
            )
        except _PricesChanged:
            forget_kept_prices()
    raise AssertionError("unreachable: the last attempt does not check the prices")


def _create_and_charge(
    *,
    user,
    prepared: PreparedJob,
    retry_of: GenerationJob | None,
    audit: Callable[[GenerationJob], object] | None,
    check_prices: bool,
) -> GenerationJob:
    limit = app_settings.MAX_RUNNING_JOBS
    # A dispatcher sends the task once the job is committed (the job is due to be sent at
    # once); with none, this request sends it after commit.
    dispatched = dispatching()
    with transaction.atomic(durable=True):
        # One submitter per user at a time past the lock. The count is a statement of its
        # own after it, so it sees the jobs every earlier holder of the lock committed, and
        # stays true until this transaction commits its own job (and a failed job is
        # retried once). The lock, the price list's stamp, the count and the insert go to
        # the database together: one round trip.
        statements = [(_LOCK_USER, [user.pk])]
        if retry_of is not None:
            run_together(statements)
            statements = []
            _check_retryable(failed=retry_of, user=user)
        job = _new_job(user=user, prepared=prepared, retry_of=retry_of, dispatched=dispatched)
        statements += [
            (PRICES_STAMP_SQL, []),
            (_COUNT_RUNNING, [user.pk, *GenerationJob.ACTIVE_STATUSES]),
            insert_statement(job),
        ]
        try:
            *_, [(stamp,)], [(running,)], [row] = run_together(statements)
        except IntegrityError:
            # Its price rule may have been deleted since the price list was read.
            if check_prices:
                raise _PricesChanged() from None
            raise
        job = inserted(job, row)
        if check_prices and stamp != prepared.estimate.prices_stamp:
            raise _PricesChanged()  # the job above goes with the rollback
        if running >= limit:
            raise TooManyRunningJobs(limit=limit)  # and so here
        credits_spend(
            user=user,
            amount=prepared.estimate.credits,
            idempotency_key=charges.charge_key(job.pk),
            description=f"Generation job #{job.pk} ({Operation(job.operation).label.lower()})",
            metadata={"job_id": job.pk, "operation": job.operation, "model": job.model},
            source=charges.job_source(job),
        )
        if audit is not None:
            audit(job)
        set_log_context(job_id=job.pk)  # this request's log lines and the task's message
        if not dispatched:
            transaction.on_commit(partial(enqueue_run, job_id=job.pk))
    return job


def _new_job(
    *, user, prepared: PreparedJob, retry_of: GenerationJob | None, dispatched: bool
) -> GenerationJob:
    """The job ``prepared`` describes, not saved yet: due to be sent at once when a dispatcher
    sends it, else (its task sent after commit) due to be sent again if it has not started
    by ``first_resend_at``."""
    now = timezone.now()
    return GenerationJob(
        user=user,
        operation=prepared.offering.operation,
        model=prepared.offering.model,
        tier=prepared.tier,
        prompt=prepared.prompt,
        parameters=prepared.parameters,
        is_edit=prepared.is_edit,
        source=prepared.source,
        retry_of=retry_of,
        uses_own_key=prepared.own_key,
        price_rule=prepared.estimate.rule,
        estimated_credits=prepared.estimate.credits,
        max_retries=app_settings.MAX_RETRIES,
        next_attempt_at=now,
        resend_at=now if dispatched else first_resend_at(now),
    )


def job_cancel(*, user, job_id: int) -> GenerationJob:
    """Cancel ``user``'s job while it is still PENDING, refunding it in full (once).

    Raises GenerationJob.DoesNotExist for someone else's job, InvalidTransition when the job
    has already started or finished.
    """
    with transaction.atomic(durable=True):
        now = timezone.now()
        cancelled = GenerationJob.objects.filter(
            pk=job_id, user_id=user.pk, status=Status.PENDING
        ).update(
            status=Status.CANCELLED,
            completed_at=now,
            next_attempt_at=None,
            resend_at=None,
            updated_at=now,
            error_message="",
        )
        job = GenerationJob.objects.get(pk=job_id, user_id=user.pk)
        if not cancelled:
            raise InvalidTransition(job_id=job_id, current=job.status, target=Status.CANCELLED)
        charges.refund(job, amount=None, reason=f"Job #{job.pk} cancelled")
    return job


def job_refund_completed(
    *, job_id: int, staff_user, reason: str, audit: Callable[[GenerationJob], object] | None = None
) -> GenerationJob:
    """Staff: give back what a COMPLETED job cost (a bad result) and mark it REFUNDED.

    The job's one refund of its charge is used when it is still free; when it already
    returned the unused estimate, the credits come back as an adjustment naming the job.
    ``audit`` is called with the job inside the refund's transaction.
    """
    if (
        staff_user is None
        or not staff_user.is_staff
        or not staff_user.has_perm("generations.manage_jobs")
    ):
        raise NotAllowed("Refunding a job needs the permission to manage jobs.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("Give a reason for the refund.", field="reason")
    with transaction.atomic(durable=True):
        job = GenerationJob.objects.select_for_update().get(pk=job_id)
        if job.status != Status.COMPLETED:
            raise InvalidTransition(job_id=job_id, current=job.status, target=Status.REFUNDED)
        amount = job.credits_charged
        job.status = Status.REFUNDED
        # The customer reads a neutral line; the staff reason stays in the internal note and
        # the audit row.
        job.error_message = "Refunded by our support team."
        job.save(update_fields=["status", "error_message", "updated_at"])
        if amount > 0:
            description = f"Refund of job #{job.pk}"
            if charges.refund_entry(job) is None:
                charges.refund(
                    job,
                    amount=amount,
                    reason=description,
                    internal_note=reason,
                    created_by=staff_user,
                )
            else:
                credits_adjust(
                    user=job.user,
                    amount=amount,
                    reason=f"Refund of job #{job.pk}: {reason}",
                    description=description,
                    staff_user=staff_user,
                    idempotency_key=f"job:{job.pk}:staff-refund",
                    metadata={"job_id": job.pk},
                )
        if audit is not None:
            audit(job)
    return job


def job_retry_failed(
    *, job_id: int, staff_user, reason: str, audit: Callable[[GenerationJob], object] | None = None
) -> GenerationJob:
    """Staff: run a FAILED job again, as a new job for the same user and request.

    The failed job was refunded in full when it failed, so the new job is priced and charged
    like a fresh submission (at today's prices) and is refunded in turn if it fails too. A
    failed job is retried at most once. Raises NotAllowed, InvalidRequest, InvalidTransition,
    TooManyRunningJobs or the credits errors; then nothing was created or charged.
    ``audit`` is called with the new job inside the transaction that creates it.
    """
    if (
        staff_user is None
        or not staff_user.is_staff
        or not staff_user.has_perm("generations.manage_jobs")
    ):
        raise NotAllowed("Retrying a job needs the permission to manage jobs.")
    if not (reason or "").strip():
        raise InvalidRequest("Give a reason for the retry.", field="reason")
    failed = GenerationJob.objects.select_related("user").get(pk=job_id)
    return _retry(failed, audit=audit)


def job_retry_own(*, user, job_id: int) -> GenerationJob:
    """The owner runs their own FAILED job again: the same mechanism and rules as the staff
    retry (a new job charged like a fresh submission, at most once per failed job).

    Raises GenerationJob.DoesNotExist for someone else's job, AlreadyRetried, InvalidTransition,
    InvalidRequest, TooManyRunningJobs or the credits errors; then nothing was created or charged.
    """
    failed = GenerationJob.objects.select_related("user").get(pk=job_id, user_id=user.pk)
    return _retry(failed)


def _retry(
    failed: GenerationJob, *, audit: Callable[[GenerationJob], object] | None = None
) -> GenerationJob:
    if failed.status != Status.FAILED:
        raise InvalidTransition(job_id=failed.pk, current=failed.status, target="retried")
    request = JobRequest(
        operation=failed.operation,
        model=failed.model,
        tier=failed.tier,
        prompt=failed.prompt,
        is_edit=failed.is_edit,
        source_id=failed.source_id,
        seed=failed.parameters.get("seed"),
        max_output_tokens=failed.parameters.get("max_output_tokens"),
        use_own_key=failed.uses_own_key,
        inputs=failed.parameters.get("inputs"),
    )
    return job_submit(user=failed.user, request=request, retry_of=failed, audit=audit)


def _check_retryable(*, failed: GenerationJob, user) -> None:
    if failed.user_id != user.pk:
        raise InvalidRequest("A retry runs for the failed job's own user.", field="retry_of")
    retry_id = GenerationJob.objects.filter(retry_of=failed).values_list("pk", flat=True).first()
    if retry_id is not None:
        raise AlreadyRetried(job_id=failed.pk, retry_id=retry_id)
    status = GenerationJob.objects.filter(pk=failed.pk).values_list("status", flat=True).get()
    if status != Status.FAILED:
        raise InvalidTransition(job_id=failed.pk, current=status, target="retried")


def _source_job(*, user, source_id, offering: Offering) -> GenerationJob:
    if not source_id:
        raise InvalidRequest("Choose the earlier result to work on.", field="source_id")
    try:
        source = GenerationJob.objects.get(pk=int(source_id), user_id=user.pk)
    except (GenerationJob.DoesNotExist, TypeError, ValueError):
        raise InvalidRequest("That earlier result was not found.", field="source_id") from None
    if source.status != Status.COMPLETED or not source.result_file:
        raise InvalidRequest("Only a finished job can be edited or enhanced.", field="source_id")
    wanted = (
        Operation.IMAGE
        if offering.operation in (Operation.IMAGE, Operation.ENHANCE)
        else offering.operation
    )
    if source.operation != wanted or source.parameters.get("backend") != offering.backend:
        raise InvalidRequest("That earlier result is of another kind.", field="source_id")
    return source
