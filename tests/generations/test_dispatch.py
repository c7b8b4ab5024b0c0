"""The job dispatcher: a submission is due to be sent at once and sends nothing itself; the
dispatcher sends each due job once per claim, rides out a broker that is down, and never
cuts a retry's backoff short. The polling thread (``core.dispatch``, shared with the webhook
dispatcher) and which workers run it: tests/payments/test_dispatch.py. End to end with real
workers: test_worker_e2e.py."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from generations.models import GenerationJob
from generations.queue import jobs_dispatch
from generations.running import job_run
from generations.services import JobRequest, job_cancel, job_submit
from tests.payments.test_broker_outage import PrivateRedis
from tests.payments.test_dispatch import broker_at, dispatch_at_once, queued

from .conftest import assert_ledger_clean, queued_job_ids

pytestmark = pytest.mark.django_db(transaction=True)

PICTURE = JobRequest(operation="image", model="procedural-svg", prompt="three red circles", seed=1)
TASK = "generations.tasks.run_job"


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


def test_the_dispatcher_sends_only_due_pending_jobs_each_once_per_claim(
    make_user, price_rules, parked_queue, settings
):
    user = make_user(credits=30)
    due = job_submit(user=user, request=PICTURE)
    cancelled = job_submit(user=user, request=PICTURE)
    job_cancel(user=user, job_id=cancelled.pk)
    waiting = job_submit(user=user, request=PICTURE)
    # A job waiting out a retry's backoff: due (and to be sent) only later.
    later = timezone.now() + timedelta(minutes=5)
    GenerationJob.objects.filter(pk=waiting.pk).update(
        next_attempt_at=later, resend_at=later + timedelta(seconds=60)
    )

    assert jobs_dispatch() == 1
    assert jobs_dispatch() == 0
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == [due.pk]
    due.refresh_from_db()
    # Leased: sent again only if its task has not started a minute from now.
    assert timedelta(seconds=59) < due.resend_at - timezone.now() <= timedelta(seconds=60)
    assert jobs_dispatch(due_before=timezone.now() + timedelta(seconds=61)) == 1
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == [due.pk] * 2
    # Both copies are delivered: one runs the job, the other finds nothing to do.
    assert [job_run(job_id=due.pk) for _ in range(2)] == ["completed", "skipped"]
    assert jobs_dispatch(due_before=timezone.now() + timedelta(hours=1)) == 1  # only ``waiting``
    assert_ledger_clean()


def test_a_job_written_before_resend_at_existed_is_sent_once_overdue(
    make_user, price_rules, parked_queue, settings
):
    user = make_user(credits=30)
    job = job_submit(user=user, request=PICTURE)
    GenerationJob.objects.filter(pk=job.pk).update(resend_at=None)
    assert jobs_dispatch() == 0  # not overdue yet: its first message may still be on its way
    GenerationJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=61)
    )
    assert jobs_dispatch() == 1
    assert queued_job_ids(settings.CELERY_BROKER_URL, parked_queue) == [job.pk]


def test_with_the_broker_down_the_claim_is_given_back_and_sent_once_it_is_back(
    make_user, price_rules, settings, private_redis
):
    user = make_user(credits=30)
    with broker_at(settings, private_redis.url) as queue:
        began = timezone.now()
        private_redis.stop()
        job = job_submit(user=user, request=PICTURE)  # the request does not touch the broker
        with pytest.raises(Exception):  # noqa: B017 - whatever kombu raises for a lost broker
            jobs_dispatch()
        job.refresh_from_db()
        assert job.status == "PENDING" and job.resend_at <= timezone.now()  # due again at once
        assert job.resend_at >= began

        private_redis.start()
        assert jobs_dispatch() == 1
        assert queued(private_redis.url, queue) == [(TASK, [job.pk])]


def test_dispatchers_running_at_once_never_send_the_same_claim_twice(
    make_user, price_rules, parked_queue, settings
):
    settings.GENERATIONS_MAX_RUNNING_JOBS = 100
    users = [make_user(credits=30) for _ in range(4)]
    jobs = [job_submit(user=u, request=PICTURE) for u in users for _ in range(10)]
    counts = dispatch_at_once(jobs_dispatch, limit=3)
    assert sum(counts) == 40
    assert sorted(queued_job_ids(settings.CELERY_BROKER_URL, parked_queue)) == sorted(
        job.pk for job in jobs
    )
