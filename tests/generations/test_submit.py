"""Submitting and cancelling jobs: one transaction charges the estimate; refusals leave nothing."""

import threading

import pytest
from django.db import connection

from core.db import RoundTrips
from credits.exceptions import InsufficientCredits, SpendingFrozen
from credits.models import CreditBalance, LedgerEntry
from credits.services import spending_hold
from generations.api_keys import api_key_store
from generations.charges import job_ledger_entries, job_source
from generations.exceptions import InvalidRequest, InvalidTransition, TooManyRunningJobs
from generations.models import GenerationJob, PriceRule
from generations.pricing import forget_kept_prices, kept_prices
from generations.queue import jobs_dispatch
from generations.running import job_run
from generations.services import JobRequest, job_cancel, job_submit

from .conftest import USER_KEY, assert_ledger_clean, queued_job_ids

PICTURE = JobRequest(operation="image", model="procedural-svg", prompt="three red circles", seed=1)


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


@pytest.mark.django_db(transaction=True)
def test_submitting_charges_the_estimate_once_and_the_dispatcher_queues_the_task_once(
    make_user, price_rules, parked_queue, settings
):
    user = make_user(credits=20)
    job = job_submit(user=user, request=PICTURE)
    assert job.status == "PENDING" and job.estimated_credits == 3
    charge = LedgerEntry.objects.get(idempotency_key=f"job:{job.pk}:charge")
    assert charge.kind == "SPEND" and charge.amount == -3 and charge.source == job_source(job)
    assert balance(user) == 17
    # The request sent nothing: the job is due to be sent, and a worker's dispatcher sends it.
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == []
    assert jobs_dispatch() == 1
    assert jobs_dispatch() == 0  # claimed: not due again until its task is overdue
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == [job.pk]
    assert job_run(job_id=job.pk) == "completed"


@pytest.mark.django_db(transaction=True)
def test_with_no_dispatcher_a_submission_sends_its_task_after_commit(
    make_user, price_rules, parked_queue, settings
):
    settings.GENERATIONS_DISPATCH_SECONDS = 0
    user = make_user(credits=20)
    job = job_submit(user=user, request=PICTURE)
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == [job.pk]
    assert jobs_dispatch() == 0  # sent: due again only if it has not started a minute later
    assert balance(user) == 17


@pytest.mark.django_db(transaction=True)
def test_a_submission_costs_four_round_trips_to_the_database(
    make_user, price_rules, parked_queue, settings
):
    user = make_user(credits=20)
    first = job_submit(user=user, request=PICTURE)  # this process reads the price list
    with RoundTrips() as trips:
        job = job_submit(user=user, request=PICTURE)
    # BEGIN; the lock, the price list's stamp, the count and the insert; the spend; COMMIT
    assert trips.count == 4
    assert jobs_dispatch() == 2
    assert sorted(queued_job_ids(settings.CELERY_BROKER_URL, parked_queue)) == [first.pk, job.pk]
    assert balance(user) == 14


@pytest.mark.django_db(transaction=True)
def test_too_few_credits_creates_no_job_and_charges_nothing(
    make_user, price_rules, parked_queue, settings
):
    user = make_user(credits=2)
    with pytest.raises(InsufficientCredits, match="needs 3, the balance is 2"):
        job_submit(user=user, request=PICTURE)
    assert not GenerationJob.objects.exists()
    assert balance(user) == 2
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == []


@pytest.mark.django_db(transaction=True)
def test_frozen_spending_creates_no_job(make_user, price_rules, parked_queue):
    user = make_user(credits=20)
    spending_hold(user=user, reason="dispute", idempotency_key="dispute-1")
    with pytest.raises(SpendingFrozen):
        job_submit(user=user, request=PICTURE)
    assert not GenerationJob.objects.exists() and balance(user) == 20


