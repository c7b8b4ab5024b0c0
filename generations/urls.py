from django.urls import path

from . import views

app_name = "generations"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("new/", views.job_new, name="new"),
    path("estimate/", views.job_estimate, name="estimate"),
    path("api-key/", views.api_key, name="api_key"),
    path("<int:pk>/", views.job_detail, name="detail"),
    path("<int:pk>/status/", views.job_status, name="status"),
    path("<int:pk>/row/", views.job_row, name="row"),
    path("<int:pk>/cancel/", views.job_cancel_view, name="cancel"),
    path("<int:pk>/retry/", views.job_retry_view, name="retry"),
    path("<int:pk>/preview/", views.job_preview, name="preview"),
    path("<int:pk>/download/", views.job_download, name="download"),
    path("<int:pk>/input/", views.job_input, name="input"),
]
