"""Staff pages: the dashboard and the CSV exports. Staff only (others go to the admin login),
and only staff holding ``backoffice.view_finance``: they show revenue (others get a 403)."""

from datetime import date

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Case, F, QuerySet, When
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode

from credits.csv_stream import streaming_csv_response
from credits.models import LedgerEntry
from generations.charges import JOB_SOURCE
from payments.ledger import ORDER_SOURCE
from payments.models import Order
from payments.voucher_selectors import voucher_overview

from . import charts
from .finance import CSV_HEADER, finance_csv_rows, finance_report
from .forms import PeriodForm
from .membership import membership_stats
from .models import FINANCE_PERMISSION
from .selectors import Period, dashboard_build

EXPORT_LEDGER_PERMISSION = "credits.view_ledgerentry"
EXPORT_ORDERS_PERMISSION = "payments.view_order"


def _require_finance(request) -> None:
    if not request.user.has_perm(FINANCE_PERMISSION):
        raise PermissionDenied


def _period_form(request) -> tuple[PeriodForm, date, date]:
    form = PeriodForm(request.GET or None)
    start, end = form.date_range()
    return form, start, end


@staff_member_required
def dashboard(request):
    _require_finance(request)
    form, start, end = _period_form(request)
    board = dashboard_build(start=start, end=end)
    days = board.period.days
    revenue_charts = [
        (
            revenue,
            charts.line_chart(
                title=f"Revenue per day ({revenue.currency})",
                labels=days,
                series=[charts.Series(f"Revenue {revenue.currency}", revenue.per_day, "bo-s1")],
                unit=f" {revenue.currency}",
            ),
            list(zip(days, revenue.per_day)),
        )
        for revenue in board.revenue
    ]
    flows = board.credits
    credits_chart = charts.line_chart(
        title="Credits per day",
        labels=days,
        series=[
            charts.Series("Purchased", flows.purchased, "bo-s1"),
            charts.Series("Spent", flows.spent, "bo-s2"),
            charts.Series("Refunded", flows.refunded, "bo-s3"),
            charts.Series("Clawed back", flows.clawed_back, "bo-s4"),
        ],
        unit=" credits",
    )
    jobs_chart = charts.bar_chart(
        title="Job success rate by operation and model",
        rows=[
            (
                f"{j.operation} · {j.model}",
                j.success_rate,
                f"of {j.finished} finished"
                + (f", mean {j.mean_cost:.1f} credits" if j.mean_cost is not None else ""),
            )
            for j in board.jobs
        ],
    )
    query = urlencode({"start": start.isoformat(), "end": end.isoformat()})
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "form": form,
        "board": board,
        "start": start,
        "end": end,
        "revenue_charts": revenue_charts,
        "credits_chart": credits_chart,
        "credit_rows": list(
            zip(days, flows.purchased, flows.spent, flows.refunded, flows.clawed_back)
        ),
        "credit_totals": flows.totals(),
        "jobs_chart": jobs_chart,
        "membership": membership_stats(since=board.period.since, until=board.period.until),
        "finance": finance_report(start=start, end=end),
        "vouchers": voucher_overview(),
        "export_finance_url": f"{reverse('backoffice:export_finance')}?{query}",
        "export_ledger_url": (
            f"{reverse('backoffice:export_ledger')}?{query}"
            if request.user.has_perm(EXPORT_LEDGER_PERMISSION)
            else ""
        ),
        "export_orders_url": (
            f"{reverse('backoffice:export_orders')}?{query}"
            if request.user.has_perm(EXPORT_ORDERS_PERMISSION)
            else ""
        ),
        "period_choices": PeriodForm.PERIODS,
        "current_period": (request.GET.get("period") or ("" if request.GET.get("start") else "30")),
    }
    return render(request, "backoffice/dashboard.html", context)


LEDGER_EXPORT_COLUMNS = [
    "id",
    "created_at",
    "user_id",
    "user__email",
    "kind",
    "amount",
    "balance_before",
    "balance_after",
    "order_id",
    "job_id",
    "reverses_id",
    "created_by_id",
    "idempotency_key",
    "description",
    "internal_note",
]
#: The ledger export's columns for an entry's source, one per kind (as when entries held them apart).
LEDGER_SOURCE_COLUMNS = {"order_id": ORDER_SOURCE, "job_id": JOB_SOURCE}
ORDER_EXPORT_COLUMNS = [
    "id",
    "created_at",
    "completed_at",
    "user_id",
    "user__email",
    "status",
    "provider",
    "amount",
    "currency",
    "credits",
    "amount_refunded",
    "credits_clawed_back",
    "credits_unrecovered",
    "dispute_status",
    "provider_order_id",
    "provider_payment_id",
    "package_id",
]


@staff_member_required
def export_ledger(request):
    """Every ledger entry of the period, oldest first, streamed (constant memory at any size)."""
    entries = LedgerEntry.objects.annotate(
        **{
            column: Case(
                When(source_type=source_type, then=F("source_id")), output_field=BigIntegerField()
            )
            for column, source_type in LEDGER_SOURCE_COLUMNS.items()
        }
    )
    return _export_period(
        request, entries, LEDGER_EXPORT_COLUMNS, EXPORT_LEDGER_PERMISSION, "ledger"
    )


@staff_member_required
def export_orders(request):
    """Every order created in the period, oldest first, streamed."""
    return _export_period(
        request, Order.objects.all(), ORDER_EXPORT_COLUMNS, EXPORT_ORDERS_PERMISSION, "orders"
    )


@staff_member_required
def export_finance(request):
    """The finance report of the period (one row per category and currency, then the ledger's
    sums), in exact credits and money."""
    _require_finance(request)
    _, start, end = _period_form(request)
    report = finance_report(start=start, end=end)
    return streaming_csv_response(
        filename=f"finance-{start}-{end}.csv",
        header=CSV_HEADER,
        rows=finance_csv_rows(report, start=start, end=end),
    )


def _export_period(request, rows_of: QuerySet, columns: list[str], permission: str, name: str):
    """Rows of ``rows_of`` created in the requested period, oldest first, as a streamed CSV."""
    _require_finance(request)
    if not request.user.has_perm(permission):
        raise PermissionDenied
    _, start, end = _period_form(request)
    period = Period(start, end)
    rows = (
        rows_of.filter(created_at__gte=period.since, created_at__lt=period.until)
        .order_by("id")
        .values_list(*columns)
        .iterator(chunk_size=2000)
    )
    header = [c.replace("user__email", "user_email") for c in columns]
    return streaming_csv_response(filename=f"{name}-{start}-{end}.csv", header=header, rows=rows)