@pytest.mark.django_db(transaction=True)
def test_the_limit_of_running_jobs_refuses_more_until_one_ends(
    make_user, price_rules, parked_queue, settings
):
    settings.GENERATIONS_MAX_RUNNING_JOBS = 2
    user = make_user(credits=50)
    first = job_submit(user=user, request=PICTURE)
    job_submit(user=user, request=PICTURE)
    with pytest.raises(TooManyRunningJobs, match="already have 2 jobs"):
        job_submit(user=user, request=PICTURE)
    assert GenerationJob.objects.count() == 2 and balance(user) == 44
    job_cancel(user=user, job_id=first.pk)
    job_submit(user=user, request=PICTURE)
    assert GenerationJob.objects.filter(status="PENDING").count() == 2


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_pending_job_refunds_it_once_and_its_task_then_does_nothing(
    make_user, price_rules, parked_queue
):
    user = make_user(credits=10)
    job = job_submit(user=user, request=PICTURE)
    cancelled = job_cancel(user=user, job_id=job.pk)
    assert cancelled.status == "CANCELLED" and balance(user) == 10
    with pytest.raises(InvalidTransition):
        job_cancel(user=user, job_id=job.pk)
    refunds = job_ledger_entries(job).filter(kind="REFUND")
    assert [(r.amount, r.idempotency_key) for r in refunds] == [(3, f"job:{job.pk}:refund")]
    assert job_run(job_id=job.pk) == "skipped"  # the queued task arrives later
    job.refresh_from_db()
    assert job.status == "CANCELLED" and not job.result_file
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_a_started_job_cannot_be_cancelled(make_user, price_rules, parked_queue):
    user = make_user(credits=10)
    job = job_submit(user=user, request=PICTURE)
    assert job_run(job_id=job.pk) == "completed"
    with pytest.raises(InvalidTransition, match="completed"):
        job_cancel(user=user, job_id=job.pk)


@pytest.mark.django_db(transaction=True)
def test_nobody_can_cancel_someone_elses_job(make_user, price_rules, parked_queue):
    owner, other = make_user(credits=10), make_user(credits=10)
    job = job_submit(user=owner, request=PICTURE)
    with pytest.raises(GenerationJob.DoesNotExist):
        job_cancel(user=other, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "PENDING"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "request_,field",
    [
        (JobRequest(operation="image", model="procedural-svg", prompt="   "), "prompt"),
        (JobRequest(operation="image", model="no-such-model", prompt="a cat"), "model"),
        (JobRequest(operation="teleport", prompt="a cat"), "operation"),
        (JobRequest(operation="enhance", model="procedural-svg", tier="2K"), "source_id"),
        (JobRequest(operation="enhance", model="procedural-svg", tier="16K", source_id=1), "tier"),
        (JobRequest(operation="image", model="procedural-svg", prompt="a cat", seed=-4), "seed"),
        (JobRequest(operation="image", model="procedural-svg", prompt="x" * 5000), "prompt"),
        (
            JobRequest(
                operation="image", model="procedural-svg", prompt="blue\x01 star\x0b moon\x1b"
            ),
            "prompt",
        ),
        (JobRequest(operation="image", model="procedural-svg", prompt="a cat\x00"), "prompt"),
    ],
)
def test_bad_requests_are_refused_with_the_field_at_fault(
    make_user, price_rules, parked_queue, request_, field
):
    user = make_user(credits=50)
    with pytest.raises(InvalidRequest) as caught:
        job_submit(user=user, request=request_)
    assert caught.value.field == field
    assert not GenerationJob.objects.exists() and balance(user) == 50


@pytest.mark.django_db(transaction=True)
def test_a_prompt_keeps_its_line_breaks_and_tabs(make_user, price_rules, parked_queue):
    user = make_user(credits=10)
    job = job_submit(
        user=user,
        request=JobRequest(
            operation="image", model="procedural-svg", prompt="  a red sun\r\nover\tthe sea  "
        ),
    )
    assert job.prompt == "a red sun\nover\tthe sea"


@pytest.mark.django_db(transaction=True)
def test_nobody_can_edit_or_enhance_someone_elses_picture(make_user, price_rules, parked_queue):
    owner, other = make_user(credits=10), make_user(credits=10)
    job = job_submit(user=owner, request=PICTURE)
    job_run(job_id=job.pk)
    for request in (
        JobRequest(operation="enhance", model="procedural-svg", tier="1K", source_id=job.pk),
        JobRequest(
            operation="image", model="procedural-svg", prompt="blue", is_edit=True, source_id=job.pk
        ),
    ):
        with pytest.raises(InvalidRequest, match="not found"):
            job_submit(user=other, request=request)
    assert balance(other) == 10


