from datetime import timedelta

import pytest
from django.utils import timezone

from credits.models import IdempotencyRecord
from credits.tasks import purge_expired_idempotency_records
from tests.conftest import wait_until


@pytest.mark.worker
def test_a_real_worker_runs_a_task_that_writes_to_postgresql(celery_worker_process):
    past = timezone.now() - timedelta(minutes=1)
    IdempotencyRecord.objects.create(key="old", expires_at=past)
    IdempotencyRecord.objects.create(key="fresh", expires_at=timezone.now() + timedelta(hours=1))

    result = purge_expired_idempotency_records.delay()

    wait_until(
        lambda: not IdempotencyRecord.objects.filter(key="old").exists(),
        message="the worker to purge",
    )
    assert IdempotencyRecord.objects.filter(key="fresh").exists()
    assert (
        f"Task credits.tasks.purge_expired_idempotency_records[{result.id}] succeeded"
        in celery_worker_process.log()
    )
