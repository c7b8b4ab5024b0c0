"""The ledger, webhook events, audit log and reconciliation reports are read-only in the admin:
no add, change or delete, not even for a superuser, not even by a hand-made POST. Money rows
are never bulk-deleted."""

import pytest
from django.urls import reverse
from django.utils import timezone

from credits.models import AuditLog, CreditLot, LedgerEntry
from payments.models import Order, ReconciliationRun, WebhookEvent


@pytest.fixture
def rows(make_user, make_order, make_job):
    customer = make_user(credits=30)
    order = make_order(customer)
    event = WebhookEvent.objects.create(
        provider="SANDBOX",
        event_id="evt_ro",
        type="payment.succeeded",
        raw_body="{}",
        signature_valid=True,
        order=order,
    )
    run = ReconciliationRun.objects.create(since=timezone.now(), status="CLEAN")
    return {
        "credits_ledgerentry": LedgerEntry.objects.get(user=customer),
        "credits_creditlot": CreditLot.objects.get(user=customer),
        "credits_auditlog": AuditLog.objects.filter(user=customer).first(),
        "payments_webhookevent": event,
        "payments_reconciliationrun": run,
        "payments_order": order,
        "generations_generationjob": make_job(customer),
    }


READ_ONLY = [
    "credits_ledgerentry",
    "credits_creditlot",
    "credits_auditlog",
    "payments_webhookevent",
    "payments_reconciliationrun",
]
NEVER_DELETED = READ_ONLY + [
    "payments_order",
    "generations_generationjob",
    "credits_creditbalance",
    "payments_invoice",
    "payments_creditpackage",
]


def snapshot(obj):
    return {
        f.attname: getattr(type(obj).objects.get(pk=obj.pk), f.attname)
        for f in obj._meta.concrete_fields
    }


@pytest.mark.django_db
@pytest.mark.parametrize("name", READ_ONLY)
def test_superuser_cannot_add_change_or_delete(client, superuser, rows, name):
    obj = rows[name]
    before = snapshot(obj)
    count = type(obj).objects.count()
    client.force_login(superuser)

    assert client.get(reverse(f"admin:{name}_add")).status_code == 403
    assert (
        client.post(
            reverse(f"admin:{name}_add"), {"action": "x", "status": "PROCESSED"}
        ).status_code
        == 403
    )
    change = client.get(reverse(f"admin:{name}_change", args=[obj.pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    posted = client.post(
        reverse(f"admin:{name}_change", args=[obj.pk]),
        {"status": "PROCESSED", "amount": "999999", "action": "forged", "_save": "Save"},
    )
    assert posted.status_code == 403
    assert client.get(reverse(f"admin:{name}_delete", args=[obj.pk])).status_code == 403
    assert (
        client.post(reverse(f"admin:{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code
        == 403
    )

    assert snapshot(obj) == before
    assert type(obj).objects.count() == count
    changelist = client.get(reverse(f"admin:{name}_changelist")).content.decode()
    assert reverse(f"admin:{name}_add") not in changelist


@pytest.mark.django_db
@pytest.mark.parametrize("name", NEVER_DELETED)
def test_money_rows_cannot_be_bulk_deleted(client, superuser, rows, make_package, name):
    client.force_login(superuser)
    changelist = client.get(reverse(f"admin:{name}_changelist")).content.decode()
    assert 'value="delete_selected"' not in changelist
    obj = rows.get(name)
    if obj is not None:
        response = client.post(
            reverse(f"admin:{name}_changelist"),
            {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
        )
        assert response.status_code in (200, 302)
        assert type(obj).objects.filter(pk=obj.pk).exists()
        assert (
            client.post(reverse(f"admin:{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code
            == 403
        )


@pytest.mark.django_db
def test_orders_cannot_be_edited_in_the_admin(client, superuser, rows):
    order = rows["payments_order"]
    client.force_login(superuser)
    response = client.post(
        reverse("admin:payments_order_change", args=[order.pk]),
        {"status": "REFUNDED", "amount_refunded": "10.00", "_save": "Save"},
    )
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and order.amount_refunded == 0