@pytest.mark.django_db(transaction=True)
def test_text_on_the_users_own_key_costs_the_platform_fee(
    make_user, price_rules, parked_queue, settings, fake_openai
):
    settings.OPENAI_API_KEY = (
        ""  # the platform has no key: only users with their own can use the model
    )
    settings.OPENAI_MODEL = "test-chat"
    settings.OPENAI_BASE_URL = fake_openai.url  # where the key is checked when it is stored
    user = make_user(credits=5)
    text = JobRequest(
        operation="text", model="test-chat", prompt="A slogan for a bakery", max_output_tokens=4096
    )
    with pytest.raises(InvalidRequest):
        job_submit(user=user, request=text)
    api_key_store(user=user, api_key=USER_KEY)
    job = job_submit(user=user, request=text)
    assert job.uses_own_key and job.estimated_credits == 1 and job.price_rule.own_key
    assert balance(user) == 4


@pytest.mark.django_db(transaction=True)
def test_a_price_changed_after_this_process_read_the_prices_is_the_one_charged(
    make_user, price_rules, parked_queue
):
    user = make_user(credits=20)
    assert job_submit(user=user, request=PICTURE).estimated_credits == 3
    # Changed behind the process's back (no model signal): any write counts.
    PriceRule.objects.filter(model="procedural-svg").update(base_credits=5)
    job = job_submit(user=user, request=PICTURE)
    assert job.estimated_credits == 5 and job.price_rule.base_credits == 5
    assert balance(user) == 12


@pytest.mark.django_db(transaction=True)
def test_a_price_rule_deleted_after_this_process_read_the_prices_is_not_used(
    make_user, price_rules, parked_queue
):
    user = make_user(credits=20)
    cheaper = PriceRule.objects.create(
        name="Free members' pictures",
        operation="image",
        model="procedural-svg",
        membership_tier="FREE",
        base_credits=1,
    )
    forget_kept_prices()
    assert cheaper in kept_prices().rules  # this process has read it
    cheaper.delete()  # unused, so it may go
    job = job_submit(user=user, request=PICTURE)
    assert job.estimated_credits == 3 and job.price_rule.membership_tier == ""
    assert balance(user) == 17


def _submit_in_threads(users_and_requests, *, threads: int):
    barrier = threading.Barrier(threads)
    outcomes = []
    lock = threading.Lock()

    def submit(user, request):
        try:
            barrier.wait()
            job_submit(user=user, request=request)
            result = "ok"
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            result = type(exc).__name__
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=submit, args=item) for item in users_and_requests]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_submissions_with_credits_for_ten_make_exactly_ten_jobs(
    make_user, price_rules, parked_queue, settings
):
    settings.GENERATIONS_MAX_RUNNING_JOBS = 100
    user = make_user(credits=30)  # 10 pictures at 3 credits
    outcomes = _submit_in_threads([(user, PICTURE)] * 30, threads=30)
    assert outcomes.count("ok") == 10
    assert outcomes.count("InsufficientCredits") == 20
    assert GenerationJob.objects.count() == 10
    assert LedgerEntry.objects.filter(kind="SPEND", user=user).count() == 10
    assert balance(user) == 0
    assert jobs_dispatch() == 10
    assert sorted(queued_job_ids(settings.CELERY_BROKER_URL, parked_queue)) == sorted(
        GenerationJob.objects.values_list("pk", flat=True)
    )
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_never_pass_the_running_limit(
    make_user, price_rules, parked_queue, settings
):
    settings.GENERATIONS_MAX_RUNNING_JOBS = 3
    user = make_user(credits=100)
    outcomes = _submit_in_threads([(user, PICTURE)] * 12, threads=12)
    assert outcomes.count("ok") == 3 and outcomes.count("TooManyRunningJobs") == 9
    assert GenerationJob.objects.count() == 3 and balance(user) == 91
