"""Pages for generation jobs. Thin: parse the request, call one service or selector, render."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.errors import ApplicationError
from credits.models import CreditBalance

from .api_keys import api_key_remove, api_key_store, has_api_key
from .app_settings import app_settings
from .exceptions import AlreadyRetried, GenerationsError, InvalidRequest, InvalidTransition
from .forms import ApiKeyForm, JobForm
from .models import ApiCredential, GenerationJob, Operation
from .selectors import (
    job_for_user,
    job_ledger,
    job_retry_of,
    job_waiting,
    jobs_for_user,
    text_result,
)
from .services import job_cancel, job_prepare, job_retry_own, job_submit
from .text import credits_text

PAGE_SIZE = 25
RESULT_TYPES = {
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "txt": "text/plain; charset=utf-8",
}
#: A stored result is shown as an inert document: no scripts, no network, no forms, no frames.
RESULT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


@login_required
@require_GET
def job_list(request):
    page = Paginator(jobs_for_user(user=request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "generations/list.html", {"page": page, "jobs": page.object_list})


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request):
    user_has_key = has_api_key(user=request.user)
    status = 200
    if request.method == "POST":
        form = JobForm(request.POST, user=request.user, user_has_key=user_has_key)
        if form.is_valid():
            try:
                job = job_submit(user=request.user, request=form.job_request())
            except ApplicationError as exc:  # the error carries its status (402, 429, 400, ...)
                field = getattr(exc, "field", None)
                form.add_error(field if field in form.fields else None, exc.message)
                status = exc.status
            else:
                # No flash message: the job page's live status panel says it is queued (and
                # stops saying so once the job has moved on).
                return redirect(job)
        else:
            status = 400
    else:
        form = JobForm(user=request.user, user_has_key=user_has_key, initial=_initial(request.GET))
    context = {"form": form, "user_has_key": user_has_key}
    return render(request, "generations/new.html", context, status=status)


@login_required
@require_GET
def job_estimate(request):
    """The live estimate for the form as it stands (an htmx fragment)."""
    user_has_key = has_api_key(user=request.user)
    form = JobForm(request.GET, user=request.user, user_has_key=user_has_key, lenient=True)
    context = {"estimate": None, "error": "", "form": form}
    if form.is_valid():
        try:
            prepared = job_prepare(user=request.user, request=form.job_request(), draft=True)
        except GenerationsError as exc:
            context["error"] = str(exc)
        else:
            balance = (
                CreditBalance.objects.filter(user_id=request.user.pk)
                .values_list("balance", flat=True)
                .first()
                or 0
            )
            context.update(
                estimate=prepared.estimate,
                prepared=prepared,
                balance=balance,
                shortfall=max(0, prepared.estimate.credits - balance),
            )
    else:
        context["error"] = next(
            iter(e for errors in form.errors.values() for e in errors), "Check the form."
        )
    return render(request, "generations/_estimate.html", context)


@login_required
@require_GET
def job_detail(request, pk: int):
    job = job_for_user(user=request.user, pk=pk)
    return render(request, "generations/detail.html", _job_context(job))


@login_required
@require_GET
def job_status(request, pk: int):
    """The job's status panel; it keeps polling itself while the job is not finished."""
    job = job_for_user(user=request.user, pk=pk)
    context = _job_context(job)
    if job.is_terminal:  # the balance in the header changed with the refund: update it too
        context["oob_balance"] = (
            CreditBalance.objects.filter(user_id=request.user.pk)
            .values_list("balance", flat=True)
            .first()
            or 0
        )
    return render(request, "generations/_status.html", context)


@login_required
@require_GET
def job_row(request, pk: int):
    job = job_for_user(user=request.user, pk=pk)
    return render(request, "generations/_row.html", {"job": job})


@login_required
@require_POST
def job_cancel_view(request, pk: int):
    job_for_user(user=request.user, pk=pk)
    try:
        job = job_cancel(user=request.user, job_id=pk)
    except InvalidTransition as exc:
        # Worded for the moment it happened: the status panel beside it moves on by itself.
        was = GenerationJob.Status(exc.current).label.lower()
        messages.error(
            request,
            f"Job #{pk} was not cancelled: it was already {was}. "
            "Only a job still waiting to start can be cancelled.",
        )
    else:
        messages.success(
            request,
            f"Job #{job.pk} is cancelled and its {credits_text(job.estimated_credits)} refunded.",
        )
    return redirect("generations:detail", pk=pk)


