"""Idempotency records: remembered once, forgotten after expiry, purged by the beat task."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from credits.exceptions import InvalidIdempotencyKey
from credits.idempotency import FOREVER, idempotency_lookup, idempotency_remember
from credits.models import IdempotencyRecord
from credits.tasks import purge_expired_idempotency_records
from tests.credits.helpers import run_concurrently


@pytest.mark.django_db
def test_the_first_result_is_kept_and_returned_to_every_later_caller():
    first = idempotency_remember(key="export:7", result={"file": "a.csv"})
    again = idempotency_remember(key="export:7", result={"file": "b.csv"})

    assert first == ({"file": "a.csv"}, True)
    assert again == ({"file": "a.csv"}, False)
    assert idempotency_lookup(key="export:7") == {"file": "a.csv"}
    assert idempotency_lookup(key="export:8") is None


@pytest.mark.django_db
def test_records_expire_after_the_configured_time(settings):
    settings.CREDITS_IDEMPOTENCY_TTL = timedelta(hours=2)
    idempotency_remember(key="k", result={"n": 1})
    record = IdempotencyRecord.objects.get(key="k")
    assert timedelta(hours=1, minutes=59) < record.expires_at - timezone.now() <= timedelta(hours=2)

    IdempotencyRecord.objects.filter(key="k").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert idempotency_lookup(key="k") is None
    assert idempotency_remember(key="k", result={"n": 2}) == ({"n": 2}, True)


@pytest.mark.django_db
def test_records_kept_for_good_never_expire():
    idempotency_remember(key="holds:dispute:1", result={"step": 1}, ttl=FOREVER)

    assert IdempotencyRecord.objects.get(key="holds:dispute:1").expires_at is None
    assert purge_expired_idempotency_records() == 0
    assert idempotency_lookup(key="holds:dispute:1") == {"step": 1}


@pytest.mark.django_db
def test_the_task_deletes_only_expired_records():
    now = timezone.now()
    IdempotencyRecord.objects.bulk_create(
        [
            IdempotencyRecord(key=f"old-{i}", expires_at=now - timedelta(minutes=i + 1))
            for i in range(7)
        ]
        + [
            IdempotencyRecord(key="live", expires_at=now + timedelta(hours=1)),
            IdempotencyRecord(key="kept", expires_at=None),
        ]
    )

    assert purge_expired_idempotency_records() == 7

    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["kept", "live"]


def test_the_task_is_scheduled_by_beat():
    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-expired-idempotency-records"]

    assert entry["task"] == purge_expired_idempotency_records.name


@pytest.mark.django_db
def test_a_bad_key_is_refused():
    with pytest.raises(InvalidIdempotencyKey):
        idempotency_remember(key="", result={})


@pytest.mark.django_db(transaction=True)
def test_concurrent_callers_store_one_result():
    outcomes = run_concurrently(
        [lambda i=i: idempotency_remember(key="race", result={"caller": i}) for i in range(8)]
    )

    results = [o.value for o in outcomes]
    assert [o.error for o in outcomes if o.error] == []
    assert sum(created for _, created in results) == 1
    assert len({tuple(r.items()) for r, _ in results}) == 1
