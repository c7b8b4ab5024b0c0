"""A staff action's audit row is written in the transaction of the change it records: when
the row cannot be written, the change is not kept either (and the action can be done again)."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection

from backoffice.generation_actions import staff_job_refund
from backoffice.payment_actions import staff_order_refund
from credits.models import AuditLog, CreditBalance
from generations.models import GenerationJob
from payments.models import Order, Refund

from .conftest import new_key
from .test_job_and_replay_actions import completed_job  # noqa: F401 - the fixture


@pytest.fixture
def audit_refuses():
    """Make the database refuse the done row of one staff action (as a full disk or a lost
    connection would), until the test ends."""
    names = []

    def refuse(action: str) -> None:
        names.append(action)
        with connection.cursor() as cursor:
            cursor.execute(f"""
                CREATE OR REPLACE FUNCTION test_refuse_audit() RETURNS trigger AS $$
                BEGIN
                    IF NEW.action = '{action}' AND NEW.success THEN
                        RAISE EXCEPTION 'the audit log cannot be written';
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql;
                CREATE TRIGGER test_refuse_audit BEFORE INSERT ON credits_auditlog
                    FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();
            """)

    yield refuse
    if names and not connection.needs_rollback:  # a test transaction rolls it back by itself
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER IF EXISTS test_refuse_audit ON credits_auditlog;"
                "DROP FUNCTION IF EXISTS test_refuse_audit();"
            )


def _allow_audit():
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_audit ON credits_auditlog")


@pytest.mark.django_db
def test_a_job_refund_whose_audit_row_fails_is_not_kept(make_staff, completed_job, audit_refuses):  # noqa: F811
    job = completed_job
    before = CreditBalance.objects.get(user=job.user).balance
    staff = make_staff("generations.view_generationjob", "generations.manage_jobs")
    audit_refuses("staff.job_refund")

    with pytest.raises(DatabaseError):
        staff_job_refund(job=job, reason="The picture came out blank", staff_user=staff)

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.COMPLETED
    assert CreditBalance.objects.get(user=job.user).balance == before
    assert not AuditLog.objects.filter(action="staff.job_refund").exists()

    _allow_audit()
    staff_job_refund(job=job, reason="The picture came out blank", staff_user=staff)
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.REFUNDED
    assert CreditBalance.objects.get(user=job.user).balance == before + job.credits_charged
    assert AuditLog.objects.filter(action="staff.job_refund", success=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_order_refund_whose_audit_row_fails_is_recorded_when_tried_again(
    make_staff, paid_stripe_order, fake_stripe, audit_refuses
):
    order = paid_stripe_order(credits=100, price="20.00")
    staff = make_staff("payments.view_order", "payments.refund_order")
    key = new_key()
    audit_refuses("staff.order_refund")

    with pytest.raises(DatabaseError):
        staff_order_refund(
            order=order,
            amount=None,
            reason="Duplicate purchase",
            staff_user=staff,
            idempotency_key=key,
        )

    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and order.credits_clawed_back == 0
    assert CreditBalance.objects.get(user=order.user).balance == 100
    assert not Refund.objects.exists()
    assert not AuditLog.objects.filter(action="staff.order_refund").exists()

    _allow_audit()  # the same confirmation again: the provider answers with the same refund
    done, refund = staff_order_refund(
        order=order, amount=None, reason="Duplicate purchase", staff_user=staff, idempotency_key=key
    )
    assert done.status == Order.Status.REFUNDED and done.amount_refunded == Decimal("20.00")
    assert len(fake_stripe.refunds) == 1
    assert CreditBalance.objects.get(user=order.user).balance == 0
    audit = AuditLog.objects.get(action="staff.order_refund")
    assert audit.success and audit.metadata["refund_id"] == refund.pk