@login_required
@require_POST
def job_retry_view(request, pk: int):
    """The owner tries a failed job again: a new job, charged like a fresh submission, once."""
    try:
        retry = job_retry_own(user=request.user, job_id=pk)
    except GenerationJob.DoesNotExist:
        raise Http404("No such job.") from None
    except AlreadyRetried as exc:
        messages.error(request, exc.message)
    except InvalidTransition:
        messages.error(request, "Only a failed job can be tried again.")
    except ApplicationError as exc:
        messages.error(request, f"Job #{pk} was not tried again: {exc.message}")
    else:
        return redirect(retry)
    return redirect("generations:detail", pk=pk)


@login_required
@require_GET
def job_preview(request, pk: int):
    return _result_response(request, pk, attachment=False)


@login_required
@require_GET
def job_download(request, pk: int):
    return _result_response(request, pk, attachment=True)


@login_required
@require_GET
def job_input(request, pk: int):
    """The picture a job worked from (``parameters["input_file"]``, named by the app that
    ordered it), for the before / after comparison: its owner only."""
    job = job_for_user(user=request.user, pk=pk)
    name = (job.parameters or {}).get("input_file") or ""
    extension = name.rsplit(".", 1)[-1].lower()
    if extension not in RESULT_TYPES or extension in ("svg", "txt"):
        raise Http404("This job has no input picture.")
    try:
        handle = job.result_file.storage.open(name, "rb")
    except OSError:
        raise Http404("The input picture is no longer stored.") from None
    response = FileResponse(handle, content_type=RESULT_TYPES[extension])
    response["Content-Security-Policy"] = RESULT_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def api_key(request):
    status = 200
    form = ApiKeyForm()
    if request.method == "POST":
        if request.POST.get("action") == "remove":
            if api_key_remove(user=request.user):
                messages.success(
                    request,
                    "Your provider key is removed. "
                    + (
                        "Jobs now run on the platform's key."
                        if app_settings.OPENAI_API_KEY
                        else "Text jobs are not available until you add a key again."
                    ),
                )
            return redirect("generations:api_key")
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                api_key_store(user=request.user, api_key=form.cleaned_data["api_key"])
            except InvalidRequest as exc:
                form.add_error("api_key", str(exc))
            else:
                messages.success(
                    request,
                    "The model service accepted your provider key. It is stored, encrypted, "
                    "and never shown again.",
                )
                return redirect("generations:api_key")
        status = 400
    credential = ApiCredential.objects.filter(user=request.user).first()
    return render(
        request, "generations/api_key.html", {"form": form, "credential": credential}, status=status
    )


# --- helpers ------------------------------------------------------------------------------


def _initial(params) -> dict:
    """Initial values from a query string: a link ("edit this picture") or the form itself
    re-rendered after a change of operation or model (``form_shown`` marks the latter)."""
    initial = {}
    for name in ("operation", "model", "tier", "prompt", "source_id", "seed", "max_output_tokens"):
        if params.get(name):
            initial[name] = params[name]
    initial["is_edit"] = bool(params.get("is_edit"))
    initial["use_own_key"] = bool(params.get("use_own_key")) if params.get("form_shown") else True
    return initial


def _job_context(job: GenerationJob) -> dict:
    entries = job_ledger(job=job)
    charged = -sum(e.amount for e in entries if e.kind == "SPEND")
    refunded = sum(e.amount for e in entries if e.kind == "REFUND")
    return {
        "job": job,
        "waiting": job_waiting(job=job) if job.status == GenerationJob.Status.PENDING else None,
        "retry": job_retry_of(job=job) if job.status == GenerationJob.Status.FAILED else None,
        "entries": entries,
        "reserved": charged,
        "refunded": refunded,
        "text": text_result(job=job) if job.status == GenerationJob.Status.COMPLETED else "",
        "is_picture": job.operation in (Operation.IMAGE, Operation.ENHANCE),
    }


def _result_response(request, pk: int, *, attachment: bool):
    job = job_for_user(user=request.user, pk=pk)
    if (
        job.status not in (GenerationJob.Status.COMPLETED, GenerationJob.Status.REFUNDED)
        or not job.result_file
    ):
        raise Http404("This job has no result.")
    extension = job.result_file.name.rsplit(".", 1)[-1].lower()
    content_type = RESULT_TYPES.get(extension)
    if content_type is None:
        raise Http404("This job has no result.")
    try:
        handle = job.result_file.open("rb")
    except OSError:
        raise Http404("The result file is missing.") from None
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=attachment,
        filename=f"job-{job.pk}.{extension}",
    )
    response["Content-Security-Policy"] = RESULT_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Cache-Control"] = "private, max-age=3600"
    return response
