"""``Idempotency-Key`` for the API's POSTs: the first request claims the key, a retry gets the
stored response, the same key with another body or path is a 409.

The claim is its own committed row (unique on user and key) written before the work, so of
concurrent retries exactly one does the work; the others are told it is in progress (409
``request_in_progress`` with ``Retry-After``) until the response is stored, then get it
replayed. A response to a refusal is stored too (the same body gets the same answer), except
a 429 or a 5xx, after which the key is free to try again. A request that died holding its
claim is taken over by a retry once the lease (``API_IDEMPOTENCY_LEASE_SECONDS``) has passed;
the job endpoint then finds a job the dead request had committed by its claim and answers
with it rather than making another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from core.errors import ApplicationError

from .app_settings import app_settings
from .models import ApiRequest

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyError(ApplicationError):
    status = 409


def _conflict() -> IdempotencyError:
    return IdempotencyError(
        "This Idempotency-Key was already used with a different request.",
        code="idempotency_conflict",
    )


def _in_progress() -> IdempotencyError:
    error = IdempotencyError(
        "A request with this Idempotency-Key is still in progress; retry shortly.",
        code="request_in_progress",
    )
    error.retry_after = 1
    return error


def _body_hash(request: HttpRequest) -> str:
    return hashlib.sha256(request.body or b"").hexdigest()


def _claim(*, user, key: str, path: str, body_hash: str) -> tuple[ApiRequest, bool]:
    """Claim ``key``: ``(row, True)`` when it was answered already (replay the row), else
    ``(row, False)``: a new row, or a stale one taken over, now ours to work under."""
    now = timezone.now()
    lease = now + timedelta(seconds=app_settings.IDEMPOTENCY_LEASE_SECONDS)
    try:
        with transaction.atomic():
            row = ApiRequest.objects.create(
                user=user,
                key=key,
                path=path,
                body_hash=body_hash,
                locked_until=lease,
                expires_at=now + timedelta(days=app_settings.IDEMPOTENCY_DAYS),
            )
        row.fresh = True  # nobody worked under this key before
        return row, False
    except IntegrityError:
        pass
    row = ApiRequest.objects.filter(user_id=user.pk, key=key).first()
    if row is None:  # freed between our insert and this read: let the client retry
        raise _in_progress()
    if row.path != path or row.body_hash != body_hash:
        raise _conflict()
    if row.status is not None:
        if row.expires_at > now:
            return row, True
        # An expired record: start again under the same key.
    stale = Q(locked_until__lte=now) | Q(status__isnull=False, expires_at__lte=now)
    taken = ApiRequest.objects.filter(stale, pk=row.pk).update(
        locked_until=lease,
        status=None,
        response=None,
        expires_at=now + timedelta(days=app_settings.IDEMPOTENCY_DAYS),
    )
    if not taken:
        raise _in_progress()
    row.refresh_from_db()
    row.fresh = False  # a request that died may have done (part of) the work
    return row, False


def replayed(row: ApiRequest) -> JsonResponse:
    response = JsonResponse(row.response, status=row.status, safe=False)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(
    request: HttpRequest, *, user, work: Callable[[ApiRequest], tuple[int, dict]]
) -> JsonResponse:
    """Run ``work(claim)`` once per Idempotency-Key; its ``(status, body)`` is stored and
    answered, and answered again to every retry."""
    key = (request.headers.get(HEADER) or "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApplicationError(
            f"Send an {HEADER} header (1 to {MAX_KEY_LENGTH} characters) with every POST.",
            code="idempotency_key_required",
            status=422,
        )
    row, answered = _claim(user=user, key=key, path=request.path, body_hash=_body_hash(request))
    if answered:
        return replayed(row)
    try:
        status, body = work(row)
    except ApplicationError as error:
        if error.status == 429 or error.status >= 500:
            ApiRequest.objects.filter(pk=row.pk).delete()
            raise
        status, body = error.status, error.as_dict()
    except BaseException:
        ApiRequest.objects.filter(pk=row.pk).delete()
        raise
    ApiRequest.objects.filter(pk=row.pk).update(status=status, response=body)
    return JsonResponse(body, status=status, safe=False)


def api_requests_purge(*, now=None, batch_size: int = 5000) -> int:
    """Delete answered POST records past their replay time, in batches; returns how many went.

    A record still in progress is kept (its lease decides); an expired one would be taken over
    by a retry anyway, so deleting it changes no answer."""
    now = now or timezone.now()
    deleted = 0
    while True:
        ids = list(
            ApiRequest.objects.filter(expires_at__lte=now, status__isnull=False).values_list(
                "pk", flat=True
            )[:batch_size]
        )
        if not ids:
            return deleted
        deleted += ApiRequest.objects.filter(pk__in=ids).delete()[0]
