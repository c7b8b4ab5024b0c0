"""The site's pages plus one that lets an application error through, for the middleware's tests."""

from django.urls import path

from config.urls import urlpatterns as site_urlpatterns
from credits.exceptions import InsufficientCredits


def spend_view(request):
    raise InsufficientCredits(needed=5, available=2)


urlpatterns = [path("test-refusal/", spend_view), *site_urlpatterns]
