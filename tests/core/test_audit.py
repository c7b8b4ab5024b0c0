"""The audit log names its actions from one typed list."""

import pytest

from backoffice.audit import staff_action_record
from core.audit import AuditAction
from credits.models import AuditLog, LedgerKind
from credits.services import credits_adjust, credits_grant, credits_spend


@pytest.mark.django_db
def test_every_row_written_names_a_listed_action(make_user):
    user, staff = make_user(), make_user(is_staff=True)
    credits_grant(user=user, amount=10, kind=LedgerKind.BONUS, idempotency_key="audit:grant")
    credits_spend(user=user, amount=3, idempotency_key="audit:spend")
    credits_adjust(
        user=user, amount=2, reason="Goodwill", staff_user=staff, idempotency_key="audit:adjust"
    )
    staff_action_record(
        actor=staff, action=AuditAction.STAFF_CREDITS_ADJUST, reason="Goodwill", user=user
    )

    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"credits.grant", "credits.spend", "credits.adjust", "staff.credits_adjust"} <= actions
    assert actions <= set(AuditAction.values)
    row = AuditLog.objects.get(action=AuditAction.STAFF_CREDITS_ADJUST)
    assert row.get_action_display() == "Staff: adjust credits"


def test_a_staff_action_outside_the_list_is_refused():
    with pytest.raises(ValueError):
        staff_action_record(actor=None, action="make_money", reason="")
