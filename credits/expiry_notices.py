"""Emails about credits that expire within a week: once per lot, found from the lots' rows.

The periodic task (``credits.tasks.notify_expiring_lots``) reads the live lots that still
hold credits and expire within ``NOTICE_AHEAD``, leaves out those whose email exists
already (the outbox row, keyed ``credits_expiring:lot:<id>``, is the record that the lot was
announced, sent or skipped), and queues one email per lot. A lost run, a crash between two
lots, or two runs at once change nothing: the key stores each lot's email once.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from accounts.models import OutboundEmail
from notices.services import email_queue

from .models import CreditLot

#: How long before its expiry a lot is announced.
NOTICE_AHEAD = timedelta(days=7)
BATCH = 500


def expiry_notice_key(lot_id: int) -> str:
    return f"lot:{lot_id}"


def lots_expiring_notify(*, now=None, limit: int = BATCH) -> int:
    """Queue the email of every lot expiring within a week not announced yet; returns how many."""
    now = now or timezone.now()
    announced = OutboundEmail.objects.filter(
        event_key=Concat(
            Value("credits_expiring:lot:"),
            Cast(OuterRef("pk"), CharField()),
            output_field=CharField(),
        )
    )
    lots = (
        CreditLot.objects.filter(
            has_remaining=True,
            expires_at__gt=now,
            expires_at__lte=now + NOTICE_AHEAD,
            effective_at__lte=now,
            user__is_active=True,
            user__deleted_at__isnull=True,
        )
        .exclude(Exists(announced))
        .select_related("user")
        .order_by("expires_at", "id")[:limit]
    )
    queued = 0
    for lot in lots:
        with transaction.atomic():
            email = email_queue(
                user=lot.user,
                kind="credits_expiring",
                key=expiry_notice_key(lot.pk),
                context={
                    "credits": lot.remaining,
                    "expires_on": f"{lot.expires_at:%B %-d, %Y at %H:%M} UTC",
                    "source_label": lot.get_source_display().lower(),
                },
            )
        queued += email is not None
    return queued
