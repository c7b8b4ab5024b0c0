"""A key's daily credit cap, counted in the job's own transaction.

``key_charge_record`` runs inside ``job_submit``'s transaction (as its ``audit`` hook): it
locks the key's row of the day, refuses when the job's charge would pass the key's cap (the
job and its charge roll back with it), and links the job to the key and the request that made
it. The day is the local day (``TIME_ZONE``), as for the account's own caps.
"""

from datetime import datetime, time, timedelta

from django.db.models import F
from django.utils import timezone

from core.errors import ApplicationError

from .models import ApiJob, ApiKey, ApiKeyDailySpend, ApiRequest


class KeyCapReached(ApplicationError):
    code = "spending_cap"
    status = 429
    retryable = True

    def __init__(self, *, cap: int, spent: int, needed: int, retry_after: int):
        super().__init__(
            f"This needs {needed} credits and would pass this API key's daily cap of {cap} "
            f"({spent} spent today; it resets at midnight).",
            extra={"period": "key_day", "cap": cap, "spent": spent, "needed": needed},
        )
        self.retry_after = retry_after


def seconds_to_midnight(now: datetime | None = None) -> int:
    local = timezone.localtime(now or timezone.now())
    midnight = timezone.make_aware(datetime.combine(local.date() + timedelta(days=1), time()))
    return max(1, int((midnight - local).total_seconds()))


def key_charge_record(*, key: ApiKey, job, request: ApiRequest | None) -> None:
    """Count ``job``'s charge against ``key``'s daily cap and link it (see the module)."""
    amount = job.estimated_credits
    if key.daily_credit_cap is not None:
        day = timezone.localdate()
        ApiKeyDailySpend.objects.get_or_create(key=key, day=day)
        row = ApiKeyDailySpend.objects.select_for_update().get(key=key, day=day)
        if row.credits + amount > key.daily_credit_cap:
            raise KeyCapReached(
                cap=key.daily_credit_cap,
                spent=row.credits,
                needed=amount,
                retry_after=seconds_to_midnight(),
            )
        ApiKeyDailySpend.objects.filter(pk=row.pk).update(credits=F("credits") + amount)
    ApiJob.objects.create(job=job, api_key=key, request=request, credits=amount)
