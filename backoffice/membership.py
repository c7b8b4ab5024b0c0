"""Memberships on the staff dashboard: monthly recurring revenue, subscribers, new and churned."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum

from payments.models import Subscription


@dataclass(frozen=True)
class MembershipStats:
    #: Monthly recurring revenue per currency: the price of every active subscription.
    mrr: dict[str, Decimal]
    active: int
    past_due: int
    new: int  # started in the period
    churned: int  # ended in the period after having started


def membership_stats(*, since, until) -> MembershipStats:
    live = Subscription.objects.filter(status=Subscription.Status.ACTIVE)
    mrr = {
        row["currency"]: row["total"]
        for row in live.values("currency").annotate(total=Sum("amount")).order_by("currency")
    }
    counts = Subscription.objects.aggregate(
        active=Count("pk", filter=Q(status=Subscription.Status.ACTIVE)),
        past_due=Count("pk", filter=Q(status=Subscription.Status.PAST_DUE)),
        new=Count("pk", filter=Q(started_at__gte=since, started_at__lt=until)),
        churned=Count(
            "pk",
            filter=Q(ended_at__gte=since, ended_at__lt=until, started_at__isnull=False),
        ),
    )
    return MembershipStats(mrr=mrr, **counts)
