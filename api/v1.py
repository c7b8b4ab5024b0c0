"""``/api/v1/``: the JSON API over the services, with its OpenAPI schema and docs page.

Every request carries ``Authorization: Bearer ck_<prefix>_<secret>`` (a personal API key);
the key's scopes gate each operation. Errors are ``{"error": {"code", "message", "details"}}``
with the status and stable code of the ``core.errors.ApplicationError`` behind them; a 429
carries ``Retry-After``. Anything that is not the caller's is a 404, whether it exists or not.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from ninja import NinjaAPI, Query, Router
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from core.errors import ApplicationError, log_refusal
from credits.exceptions import SpendingCapReached
from credits.models import LedgerKind
from credits.selectors import Cursor, credit_summary, ledger_history
from credits.services import balance_refresh
from generations.models import GenerationJob
from generations.selectors import job_for_user, jobs_for_user
from generations.services import JobRequest, job_cancel, job_prepare, job_submit
from payments.models import CreditPackage
from payments.subscription_models import SubscriptionPlan
from payments.vouchers import voucher_redeem

from . import schemas as s
from .app_settings import app_settings
from .idempotency import idempotent
from .keys import Scope, api_key_authenticate, require_scope
from .models import ApiJob, ApiKey
from .ratelimit import rate_limit_check
from .spending import key_charge_record, seconds_to_midnight

RESULT_SALT = "api.v1.result"
RESULT_TYPES = {"png": "image/png", "svg": "image/svg+xml", "txt": "text/plain; charset=utf-8"}


class KeyAuth(HttpBearer):
    """A personal API key, checked (revocation, expiry, plan) and rate-limited on every request."""

    openapi_description = "A personal API key: `Authorization: Bearer ck_<prefix>_<secret>`."

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        key = api_key_authenticate(token=token)
        rate_limit_check(key_id=key.pk, user_id=key.user_id)
        return key


api = NinjaAPI(
    title="Credits API",
    version="1.0.0",
    description=(
        "Balance, ledger, packs and plans, estimates, generation jobs and promo codes, "
        "for accounts whose plan includes API access. Every state-changing POST requires an "
        "`Idempotency-Key` header: a retry with the same key and body gets the stored "
        "response (header `Idempotent-Replayed: true`), the same key with another body is a 409."
    ),
    auth=KeyAuth(),
    urls_namespace="api-v1",
)


# --- errors -------------------------------------------------------------------------------------


def _error(request, error: ApplicationError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is None and isinstance(error, SpendingCapReached):
        retry_after = _cap_retry_after(error.period)
    if retry_after is not None:
        response["Retry-After"] = str(int(retry_after))
    log_refusal(error, f"api {request.method} {request.path}")
    return response


def _cap_retry_after(period: str) -> int:
    if period == "month":
        local = timezone.localtime()
        first = (local.date().replace(day=1) + timedelta(days=32)).replace(day=1)
        start = timezone.make_aware(datetime.combine(first, time()))
        return max(1, int((start - local).total_seconds()))
    return seconds_to_midnight()


@api.exception_handler(ApplicationError)
def _application_error(request, exc: ApplicationError):
    return _error(request, exc)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error(
        request,
        ApplicationError(
            "Send a personal API key: Authorization: Bearer ck_<prefix>_<secret>.",
            code="invalid_api_key",
            status=401,
        ),
    )


@api.exception_handler(NinjaValidationError)
def _invalid(request, exc: NinjaValidationError):
    problems = [
        {"loc": [str(p) for p in e.get("loc", [])], "message": e.get("msg", "")} for e in exc.errors
    ]
    return _error(
        request,
        ApplicationError(
            "The request is not valid.",
            code="validation_error",
            status=422,
            extra={"errors": problems},
        ),
    )


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, ApplicationError("Not found.", code="not_found", status=404))


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return _error(request, ApplicationError(str(exc), code="error", status=exc.status_code))


def _validation(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, code="validation_error", status=422, extra={"field": field})


ERRORS = {401: s.ErrorOut, 403: s.ErrorOut, 404: s.ErrorOut, 422: s.ErrorOut, 429: s.ErrorOut}
POST_ERRORS = {**ERRORS, 402: s.ErrorOut, 409: s.ErrorOut}


def _key(request) -> ApiKey:
    return request.auth


# --- account -----------------------------------------------------------------------------------

account = Router(tags=["account"])


@account.get("/balance", response={200: s.BalanceOut, **ERRORS})
def balance(request):
    """The balance that can be spent now, its paid and promotional parts, and what expires soonest."""
    key = _key(request)
    require_scope(key, Scope.READ)
    snapshot = balance_refresh(user=key.user)
    summary = credit_summary(user_id=key.user_id, balance=snapshot.balance)
    return {
        "balance": summary.available,
        "paid": summary.paid,
        "promotional": summary.promotional,
        "expiring": summary.expiring,
        "expires_at": summary.expires_at,
    }


@account.get("/ledger", response={200: s.LedgerPageOut, **ERRORS})
def ledger(request, filters: Query[s.LedgerQuery]):
    """The ledger, newest first, a page at a time (keyset cursor), filtered by kind and dates."""
    key = _key(request)
    require_scope(key, Scope.READ)
    before = None
    if filters.cursor:
        try:
            before = Cursor.decode(filters.cursor)
        except ValueError:
            raise _validation("Not a cursor this API gave.", "cursor") from None
    kinds = [k.upper() for k in filters.kind]
    unknown = sorted(set(kinds) - set(LedgerKind.values))
    if unknown:
        raise _validation(f"Unknown kind: {', '.join(unknown)}.", "kind")
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise _validation("date_from is after date_to.", "date_from")
    page = ledger_history(
        user=key.user,
        before=before,
        limit=filters.limit,
        kinds=kinds or None,
        date_from=filters.date_from,
        date_to=filters.date_to,
    )
    return {
        "entries": [
            {
                "id": e.id,
                "created_at": e.created_at,
                "kind": e.kind,
                "amount": e.amount,
                "balance_after": e.balance_after,
                "description": e.customer_description,
            }
            for e in page.entries
        ],
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
    }


@account.post("/vouchers/redeem", response={200: s.RedeemOut, **POST_ERRORS})
def redeem(request, payload: s.RedeemIn):
    """Redeem a free-credits code (needs the generate scope and an Idempotency-Key)."""
    key = _key(request)
    require_scope(key, Scope.GENERATE)

    def work(claim):
        redemption = voucher_redeem(user=key.user, code=payload.code)
        snapshot = balance_refresh(user=key.user)
        return 200, {"credits": redemption.credits, "balance": snapshot.balance}

    return idempotent(request, user=key.user, work=work)


# --- catalog -----------------------------------------------------------------------------------

catalog = Router(tags=["catalog"])


@catalog.get("/catalog", response={200: s.CatalogOut, **ERRORS})
def packs_and_plans(request):
    """The credit packs on sale and the membership plans, with their prices."""
    require_scope(_key(request), Scope.READ)
    packs = CreditPackage.objects.filter(active=True)
    plans = SubscriptionPlan.objects.filter(active=True).prefetch_related("prices")
    return {
        "packs": [
            {
                "id": p.pk,
                "name": p.name,
                "credits": p.credits,
                "price": str(p.price),
                "currency": p.currency,
            }
            for p in packs
        ],
        "plans": [
            {
                "code": p.code,
                "name": p.name,
                "credits_per_period": p.credits_per_period,
                "rollover_cap": p.rollover_cap,
                "api_access": p.api_access,
                "prices": [
                    {"currency": price.currency, "amount": str(price.amount)}
                    for price in p.prices.all()
                ],
            }
            for p in plans
        ],
    }


# --- jobs --------------------------------------------------------------------------------------

jobs = Router(tags=["jobs"])


def _job_request(payload: s.JobIn) -> JobRequest:
    return JobRequest(**payload.dict())


def result_url(job: GenerationJob) -> str | None:
    if job.status not in (GenerationJob.Status.COMPLETED, GenerationJob.Status.REFUNDED):
        return None
    if not job.result_file:
        return None
    token = signing.dumps({"j": job.pk, "u": job.user_id}, salt=RESULT_SALT, compress=True)
    return reverse("api-v1:job_result", kwargs={"token": token})


def _job_out(job: GenerationJob, request) -> dict:
    url = result_url(job)
    return {
        "id": job.pk,
        "status": job.status,
        "operation": job.operation,
        "model": job.model,
        "tier": job.tier,
        "prompt": job.prompt,
        "estimated_credits": job.estimated_credits,
        "credits_charged": job.credits_charged,
        "error_message": job.error_message,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "result_url": request.build_absolute_uri(url) if url else None,
    }


def _json_job(job: GenerationJob, request) -> dict:
    return s.JobOut(**_job_out(job, request)).model_dump(mode="json")


@jobs.post("/estimate", response={200: s.EstimateOut, **ERRORS})
def estimate(request, payload: s.JobIn):
    """What a job would cost at most (changes nothing; no Idempotency-Key needed)."""
    key = _key(request)
    require_scope(key, Scope.READ)
    prepared = job_prepare(user=key.user, request=_job_request(payload))
    return {
        "credits": prepared.estimate.credits,
        "operation": prepared.offering.operation,
        "model": prepared.offering.model,
        "input_tokens": prepared.estimate.input_tokens,
        "output_tokens": prepared.estimate.output_tokens,
    }


@jobs.post("/jobs", response={201: s.JobOut, **POST_ERRORS})
def job_create(request, payload: s.JobIn):
    """Create a job and charge its estimate; one job and one charge per Idempotency-Key."""
    key = _key(request)
    require_scope(key, Scope.GENERATE)

    def work(claim):
        # A request that died after committing its job left the job linked to this claim.
        if not claim.fresh:
            done = ApiJob.objects.filter(request=claim).select_related("job").first()
            if done is not None:
                return 201, _json_job(done.job, request)
        job = job_submit(
            user=key.user,
            request=_job_request(payload),
            audit=lambda job: key_charge_record(key=key, job=job, request=claim),
        )
        return 201, _json_job(job, request)

    return idempotent(request, user=key.user, work=work)


@jobs.get("/jobs", response={200: s.JobPageOut, **ERRORS})
def job_list(request, cursor: int | None = None, limit: int = Query(20, ge=1, le=100)):
    """The caller's jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""
    key = _key(request)
    require_scope(key, Scope.READ)
    qs = jobs_for_user(user=key.user)
    if cursor is not None:
        qs = qs.filter(pk__lt=cursor)
    rows = list(qs.order_by("-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "jobs": [_job_out(job, request) for job in rows],
        "next_cursor": str(rows[-1].pk) if more else None,
    }


@jobs.get("/jobs/{int:job_id}", response={200: s.JobOut, **ERRORS})
def job_get(request, job_id: int):
    key = _key(request)
    require_scope(key, Scope.READ)
    return _job_out(job_for_user(user=key.user, pk=job_id), request)


@jobs.post("/jobs/{int:job_id}/cancel", response={200: s.JobOut, **POST_ERRORS})
def job_cancel_view(request, job_id: int):
    """Cancel a job that has not started yet; its charge comes back in full."""
    key = _key(request)
    require_scope(key, Scope.GENERATE)
    job_for_user(user=key.user, pk=job_id)  # 404 for anyone else's

    def work(claim):
        job = job_cancel(user=key.user, job_id=job_id)
        job.refresh_from_db()
        return 200, _json_job(job, request)

    return idempotent(request, user=key.user, work=work)


@jobs.get("/results/{token}", auth=None, url_name="job_result", include_in_schema=False)
def job_result(request, token: str):
    """A job's result through the signed URL the job answers carry (no key needed)."""
    try:
        data = signing.loads(token, salt=RESULT_SALT, max_age=app_settings.RESULT_URL_SECONDS)
    except signing.BadSignature:
        raise Http404 from None
    job = GenerationJob.objects.filter(pk=data.get("j"), user_id=data.get("u")).first()
    if job is None or not job.result_file:
        raise Http404
    extension = job.result_file.name.rsplit(".", 1)[-1].lower()
    content_type = RESULT_TYPES.get(extension)
    if content_type is None:
        raise Http404
    try:
        handle = job.result_file.open("rb")
    except OSError:
        raise Http404 from None
    response = FileResponse(handle, content_type=content_type, filename=f"job-{job.pk}.{extension}")
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=300"
    return response


api.add_router("/", account)
api.add_router("/", catalog)
api.add_router("/", jobs)
