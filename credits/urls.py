from django.urls import path

from . import views

app_name = "credits"
urlpatterns = [
    path("", views.history, name="history"),
    path("export.csv", views.export_csv, name="export"),
    path("controls/", views.controls, name="controls"),
]
