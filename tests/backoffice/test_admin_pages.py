"""Every money admin page renders for a superuser, with rows in it."""

import pytest
from django.urls import reverse

from credits.models import AuditLog, LedgerEntry
from payments.models import ReconciliationRun, WebhookEvent


@pytest.fixture
def populated(make_user, make_order, make_job):
    customer = make_user("customer@example.com", credits=50)
    order = make_order(customer)
    job = make_job(customer)
    WebhookEvent.objects.create(
        provider="SANDBOX", event_id="evt_1", type="payment.succeeded", raw_body="{}", order=order
    )
    from django.utils import timezone

    ReconciliationRun.objects.create(
        since=timezone.now(),
        status="DISCREPANCIES",
        discrepancies=[{"order": order.pk, "problem": "unknown to provider"}],
    )
    return {"customer": customer, "order": order, "job": job}


ADMINS = [
    "accounts_user",
    "credits_creditbalance",
    "credits_ledgerentry",
    "credits_auditlog",
    "credits_idempotencyrecord",
    "payments_creditpackage",
    "payments_order",
    "payments_invoice",
    "payments_invoicesequence",
    "payments_refund",
    "payments_webhookevent",
    "payments_reconciliationrun",
    "payments_sandboxpayment",
    "payments_sandboxrefund",
    "generations_generationjob",
    "backoffice_adjustmentrequest",
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ADMINS)
def test_changelist_renders(client, superuser, populated, name):
    client.force_login(superuser)
    response = client.get(reverse(f"admin:{name}_changelist"))
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "search", ["customer@example.com", "CUSTOMER@example.com", "12345", "no-such-key"]
)
def test_ledger_search_never_errors(client, superuser, populated, search):
    client.force_login(superuser)
    response = client.get(reverse("admin:credits_ledgerentry_changelist"), {"q": search})
    assert response.status_code == 200
    if "@" in search:
        assert "test-seed:" in response.content.decode() or "BONUS" in response.content.decode()


@pytest.mark.django_db
def test_change_pages_render(client, superuser, populated):
    client.force_login(superuser)
    entry = LedgerEntry.objects.filter(user=populated["customer"]).first()
    pages = [
        reverse("admin:accounts_user_change", args=[populated["customer"].pk]),
        reverse("admin:credits_ledgerentry_change", args=[entry.pk]),
        reverse("admin:payments_order_change", args=[populated["order"].pk]),
        reverse("admin:generations_generationjob_change", args=[populated["job"].pk]),
        reverse("admin:payments_webhookevent_change", args=[WebhookEvent.objects.get().pk]),
        reverse(
            "admin:payments_reconciliationrun_change", args=[ReconciliationRun.objects.get().pk]
        ),
        reverse("admin:credits_auditlog_change", args=[AuditLog.objects.first().pk]),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url


@pytest.mark.django_db
def test_user_page_shows_balance_ledger_orders_and_jobs(client, superuser, populated):
    client.force_login(superuser)
    response = client.get(reverse("admin:accounts_user_change", args=[populated["customer"].pk]))
    html = response.content.decode()
    assert 'data-testid="credits-summary"' in html
    assert "<dt>Balance</dt><dd>50</dd>" in html
    assert "Newest ledger entries" in html and "Bonus" in html
    assert "Newest orders" in html and "Newest generation jobs" in html
    assert reverse("admin:accounts_user_adjust_credits", args=[populated["customer"].pk]) in html
