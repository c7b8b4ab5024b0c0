"""End to end with real `celery worker` processes on Redis and PostgreSQL: jobs submitted
here run there; backends fail, workers are killed with SIGKILL, and every job still ends
completed or refunded, with a clean ledger."""

import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest

from credits.models import CreditBalance
from generations.charges import job_ledger_entries
from generations.services import JobRequest, job_submit
from generations.tasks import reap_stuck_jobs, run_job
from tests.conftest import wait_until

from .conftest import assert_ledger_clean, jobs_reap_at, openai_env
from .fake_openai import Answer

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TEXT = JobRequest(
    operation="text", model="test-chat", prompt="Three tips for better sleep", max_output_tokens=800
)
PICTURE = JobRequest(
    operation="image", model="procedural-svg", prompt="five pink balloons over the sea at sunset"
)


def status_of(job, *statuses, timeout=60):
    def reached():
        job.refresh_from_db()
        return job.status in statuses

    wait_until(reached, timeout=timeout, message=f"job #{job.pk} to become {' or '.join(statuses)}")
    return job


def ledger(job):
    return [(e.kind, e.amount, e.idempotency_key) for e in job_ledger_entries(job).order_by("id")]


def test_a_picture_job_runs_on_a_real_worker(make_user, price_rules, gen_worker):
    worker = gen_worker()
    user = make_user(credits=10)
    job = job_submit(user=user, request=PICTURE)
    status_of(job, "COMPLETED")
    svg = job.result_file.read().decode()
    assert svg.startswith("<svg") and svg.count('data-kind="balloon"') == 5
    assert job.credits_charged == 3
    assert ledger(job) == [("SPEND", -3, f"job:{job.pk}:charge")]
    assert CreditBalance.objects.get(user=user).balance == 7
    assert "Task generations.tasks.run_job[" in worker.log()
    assert_ledger_clean()


def test_a_text_job_is_charged_its_usage_and_the_difference_refunded(
    make_user, price_rules, gen_worker, fake_openai
):
    gen_worker(openai_env(fake_openai))
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    status_of(job, "COMPLETED")
    assert job.result_file.read().decode().startswith("Here is your text about: Three tips")
    assert job.usage["output_tokens"] == 42
    refund = job.estimated_credits - job.credits_charged
    assert refund > 0
    assert ledger(job) == [
        ("SPEND", -job.estimated_credits, f"job:{job.pk}:charge"),
        ("REFUND", refund, f"job:{job.pk}:refund"),
    ]
    assert CreditBalance.objects.get(user=user).balance == 20 - job.credits_charged
    assert_ledger_clean()


def test_a_backend_failing_twice_then_succeeding_completes_after_two_retries(
    make_user, price_rules, gen_worker, fake_openai
):
    gen_worker(openai_env(fake_openai))
    fake_openai.script(Answer(status=500), Answer(status=500))
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    status_of(job, "COMPLETED")
    assert job.retry_count == 2 and len(fake_openai.calls()) == 3
    assert job.error_detail.count("HTTP 500") == 2
    assert [kind for kind, _, _ in ledger(job)] == ["SPEND", "REFUND"]
    assert_ledger_clean()


@pytest.mark.parametrize(
    "answer,calls,words",
    [
        (Answer(status=503), 4, "after 3 retries"),  # retryable: the first try and three retries
        (
            Answer(status=400, body={"error": {"message": "Unsupported value: 'max_tokens'."}}),
            1,
            "Unsupported value",
        ),
    ],
)
def test_a_backend_that_keeps_failing_ends_failed_and_refunded_once(
    make_user, price_rules, gen_worker, fake_openai, answer, calls, words
):
    worker = gen_worker(openai_env(fake_openai))
    fake_openai.always(answer)
    user = make_user(credits=20)
    job = job_submit(user=user, request=TEXT)
    status_of(job, "FAILED")
    assert words in job.error_message and "refunded" in job.error_message
    assert len(fake_openai.calls()) == calls
    assert ledger(job) == [
        ("SPEND", -job.estimated_credits, f"job:{job.pk}:charge"),
        ("REFUND", job.estimated_credits, f"job:{job.pk}:refund"),
    ]
    # The same task delivered again later changes nothing.
    run_job.delay(job.pk)
    wait_until(
        lambda: worker.log().count("succeeded") >= 2 and "'skipped'" in worker.log(),
        timeout=30,
        message="the duplicate delivery to be skipped",
    )
    assert len(fake_openai.calls()) == calls and len(ledger(job)) == 2
    assert CreditBalance.objects.get(user=user).balance == 20
    assert_ledger_clean()


def _kill_mid_job(gen_worker, fake_openai, env, user):
    """Start a worker, let it begin a text job whose endpoint never answers, SIGKILL it."""
    release = threading.Event()
    fake_openai.script(Answer(block=release))
    worker = gen_worker(env)
    job = job_submit(user=user, request=TEXT)
    wait_until(fake_openai.started.is_set, timeout=60, message="the worker to call the endpoint")
    job.refresh_from_db()
    assert job.status == "PROCESSING"
    worker.kill()
    release.set()
    job.refresh_from_db()
    # The dangerous state: charged, no result, nobody working on it.
    assert job.status == "PROCESSING" and not job.result_file
    assert [kind for kind, _, _ in ledger(job)] == ["SPEND"]
    return worker, job


