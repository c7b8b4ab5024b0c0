"""The app's URLs plus the benchmark's baselines: a bare view, and bare views that call the
same services as GET /api/v1/balance and POST /api/v1/jobs for the user named in a header
(no key, no schema, no idempotency, no rate limit)."""

import json

from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as app_urlpatterns
from credits.selectors import credit_summary
from credits.services import balance_refresh
from generations.services import JobRequest, job_submit


@csrf_exempt
def ok(request):
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


def _user(request):
    return get_user_model().objects.get(pk=int(request.headers["X-Bench-User"]))


def balance(request):
    user = _user(request)
    summary = credit_summary(user_id=user.pk, balance=balance_refresh(user=user).balance)
    return JsonResponse({"balance": summary.available, "paid": summary.paid})


@csrf_exempt
def jobs(request):
    job = job_submit(user=_user(request), request=JobRequest(**json.loads(request.body)))
    return JsonResponse({"id": job.pk, "status": job.status}, status=201)


urlpatterns = [
    path("bench/ok/", ok),
    path("bench/balance/", balance),
    path("bench/jobs/", jobs),
    *app_urlpatterns,
]
