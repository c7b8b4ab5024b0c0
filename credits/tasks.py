from celery import shared_task
from django.utils import timezone

from .models import IdempotencyRecord


@shared_task(name="credits.tasks.purge_expired_idempotency_records")
def purge_expired_idempotency_records() -> int:
    """Delete idempotency records whose time has passed; returns how many went."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
