"""Idempotency records: the stored result of an operation, found again by its key.

Ledger movements need no record (the ledger entry's UNIQUE key is the record). These are
for operations without a ledger entry of their own (spending holds) and for callers that
want to remember what an operation answered (``idempotency_remember``) so that a retry
gets the same answer. Records expire after ``CREDITS_IDEMPOTENCY_TTL`` unless written with
``ttl=None`` (kept for good); an expired record counts as absent, and the periodic task
``credits.tasks.purge_expired_idempotency_records`` deletes them.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .app_settings import app_settings
from .exceptions import InvalidIdempotencyKey
from .models import IdempotencyRecord

#: Pass as ``ttl`` to keep the record for good.
FOREVER = None
_DEFAULT = object()


def require_key(key) -> str:
    """Return ``key`` if it is a usable idempotency key, else raise InvalidIdempotencyKey."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidIdempotencyKey("An idempotency key must be a non-empty string.")
    if len(key) > 255:
        raise InvalidIdempotencyKey(
            f"An idempotency key must be at most 255 characters, not {len(key)}."
        )
    return key


def idempotency_lookup(*, key: str, now: datetime | None = None) -> dict | None:
    """The result stored under ``key``, or None when there is none or it has expired."""
    now = now or timezone.now()
    record = (
        IdempotencyRecord.objects.filter(key=require_key(key))
        .values("result", "expires_at")
        .first()
    )
    if record is None or (record["expires_at"] is not None and record["expires_at"] <= now):
        return None
    return record["result"]


def idempotency_remember(
    *, key: str, result: dict, ttl: timedelta | None = _DEFAULT
) -> tuple[dict, bool]:
    """Store ``result`` under ``key`` unless a live record is there already.

    Returns ``(stored result, created)``: ``created`` is True for the one caller whose
    result was stored; every other caller (including concurrent ones) gets the first
    result and False. An expired record is replaced as if it were absent. Joins the
    caller's transaction (so the record commits or rolls back with the work it guards).
    """
    require_key(key)
    ttl = app_settings.IDEMPOTENCY_TTL if ttl is _DEFAULT else ttl
    now = timezone.now()
    expires_at = None if ttl is None else now + ttl
    with transaction.atomic():
        record, created = IdempotencyRecord.objects.get_or_create(
            key=key, defaults={"result": result, "expires_at": expires_at}
        )
        if created:
            return record.result, True
        if record.expires_at is not None and record.expires_at <= now:
            # Conditional on the expiry read, so two callers cannot both take over the key.
            taken = IdempotencyRecord.objects.filter(
                pk=record.pk, expires_at=record.expires_at
            ).update(result=result, created_at=now, expires_at=expires_at)
            if taken:
                return result, True
            record.refresh_from_db()
        return record.result, False


def idempotency_records_purge(*, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete expired records in batches (short statements, no long lock); returns how many."""
    now = now or timezone.now()
    deleted = 0
    while True:
        batch = list(
            IdempotencyRecord.objects.filter(expires_at__lte=now)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not batch:
            return deleted
        count, _ = IdempotencyRecord.objects.filter(pk__in=batch, expires_at__lte=now).delete()
        deleted += count
