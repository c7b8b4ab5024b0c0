"""Every model of the project's apps has an admin, and the money ones are safe by default."""

import pytest
from django.apps import apps
from django.contrib import admin

APPS = ["accounts", "credits", "payments", "generations", "backoffice"]


@pytest.mark.parametrize("app_label", APPS)
def test_every_model_has_an_admin(app_label):
    missing = [
        m.__name__
        for m in apps.get_app_config(app_label).get_models()
        if m not in admin.site._registry
    ]
    assert not missing, f"models without an admin in {app_label}: {missing}"


def test_big_tables_never_count_in_full():
    from core.paginator import EstimatedCountPaginator

    for model_name in [
        "credits.LedgerEntry",
        "credits.AuditLog",
        "credits.CreditLot",
        "credits.LotMovement",
        "payments.Order",
        "payments.WebhookEvent",
        "generations.GenerationJob",
        "accounts.User",
    ]:
        model_admin = admin.site._registry[apps.get_model(model_name)]
        assert model_admin.show_full_result_count is False, model_name
        assert model_admin.paginator is EstimatedCountPaginator, model_name
