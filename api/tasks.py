from celery import shared_task

from .idempotency import api_requests_purge


@shared_task(name="api.tasks.purge_expired_api_requests")
def purge_expired_api_requests() -> int:
    """Delete the API's stored POST answers past their replay time (``API_IDEMPOTENCY_DAYS``).

    Scheduled by CELERY_BEAT_SCHEDULE["purge-expired-api-requests"] (hourly)."""
    return api_requests_purge()
