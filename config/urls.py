from django.conf import settings
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

from api.v1 import api as api_v1
from payments import views as payment_views


def favicon(request):
    """Browsers ask for /favicon.ico on every page (the admin's too): send them to the static one."""
    return HttpResponseRedirect(static("favicon.ico"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("", payment_views.home, name="home"),
    path("accounts/", include("allauth.urls")),
    path("account/", include("accounts.urls")),
    path("account/emails/", include("notices.urls")),
    path("credits/", include("credits.urls")),
    path("billing/", include("payments.urls")),
    path("webhooks/", include("payments.webhook_urls")),
    path("generate/", include("generations.urls")),
    path("", include("images.urls")),
    path("account/api-keys/", include("api.urls")),
    path("api/v1/", api_v1.urls),
    path("staff/", include("backoffice.urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
