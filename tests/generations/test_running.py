"""Running jobs in this process, one delivery at a time: claims, completion, retries, failure,
take-over of a dead run, and the reaper. Tasks sent meanwhile wait in a queue nobody reads."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from credits.models import CreditBalance, LedgerEntry
from generations.api_keys import api_key_remove, api_key_store
from generations.backends import BackendOutput
from generations.charges import job_ledger_entries
from generations.models import GenerationJob
from generations.queue import jobs_dispatch
from generations.running import backoff, job_claim, job_complete, job_run, jobs_reap
from generations.services import JobRequest, job_submit

from .conftest import USER_KEY, assert_ledger_clean, clock_at, jobs_reap_at, queued_job_ids
from .fake_openai import Answer

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = JobRequest(
    operation="text", model="test-chat", prompt="A two-line poem about rain", max_output_tokens=1000
)
PICTURE = JobRequest(
    operation="image", model="procedural-svg", prompt="two yellow stars at night", seed=4
)


@pytest.fixture
def endpoint(openai_settings, price_rules, parked_queue):
    return openai_settings


def balance(user):
    return CreditBalance.objects.get(user=user).balance


def ledger(job):
    return [(e.kind, e.amount) for e in job_ledger_entries(job).order_by("id")]


def test_a_completed_text_job_is_charged_its_usage_and_refunded_the_rest(make_user, endpoint):
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    assert job_run(job_id=job.pk) == "completed"
    job.refresh_from_db()
    assert job.status == "COMPLETED" and job.completed_at and job.claim_token is None
    assert job.result_file.read().decode().startswith("Here is your text about")
    sent = endpoint.calls()[0]
    assert job.usage["output_tokens"] == 42 and job.usage["input_tokens"] > 0
    # 1 base + input at 1/1k + 42 output at 4/1k = 2 credits, far below the estimate
    assert job.credits_charged == 2 < job.estimated_credits
    assert ledger(job) == [("SPEND", -job.estimated_credits), ("REFUND", job.estimated_credits - 2)]
    assert LedgerEntry.objects.filter(idempotency_key=f"job:{job.pk}:refund").exists()
    assert balance(user) == 18
    assert sent.body["max_tokens"] == 1000
    assert_ledger_clean()


def test_a_duplicate_delivery_does_nothing(make_user, endpoint):
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    assert job_run(job_id=job.pk) == "completed"
    assert job_run(job_id=job.pk) == "skipped"
    assert len(endpoint.calls()) == 1
    assert [k for k, _ in ledger(job)] == ["SPEND", "REFUND"]


def test_only_one_of_two_simultaneous_deliveries_claims_the_job(make_user, endpoint):
    user = make_user(credits=20)
    job = job_submit(user=user, request=PICTURE)
    barrier, claims = threading.Barrier(2), []

    def claim():
        barrier.wait()
        claims.append(job_claim(job_id=job.pk))
        connection.close()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(c is not None for c in claims) == 1


def test_retryable_errors_are_retried_with_growing_backoff_then_succeed(
    make_user, endpoint, settings, parked_queue
):
    settings.GENERATIONS_RETRY_BACKOFF, settings.GENERATIONS_RETRY_BACKOFF_MAX = "2", "60"
    endpoint.script(Answer(status=500), Answer(status=503))
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    assert jobs_dispatch() == 1  # what a worker's dispatcher does
    before = timezone.now()
    assert job_run(job_id=job.pk) == "retrying"
    job.refresh_from_db()
    assert job.status == "PENDING" and job.retry_count == 1
    assert "HTTP 500" in job.error_message and "Trying again (1 of 3)" in job.error_message
    assert timedelta(seconds=1.5) < job.next_attempt_at - before < timedelta(seconds=3)
    first_retry = job.next_attempt_at
    with clock_at(first_retry):
        assert job_run(job_id=job.pk) == "retrying"
    job.refresh_from_db()
    assert job.retry_count == 2 and job.next_attempt_at - first_retry == timedelta(seconds=4)
    assert job_run(job_id=job.pk) == "skipped"  # a duplicate delivery never cuts the backoff short
    with clock_at(job.next_attempt_at):
        assert job_run(job_id=job.pk) == "completed"
    job.refresh_from_db()
    assert job.status == "COMPLETED" and job.error_message == "" and "HTTP 503" in job.error_detail
    assert (
        queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == [job.pk] * 3
    )  # the dispatcher's send + 2 retries
    assert [k for k, _ in ledger(job)] == ["SPEND", "REFUND"]


def test_backoff_doubles_is_capped_and_honours_retry_after(settings):
    settings.GENERATIONS_RETRY_BACKOFF = "5"
    settings.GENERATIONS_RETRY_BACKOFF_MAX = "30"
    assert [backoff(retry=n) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]
    assert backoff(retry=1, retry_after=12) == 12
    assert backoff(retry=1, retry_after=999) == 30


def test_a_permanent_error_fails_at_once_and_refunds_in_full(make_user, endpoint):
    endpoint.script(Answer(status=400, body={"error": {"message": "Your prompt was refused."}}))
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    assert job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == "FAILED" and job.retry_count == 0 and job.credits_charged == 0
    assert "Your prompt was refused." in job.error_message and "were refunded" in job.error_message
    assert "HTTP 400" in job.error_detail
    assert ledger(job) == [("SPEND", -job.estimated_credits), ("REFUND", job.estimated_credits)]
    assert balance(user) == 20
    assert job_run(job_id=job.pk) == "skipped"
    assert len(endpoint.calls()) == 1


def test_retries_run_out_then_the_job_fails_refunded_once(make_user, endpoint, settings):
    settings.GENERATIONS_MAX_RETRIES = 2
    endpoint.always(Answer(status=502))
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    outcomes = [job_run(job_id=job.pk) for _ in range(4)]
    assert outcomes == ["retrying", "retrying", "failed", "skipped"]
    job.refresh_from_db()
    assert job.status == "FAILED" and job.retry_count == 2
    assert "after 2 retries" in job.error_message
    assert ledger(job) == [("SPEND", -job.estimated_credits), ("REFUND", job.estimated_credits)]
    assert len(endpoint.calls()) == 3 and balance(user) == 20
    assert_ledger_clean()


def _backdate(job, seconds):
    GenerationJob.objects.filter(pk=job.pk).update(
        started_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_redelivered_task_takes_over_a_dead_run_and_the_dead_runner_cannot_finish(
    make_user, endpoint, settings
):
    settings.GENERATIONS_STUCK_AFTER = "60"
    user = make_user(credits=20)
    job = job_submit(user=user, request=PICTURE)
    dead = job_claim(job_id=job.pk)  # a worker claims the job, then is killed
    assert job_run(job_id=job.pk) == "skipped"  # its lease is still live: hands off
    _backdate(job, 61)
    assert job_run(job_id=job.pk) == "completed"  # the redelivered message takes over
    job.refresh_from_db()
    assert job.retry_count == 1 and "stopped before it finished" in job.error_detail
    result = job.result_file.name
    # The first worker was only slow, not dead: its late result is thrown away.
    late = BackendOutput(content=b"<svg xmlns='http://www.w3.org/2000/svg'/>", extension="svg")
    assert job_complete(claim=dead, output=late) == "lost"
    job.refresh_from_db()
    assert job.result_file.name == result
    folder, name = result.rsplit("/", 1)
    assert job.result_file.storage.listdir(folder)[1] == [
        name
    ]  # the late result's file was deleted
    assert [k for k, _ in ledger(job)] == [
        "SPEND"
    ]  # a picture costs its estimate: nothing to refund
    assert_ledger_clean()


def test_the_reaper_requeues_a_dead_run_with_retries_left(
    make_user, endpoint, settings, parked_queue
):
    settings.GENERATIONS_STUCK_AFTER = "60"
    user = make_user(credits=20)
    live = job_submit(user=user, request=PICTURE)
    dead = job_submit(user=user, request=PICTURE)
    assert jobs_dispatch() == 2
    job_claim(job_id=live.pk)
    job_claim(job_id=dead.pk)
    _backdate(dead, 120)
    assert jobs_reap() == {"requeued": 1, "failed": 0, "resent": 0}
    dead.refresh_from_db()
    live.refresh_from_db()
    assert live.status == "PROCESSING"
    assert dead.status == "PENDING" and dead.retry_count == 1 and dead.claim_token is None
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue).count(dead.pk) == 2
    assert job_run(job_id=dead.pk) == "completed"


def test_the_reaper_fails_and_refunds_a_dead_run_with_no_retries_left(
    make_user, endpoint, settings
):
    settings.GENERATIONS_STUCK_AFTER = "60"
    settings.GENERATIONS_MAX_RETRIES = 0
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    job_claim(job_id=job.pk)
    _backdate(job, 120)
    assert jobs_reap()["failed"] == 1
    job.refresh_from_db()
    assert job.status == "FAILED" and "stopped before it finished" in job.error_message
    assert ledger(job) == [("SPEND", -job.estimated_credits), ("REFUND", job.estimated_credits)]
    assert job_run(job_id=job.pk) == "skipped"  # the dead worker's message, redelivered at last
    assert balance(user) == 20 and not endpoint.calls()
    assert_ledger_clean()


def test_the_sweep_resends_a_task_that_never_started_after_a_minute_then_less_and_less_often(
    make_user, endpoint, settings, parked_queue
):
    user = make_user(credits=20)
    job = job_submit(user=user, request=PICTURE)
    assert jobs_dispatch() == 1  # its message waits in a queue nobody reads
    assert jobs_reap()["resent"] == 0  # just sent: not due yet
    submitted = job.next_attempt_at

    def at(seconds):  # the sweep as it would run ``seconds`` after the submission
        return jobs_reap_at(submitted + timedelta(seconds=seconds))

    assert at(59)["resent"] == 0
    assert at(61)["resent"] == 1  # about a minute, not ten
    assert at(100)["resent"] == 0  # once per resend, not at every sweep
    assert at(125)["resent"] == 1  # then after as long as it has waited so far...
    assert at(240)["resent"] == 0
    assert at(255)["resent"] == 1
    assert at(1000)["resent"] == 1  # ...up to GENERATIONS_PENDING_RESEND_MAX
    assert at(1500)["resent"] == 0 and at(1601)["resent"] == 1
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == [job.pk] * 6
    # Every copy is delivered in the end: the first runs the job, the rest do nothing.
    outcomes = [job_run(job_id=job.pk) for _ in range(6)]
    assert outcomes == ["completed"] + ["skipped"] * 5
    job.refresh_from_db()
    assert job.status == "COMPLETED" and job.resend_at is None
    assert ledger(job) == [("SPEND", -3)] and balance(user) == 17
    assert jobs_reap_at(submitted + timedelta(hours=1))["resent"] == 0
    assert_ledger_clean()


def test_a_job_waiting_out_its_retry_backoff_is_not_resent_early(
    make_user, endpoint, settings, parked_queue
):
    settings.GENERATIONS_RETRY_BACKOFF = "120"
    settings.GENERATIONS_RETRY_BACKOFF_MAX = "120"
    endpoint.script(Answer(status=503))
    job = job_submit(user=make_user(credits=20), request=TEXT)
    assert job_run(job_id=job.pk) == "retrying"
    job.refresh_from_db()
    assert jobs_reap_at(job.next_attempt_at + timedelta(seconds=30))["resent"] == 0
    assert jobs_reap_at(job.next_attempt_at + timedelta(seconds=61))["resent"] == 1


def test_without_a_broker_a_retry_runs_in_process_and_completes(
    make_user, openai_settings, price_rules, settings
):
    """The first-run mode (tasks in-process) ignores countdowns: its retries are never held back."""
    settings.GENERATIONS_RETRY_BACKOFF = "5"
    openai_settings.script(Answer(status=500))
    job = job_submit(user=make_user(credits=20), request=TEXT)
    job.refresh_from_db()
    assert job.status == "COMPLETED" and job.retry_count == 1


def test_an_output_that_fails_its_check_fails_the_job_and_refunds_it_in_full(make_user, endpoint):
    endpoint.script(
        Answer(
            body={
                "id": "chatcmpl-bad",
                "object": "chat.completion",
                "created": 1,
                "model": "test-chat",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": "blue\u0001 star\u000b moon\u001b",
                        },
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )
    )
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    assert job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == "FAILED" and not job.result_file and job.retry_count == 0
    assert "damaged" in job.error_message and "control characters" in job.error_detail
    assert ledger(job) == [("SPEND", -job.estimated_credits), ("REFUND", job.estimated_credits)]
    assert balance(user) == 20 and len(endpoint.calls("/v1/chat/completions")) == 1  # not retried
    assert_ledger_clean()


@pytest.mark.parametrize(
    "content,extension",
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><title>blue\x01 star</title></svg>", "svg"),
        (b"<svg><title>unclosed</svg>", "svg"),
        (b"<html><body>not a picture</body></html>", "svg"),
        (b'<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>', "svg"),
        (b"\xff\xfe not utf-8", "txt"),
        (b"   ", "txt"),
        (b"GIF89a...", "png"),
    ],
)
def test_damaged_outputs_of_every_kind_are_refused(content, extension):
    from generations.backends import PermanentBackendError
    from generations.validation import check_output

    with pytest.raises(PermanentBackendError):
        check_output(BackendOutput(content=content, extension=extension))


def test_a_stored_prompt_with_control_characters_still_draws_a_well_formed_svg(make_user, endpoint):
    """A prompt that reached the database before prompts were checked still draws a picture
    that displays: the renderer drops what XML cannot carry."""
    from xml.etree import ElementTree

    user = make_user(credits=20)
    job = job_submit(user=user, request=PICTURE)
    GenerationJob.objects.filter(pk=job.pk).update(
        prompt="blue\x01 star\x0b moon\x1b",
        parameters={**job.parameters, "chain": ["blue\x01 star\x0b moon\x1b"]},
    )
    assert job_run(job_id=job.pk) == "completed"
    job.refresh_from_db()
    root = ElementTree.fromstring(job.result_file.read())
    assert root.find("{http://www.w3.org/2000/svg}title").text == "blue star moon"


def test_a_key_removed_before_the_run_fails_the_job_with_a_refund(make_user, endpoint):
    user = make_user(credits=20)
    api_key_store(user=user, api_key=USER_KEY)
    job = job_submit(user=user, request=TEXT)
    assert job.uses_own_key
    api_key_remove(user=user)
    assert job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert "API key was removed" in job.error_message and balance(user) == 20


def test_own_key_jobs_call_the_endpoint_with_the_users_key(make_user, endpoint):
    user = make_user(credits=20)
    api_key_store(user=user, api_key=USER_KEY)
    job = job_submit(user=user, request=TEXT)
    assert job_run(job_id=job.pk) == "completed"
    assert (
        endpoint.calls("/v1/chat/completions")[0].headers["Authorization"] == f"Bearer {USER_KEY}"
    )
    job.refresh_from_db()
    assert job.credits_charged == 1 and balance(user) == 19


def test_a_text_edit_revises_the_earlier_text_at_the_edit_price(make_user, endpoint):
    user = make_user(credits=50)
    first = job_submit(user=user, request=TEXT)
    job_run(job_id=first.pk)
    edit = job_submit(
        user=user,
        request=JobRequest(
            operation="text",
            model="test-chat",
            prompt="Make it rhyme",
            is_edit=True,
            source_id=first.pk,
            max_output_tokens=1000,
        ),
    )
    fresh_estimate = job_submit(user=user, request=TEXT).estimated_credits
    assert edit.estimated_credits < fresh_estimate
    assert job_run(job_id=edit.pk) == "completed"
    sent = endpoint.calls()[-1].body["messages"][-1]["content"]
    assert "Here is your text about" in sent and "Make it rhyme" in sent
