"""The app's URLs plus /bench/ok/, a bare Django view that only answers 200 (the baseline)."""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as app_urlpatterns


@csrf_exempt
def ok(request):
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


urlpatterns = [path("bench/ok/", ok), *app_urlpatterns]
