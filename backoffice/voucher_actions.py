"""Staff actions on vouchers: create, edit, deactivate, generate a batch, download codes.

Each calls the payments service that owns the rule and writes one staff action row in the
same transaction (who, which voucher, what changed, why); a refusal is recorded too. No
voucher logic lives here.
"""

from datetime import datetime

from core.audit import AuditAction
from payments.models import Voucher
from payments.vouchers import (
    VoucherError,
    voucher_create,
    voucher_deactivate,
    voucher_update,
    vouchers_csv,
    vouchers_generate,
)

from .audit import staff_action_record

MANAGE_PERMISSION = "payments.change_voucher"
ADD_PERMISSION = "payments.add_voucher"


def _terms(voucher: Voucher) -> dict:
    return {
        "voucher_id": voucher.pk,
        "code": voucher.code,
        "kind": voucher.kind,
        "value": voucher.value,
        "max_uses": voucher.max_uses,
        "valid_until": voucher.valid_until.isoformat() if voucher.valid_until else None,
        "credits_valid_days": voucher.credits_valid_days,
        "status": voucher.status,
        "plan_code": voucher.plan_code,
    }


def _refused(*, staff_user, action, reason, exc, details) -> None:
    staff_action_record(
        actor=staff_user,
        action=action,
        reason=reason,
        success=False,
        error=f"{type(exc).__name__}: {exc}",
        details=details,
    )


def staff_voucher_create(*, staff_user, reason: str = "", **values) -> Voucher:
    def audit(voucher):
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_VOUCHER_CREATE,
            reason=reason,
            details=_terms(voucher),
        )

    try:
        return voucher_create(staff_user=staff_user, audit=audit, **values)
    except VoucherError as exc:
        _refused(
            staff_user=staff_user,
            action=AuditAction.STAFF_VOUCHER_CREATE,
            reason=reason,
            exc=exc,
            details={k: str(v) for k, v in values.items()},
        )
        raise


def staff_voucher_update(*, voucher: Voucher, staff_user, reason: str = "", **changes) -> Voucher:
    before = _terms(Voucher.objects.get(pk=voucher.pk))

    def audit(done):
        after = _terms(done)
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_VOUCHER_EDIT,
            reason=reason,
            details={
                "voucher_id": done.pk,
                "code": done.code,
                "changed": {k: [before[k], after[k]] for k in after if before[k] != after[k]},
            },
        )

    try:
        return voucher_update(voucher_id=voucher.pk, staff_user=staff_user, audit=audit, **changes)
    except VoucherError as exc:
        _refused(
            staff_user=staff_user,
            action=AuditAction.STAFF_VOUCHER_EDIT,
            reason=reason,
            exc=exc,
            details={"voucher_id": voucher.pk, "code": voucher.code},
        )
        raise


def staff_voucher_deactivate(*, voucher: Voucher, staff_user, reason: str) -> Voucher:
    def audit(done):
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_VOUCHER_DEACTIVATE,
            reason=reason,
            details={"voucher_id": done.pk, "code": done.code, "was": voucher.status},
        )

    return voucher_deactivate(voucher_id=voucher.pk, audit=audit)


def staff_vouchers_generate(
    *,
    staff_user,
    reason: str,
    count: int,
    prefix: str,
    kind: str,
    value: int,
    valid_until: datetime | None = None,
    credits_valid_days: int | None = None,
    note: str = "",
    plan_code: str = "",
) -> tuple[str, list[Voucher]]:
    details = {
        "count": count,
        "prefix": prefix,
        "kind": kind,
        "value": value,
        "plan_code": plan_code,
        "valid_until": valid_until.isoformat() if valid_until else None,
        "credits_valid_days": credits_valid_days,
    }

    def audit(vouchers, batch):
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_VOUCHER_GENERATE,
            reason=reason,
            details={**details, "batch": batch},
        )

    try:
        return vouchers_generate(
            staff_user=staff_user,
            count=count,
            prefix=prefix,
            kind=kind,
            value=value,
            valid_until=valid_until,
            credits_valid_days=credits_valid_days,
            note=note,
            plan_code=plan_code,
            audit=audit,
        )
    except VoucherError as exc:
        _refused(
            staff_user=staff_user,
            action=AuditAction.STAFF_VOUCHER_GENERATE,
            reason=reason,
            exc=exc,
            details=details,
        )
        raise


def staff_vouchers_export(*, vouchers, staff_user, what: str) -> str:
    """The codes as CSV; the download is recorded (codes are as good as credits)."""
    vouchers = list(vouchers)
    staff_action_record(
        actor=staff_user,
        action=AuditAction.STAFF_VOUCHER_EXPORT,
        reason=what,
        details={"count": len(vouchers), "first_id": vouchers[0].pk if vouchers else None},
    )
    return vouchers_csv(vouchers)
