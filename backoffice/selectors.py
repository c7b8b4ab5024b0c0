"""Reads behind the staff dashboard: each a few grouped queries over indexed columns."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from credits.models import LedgerEntry, LedgerKind
from generations.models import GenerationJob
from payments.models import Order, ReconciliationRun, Refund


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def since(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min))

    @property
    def until(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))


@dataclass
class Revenue:
    currency: str
    per_day: list[Decimal]
    orders: int
    refunded: Decimal

    @property
    def total(self) -> Decimal:
        return sum(self.per_day, Decimal("0"))


@dataclass
class CreditFlows:
    purchased: list[int]
    spent: list[int]
    refunded: list[int]
    clawed_back: list[int]

    def totals(self) -> dict[str, int]:
        return {
            name: sum(getattr(self, name))
            for name in ("purchased", "spent", "refunded", "clawed_back")
        }


@dataclass
class JobStats:
    operation: str
    model: str
    total: int
    completed: int
    failed: int
    refunded: int
    mean_cost: float | None

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.refunded

    @property
    def success_rate(self) -> float | None:
        return self.completed / self.finished if self.finished else None


@dataclass
class Dashboard:
    period: Period
    revenue: list[Revenue] = field(default_factory=list)
    credits: CreditFlows | None = None
    jobs: list[JobStats] = field(default_factory=list)
    open_disputes: list[Order] = field(default_factory=list)
    open_dispute_count: int = 0
    discrepancy_runs: list[ReconciliationRun] = field(default_factory=list)
    latest_run: ReconciliationRun | None = None

    @property
    def discrepancies(self) -> list[dict]:
        """The findings of the period's runs, flagged ones (left for staff) first, newest run first."""
        items = [
            {**d, "run": run}
            for run in self.discrepancy_runs
            for d in (run.discrepancies or [])
            if isinstance(d, dict)
        ]
        items.sort(key=lambda d: d.get("action") != "flagged")
        return items[:15]


def revenue_per_day(*, period: Period) -> list[Revenue]:
    """Money taken per day (orders fulfilled that day), per currency, and refunds made in the period."""
    index = {day: i for i, day in enumerate(period.days)}
    rows = (
        Order.objects.filter(completed_at__gte=period.since, completed_at__lt=period.until)
        .annotate(day=TruncDate("completed_at"))
        .values("currency", "day")
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by("currency", "day")
    )
    by_currency: dict[str, Revenue] = {}
    for row in rows:
        revenue = by_currency.setdefault(
            row["currency"], Revenue(row["currency"], [Decimal("0")] * len(index), 0, Decimal("0"))
        )
        if row["day"] in index:
            revenue.per_day[index[row["day"]]] += row["total"]
        revenue.orders += row["n"]
    refunds = (
        Refund.objects.filter(created_at__gte=period.since, created_at__lt=period.until)
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    for row in refunds:
        revenue = by_currency.setdefault(
            row["currency"], Revenue(row["currency"], [Decimal("0")] * len(index), 0, Decimal("0"))
        )
        revenue.refunded = row["total"]
    return sorted(by_currency.values(), key=lambda r: (-r.total, r.currency))


def credit_flows(*, period: Period) -> CreditFlows:
    """Credits purchased, spent, refunded (spends given back) and clawed back, per day."""
    index = {day: i for i, day in enumerate(period.days)}
    kinds = {
        LedgerKind.PURCHASE: "purchased",
        LedgerKind.SPEND: "spent",
        LedgerKind.REFUND: "refunded",
        LedgerKind.CLAWBACK: "clawed_back",
    }
    flows = CreditFlows(*([0] * len(index) for _ in range(4)))
    rows = (
        LedgerEntry.objects.filter(
            kind__in=list(kinds), created_at__gte=period.since, created_at__lt=period.until
        )
        .annotate(day=TruncDate("created_at"))
        .values("kind", "day")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    for row in rows:
        if row["day"] in index:
            getattr(flows, kinds[row["kind"]])[index[row["day"]]] += abs(row["total"])
    return flows


def job_stats(*, period: Period) -> list[JobStats]:
    """Per operation and model: jobs created in the period, how many succeeded, and their mean cost."""
    S = GenerationJob.Status
    rows = (
        GenerationJob.objects.filter(created_at__gte=period.since, created_at__lt=period.until)
        .values("operation", "model")
        .annotate(
            total=Count("id"),
            completed=Count("id", filter=Q(status=S.COMPLETED)),
            failed=Count("id", filter=Q(status=S.FAILED)),
            refunded=Count("id", filter=Q(status=S.REFUNDED)),
            mean_cost=Avg("credits_charged", filter=Q(status=S.COMPLETED)),
        )
        .order_by("operation", "model")
    )
    return [
        JobStats(
            row["operation"],
            row["model"],
            row["total"],
            row["completed"],
            row["failed"],
            row["refunded"],
            float(row["mean_cost"]) if row["mean_cost"] is not None else None,
        )
        for row in rows
    ]


def dashboard_build(*, start: date, end: date) -> Dashboard:
    period = Period(start, end)
    disputes = Order.objects.filter(dispute_status=Order.DisputeStatus.OPEN)
    return Dashboard(
        period=period,
        revenue=revenue_per_day(period=period),
        credits=credit_flows(period=period),
        jobs=job_stats(period=period),
        open_disputes=list(disputes.select_related("user").order_by("-updated_at")[:20]),
        open_dispute_count=disputes.count(),
        discrepancy_runs=list(
            ReconciliationRun.objects.filter(
                started_at__gte=period.since,
                started_at__lt=period.until,
                status=ReconciliationRun.Status.DISCREPANCIES,
            ).order_by("-started_at")[:20]
        ),
        latest_run=ReconciliationRun.objects.order_by("-started_at").first(),
    )
