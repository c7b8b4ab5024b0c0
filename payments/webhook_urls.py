"""Webhook endpoints, one line per provider (mounted at /webhooks/)."""

from django.urls import path

from .webhook_views import provider_webhook

app_name = "webhooks"
urlpatterns = [
    path("stripe/", provider_webhook, {"provider": "STRIPE"}, name="stripe"),
    path("sandbox/", provider_webhook, {"provider": "SANDBOX"}, name="sandbox"),
    path("paypal/", provider_webhook, {"provider": "PAYPAL"}, name="paypal"),
]
