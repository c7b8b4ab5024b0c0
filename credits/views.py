"""The credits page (balance, totals, history) and the CSV export. Thin: parse, select, render."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from .app_settings import app_settings
from .context_processors import credit_summary_for_request
from .csv_stream import streaming_csv_response
from .forms import HistoryFilterForm, SpendingControlsForm
from .references import export_columns, export_values
from .selectors import (
    ledger_export_rows,
    ledger_history,
    lot_entry_description,
    moved_categories,
    moved_lot_ids,
    spending_controls_of,
)
from .services import (
    SpendingControls,
    balance_refresh_for_request,
    regen_policy_for,
    spending_controls_set,
)


def export_header() -> list[str]:
    """The export's columns: one id column per registered source type (``job_id``, ``order_id``)."""
    return [
        "entry_id",
        "created_at",
        "kind",
        "description",
        "amount",
        "balance_before",
        "balance_after",
        *export_columns(),
        "refund_of",
        # The lots behind the entry: the one a grant created, or those a spend, refund, expiry
        # ... took from or gave back to (ids joined by ";"); category "paid", "promotional" or both.
        "category",
        "lot",
        "lot_expires_at",
    ]


@require_GET
@login_required
def history(request):
    form = HistoryFilterForm(request.GET)
    balance = balance_refresh_for_request(request=request)
    page = None
    status = 200
    if form.is_valid():
        page = ledger_history(
            user=request.user, before=form.cleaned_data["before"], **form.filters()
        )
    else:
        status = 400
    context = {
        "form": form,
        "filter_errors": _form_errors(form),
        "page": page,
        "balance": balance,
        "summary": credit_summary_for_request(request),
        "filter_query": form.filter_query(),
        "regen": _regen_context(request.user, balance),
        "is_first_page": not form.data.get("before"),
    }
    # "Older entries" loads the next page with htmx (hx-select takes its rows) or as a link.
    return render(request, "credits/history.html", context, status=status)


@require_GET
@login_required
def export_csv(request):
    form = HistoryFilterForm(request.GET)
    if not form.is_valid():
        errors = " ".join(_form_errors(form))
        return HttpResponse(
            f"Cannot export: {errors}\n", status=400, content_type="text/plain; charset=utf-8"
        )
    rows = (
        (
            entry_id,
            created_at.isoformat(),
            kind,
            lot_entry_description(
                kind=kind, amount=amount, moved_lots=moved_lots, default=description
            ),
            amount,
            before,
            after,
            *export_values(source_type, source_id),
            reverses_id,
            lot_category or ";".join(moved_categories(moved_lots)),
            lot_ref or ";".join(map(str, moved_lot_ids(moved_lots))),
            lot_expires_at.isoformat() if lot_expires_at else "",
        )
        for (
            entry_id,
            created_at,
            kind,
            amount,
            before,
            after,
            description,
            source_type,
            source_id,
            reverses_id,
            lot_ref,
            lot_category,
            lot_expires_at,
            moved_lots,
        ) in ledger_export_rows(user=request.user, **form.filters())
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return streaming_csv_response(
        filename=f"credits-history-{stamp}.csv", header=export_header(), rows=rows
    )


@require_http_methods(["GET", "POST"])
@login_required
def controls(request):
    """The user's spending caps and low-balance alert."""
    state = spending_controls_of(user_id=request.user.pk)
    initial = {
        "daily_cap": state.daily_cap,
        "monthly_cap": state.monthly_cap,
        "low_balance_threshold": state.low_balance_threshold,
    }
    form = SpendingControlsForm(
        request.POST if request.method == "POST" else None,
        initial=initial,
        max_amount=app_settings.MAX_AMOUNT,
    )
    if request.method == "POST" and form.is_valid():
        spending_controls_set(user=request.user, controls=SpendingControls(**form.cleaned_data))
        messages.success(request, "Your spending controls are saved.")
        return redirect("credits:controls")
    status = 400 if form.is_bound else 200
    return render(request, "credits/controls.html", {"form": form, "state": state}, status=status)


def _form_errors(form) -> list[str]:
    """Each error as a sentence naming its field (the page position has no visible field)."""
    messages = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields and name != "before" else None
        messages.extend(f"{label}: {error}" if label else str(error) for error in errors)
    return messages


def _regen_context(user, balance) -> dict | None:
    policy = regen_policy_for(user)
    if policy is None:
        return None
    next_at = None
    if balance.regen_checked_at is not None and balance.balance < policy.cap:
        next_at = balance.regen_checked_at + app_settings.REGEN_INTERVAL
    return {
        "amount": policy.amount,
        "minutes": policy.every_seconds // 60,
        "seconds": policy.every_seconds,
        "cap": policy.cap,
        "at_cap": balance.balance >= policy.cap,
        "next_at": next_at,
    }
