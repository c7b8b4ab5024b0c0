from celery import shared_task

from .crossings import crossings_handle
from .expiry_notices import lots_expiring_notify
from .idempotency import idempotency_records_purge
from .services import lots_expire_due


@shared_task(name="credits.tasks.purge_expired_idempotency_records")
def purge_expired_idempotency_records() -> int:
    """Delete idempotency records whose time has passed (in batches); returns how many went.

    Scheduled by CELERY_BEAT_SCHEDULE["purge-expired-idempotency-records"] (hourly).
    Records kept for good (no expiry) are never deleted.
    """
    return idempotency_records_purge()


@shared_task(name="credits.tasks.expire_lots")
def expire_lots() -> int:
    """Write the expiry of lapsed lots (a batch per run); returns the users caught up.

    Scheduled by CELERY_BEAT_SCHEDULE["expire-credit-lots"]. Safe to run twice at once.
    """
    return lots_expire_due()


@shared_task(name="credits.tasks.handle_crossings")
def handle_crossings() -> int:
    """Handle the balances that fell below a threshold (see ``credits.crossings``).

    Sent when a movement records a crossing, and scheduled by
    CELERY_BEAT_SCHEDULE["handle-balance-crossings"] so a lost message only delays one.
    """
    return crossings_handle()


@shared_task(name="credits.tasks.notify_expiring_lots", ignore_result=True)
def notify_expiring_lots() -> int:
    """Email about lots expiring within a week, once per lot (CELERY_BEAT_SCHEDULE
    ["notify-expiring-credit-lots"], hourly); returns the emails queued."""
    return lots_expiring_notify()
