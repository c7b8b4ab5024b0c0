from django.urls import path

from . import (
    autotopup_views,
    document_views,
    paypal_views,
    sandbox_views,
    subscription_views,
    views,
    voucher_views,
)

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
    path("invoices/<str:number>/pdf/", document_views.invoice_pdf_view, name="invoice_pdf"),
    path("credit-notes/<str:number>/", document_views.credit_note, name="credit_note"),
    path(
        "credit-notes/<str:number>/pdf/",
        document_views.credit_note_pdf_view,
        name="credit_note_pdf",
    ),
    path("profile/", document_views.billing_profile, name="billing_profile"),
    path("auto-top-up/", autotopup_views.auto_topup, name="auto_topup"),
    path(
        "auto-top-up/card-saved/",
        autotopup_views.auto_topup_card_saved,
        name="auto_topup_card_saved",
    ),
    path(
        "auto-top-up/sandbox-card/",
        autotopup_views.auto_topup_sandbox_card,
        name="auto_topup_sandbox_card",
    ),
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
