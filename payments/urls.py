from django.urls import path

from . import paypal_views, sandbox_views, subscription_views, views, voucher_views

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
    path("plan/", subscription_views.subscription, name="subscription"),
    path("plan/subscribe/", subscription_views.subscribe, name="subscribe"),
    path("plan/cancel/", subscription_views.subscription_cancel_view, name="subscription_cancel"),
    path("plan/resume/", subscription_views.subscription_resume_view, name="subscription_resume"),
    path("plan/change/", subscription_views.subscription_change_view, name="subscription_change"),
    path("plan/portal/", subscription_views.subscription_portal, name="subscription_portal"),
    path("plan/invoices/<str:number>/", subscription_views.period_invoice, name="period_invoice"),
    path(
        "sandbox/subscribe/<str:token>/",
        subscription_views.sandbox_subscribe_page,
        name="sandbox_subscribe",
    ),
    path(
        "sandbox/subscriptions/<str:token>/",
        subscription_views.sandbox_subscription_action,
        name="sandbox_subscription_action",
    ),
]
