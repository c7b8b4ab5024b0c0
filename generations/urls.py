from django.urls import path

from . import views

app_name = "generations"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("new/", views.job_new, name="new"),
]
