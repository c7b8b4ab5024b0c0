from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("", views.keys, name="keys"),
    path("<int:pk>/revoke/", views.revoke, name="revoke"),
    path("<int:pk>/rotate/", views.rotate, name="rotate"),
]
