from django.urls import path

from . import views

app_name = "payments"
urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("orders/", views.orders, name="orders"),
]
