from django.urls import path

from . import paypal_views, sandbox_views, views, voucher_views

app_name = "payments"
urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("buy/", views.buy, name="buy"),
    path("orders/", views.orders, name="orders"),
    path("redeem/", voucher_views.redeem, name="redeem"),
    path("orders/<int:pk>/success/", views.order_success, name="order_success"),
    path("orders/<int:pk>/status/", views.order_status, name="order_status"),
    path("orders/<int:pk>/cancel/", views.order_cancel, name="order_cancel"),
    path("invoices/<str:number>/", views.invoice, name="invoice"),
    path("sandbox/checkout/<str:token>/", sandbox_views.sandbox_checkout, name="sandbox_checkout"),
    path("paypal/return/", paypal_views.paypal_return, name="paypal_return"),
]
