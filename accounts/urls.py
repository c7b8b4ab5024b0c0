from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("", views.profile, name="profile"),
    path("export/", views.account_export, name="export"),
    path("delete/", views.account_delete_view, name="delete"),
]