def test_a_killed_workers_job_is_taken_over_when_its_message_comes_back(
    make_user, price_rules, gen_worker, fake_openai
):
    # Short lease and visibility timeout, so the unacknowledged message is redelivered soon.
    env = openai_env(fake_openai, GENERATIONS_STUCK_AFTER=3, CELERY_VISIBILITY_TIMEOUT=3)
    user = make_user(credits=20)
    worker, job = _kill_mid_job(gen_worker, fake_openai, env, user)
    time.sleep(3.5)
    worker.start()  # the restarted worker restores the unacknowledged message and runs it again
    status_of(job, "COMPLETED")
    assert job.retry_count == 1 and "stopped before it finished" in job.error_detail
    assert len(fake_openai.calls()) == 2
    assert [kind for kind, _, _ in ledger(job)] == ["SPEND", "REFUND"]
    assert_ledger_clean()


@pytest.mark.parametrize("retries,outcome", [(3, "COMPLETED"), (0, "FAILED")])
def test_the_reaper_settles_a_killed_workers_job(
    make_user, price_rules, gen_worker, fake_openai, settings, retries, outcome
):
    settings.GENERATIONS_MAX_RETRIES = retries
    env = openai_env(
        fake_openai, GENERATIONS_STUCK_AFTER=3
    )  # the message itself is not redelivered for an hour
    user = make_user(credits=20)
    worker, job = _kill_mid_job(gen_worker, fake_openai, env, user)
    if retries:
        worker.start()
    time.sleep(3.5)
    reap_stuck_jobs()  # what beat runs every minute
    status_of(job, outcome)
    if outcome == "COMPLETED":
        assert job.retry_count == 1 and len(fake_openai.calls()) == 2
        assert [kind for kind, _, _ in ledger(job)] == ["SPEND", "REFUND"]
    else:
        assert "stopped before it finished" in job.error_message and not job.result_file
        assert ledger(job) == [
            ("SPEND", -job.estimated_credits, f"job:{job.pk}:charge"),
            ("REFUND", job.estimated_credits, f"job:{job.pk}:refund"),
        ]
        assert CreditBalance.objects.get(user=user).balance == 20
    assert_ledger_clean()


class RedisServer:
    """A redis-server of one test's own, on a spare port, that the test may stop and start
    (a broker outage); it keeps nothing across a restart, like a restarted broker."""

    def __init__(self, workdir):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    return conn.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(answers, timeout=20, message="the test's redis-server to answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_broker(settings, tmp_path):
    """This test's tasks and workers use a redis-server of its own (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    from config.celery_app import app

    server = RedisServer(tmp_path)
    server.start()
    settings.CELERY_BROKER_URL = server.url
    saved = {key: app.conf[key] for key in ("broker_read_url", "broker_write_url")}

    def use(urls: dict) -> None:
        app.conf.update(urls)
        app._pool = None  # connections are pooled per broker: start afresh
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None

    use({"broker_read_url": server.url, "broker_write_url": server.url})
    yield server
    server.stop()
    use(saved)


def completed_once(job, user, worker) -> None:
    """``job`` (a picture, 3 credits, of a user who had 10) completes, charged once."""
    status_of(job, "COMPLETED")
    assert job.retry_count == 0 and job.resend_at is None
    assert ledger(job) == [("SPEND", -3, f"job:{job.pk}:charge")]
    assert CreditBalance.objects.get(user=user).balance == 7
    assert worker.log().count("succeeded") >= 1
    assert_ledger_clean()


def test_a_job_submitted_while_the_broker_is_down_runs_once_when_it_is_back(
    make_user, price_rules, own_broker, settings, request
):
    start_worker = request.getfixturevalue("gen_worker")  # its queue is on this test's broker
    own_broker.stop()  # the broker goes away
    user = make_user(credits=10)
    began = time.perf_counter()
    job = job_submit(user=user, request=PICTURE)  # the request never waits for the broker
    assert time.perf_counter() - began < 2
    job.refresh_from_db()
    assert job.status == "PENDING" and ledger(job) == [("SPEND", -3, f"job:{job.pk}:charge")]
    own_broker.start()  # the broker is back, empty
    worker = start_worker()  # its dispatcher sends the due job: no sweep needed
    completed_once(job, user, worker)


def test_with_no_dispatcher_a_job_whose_send_failed_is_sent_by_the_sweep_a_minute_later(
    make_user, price_rules, own_broker, settings, request
):
    start_worker = request.getfixturevalue("gen_worker")  # its queue is on this test's broker
    no_dispatcher = {"GENERATIONS_DISPATCH_SECONDS": "0"}
    settings.GENERATIONS_DISPATCH_SECONDS = 0
    own_broker.stop()  # the broker goes away
    user = make_user(credits=10)
    job = job_submit(user=user, request=PICTURE)  # sending its task fails after the commit
    job.refresh_from_db()
    assert job.status == "PENDING" and ledger(job) == [("SPEND", -3, f"job:{job.pk}:charge")]
    own_broker.start()  # the broker is back, empty: the job's message never reached it
    worker = start_worker(no_dispatcher)
    assert reap_stuck_jobs()["resent"] == 0  # what beat runs every minute: not due yet...
    assert (
        jobs_reap_at(job.created_at + timedelta(seconds=61))["resent"] == 1
    )  # ...but a minute later it is
    completed_once(job, user, worker)
