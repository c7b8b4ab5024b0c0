from django.urls import path

from . import views

app_name = "backoffice"
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("export/ledger.csv", views.export_ledger, name="export_ledger"),
    path("export/orders.csv", views.export_orders, name="export_orders"),
    path("export/finance.csv", views.export_finance, name="export_finance"),
]
