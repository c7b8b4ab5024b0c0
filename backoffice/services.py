"""Staff adjustments of credits, with a second staff member for large ones.

An adjustment whose size is at most ``BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD`` applies at
once through ``credits_adjust``. A larger one becomes a pending ``AdjustmentRequest``; a
different staff member with ``credits.approve_adjustment`` approves it (it then applies
through ``credits_adjust`` with the key ``adjustment-request:<id>``, so it applies once
however often it is approved) or rejects it. Every step writes a staff action row.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.audit import AuditAction
from credits.exceptions import CreditsError, InvalidAmount
from credits.models import AuditLog, LedgerEntry
from credits.services import DESCRIPTION_MAX_LENGTH, credits_adjust

from . import app_settings
from .audit import staff_action_record
from .exceptions import NotPending, PermissionMissing, SelfApproval
from .models import AdjustmentRequest

ADJUST_PERMISSION = "credits.adjust_credits"
APPROVE_PERMISSION = "credits.approve_adjustment"


@dataclass(frozen=True)
class AdjustmentOutcome:
    """Either the entry applied now, or the request that waits for a second staff member."""

    entry: LedgerEntry | None = None
    request: AdjustmentRequest | None = None

    @property
    def needs_approval(self) -> bool:
        return self.request is not None


def needs_second_approval(amount: int) -> bool:
    return abs(amount) > app_settings.adjustment_approval_threshold()


def adjustment_submit(
    *,
    user,
    amount: int,
    reason: str,
    staff_user,
    idempotency_key: str,
    description: str = "",
    lot_expires_at: datetime | None = None,
) -> AdjustmentOutcome:
    """Adjust ``user``'s credits by ``amount`` (signed), or ask for approval when it is large.

    ``reason`` is the internal note (audit log and staff views only); ``description`` is what
    the customer reads in their history (empty: a neutral line). Added credits are a
    promotional lot, which expires at ``lot_expires_at`` (in the future; None: never; only
    for a positive amount). A request waiting for approval carries all three.
    ``idempotency_key`` identifies the staff member's request: submitting it again applies
    (or files) the adjustment once. Raises a CreditsError or BackofficeError, changing nothing.
    """
    reason = (reason or "").strip()
    description = " ".join((description or "").split())
    _check_amount_and_reason(amount, reason)
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidAmount(
            f"The customer-facing description is longer than {DESCRIPTION_MAX_LENGTH} characters."
        )
    _check_expiry(amount, lot_expires_at)
    _require_perm(staff_user, ADJUST_PERMISSION, "adjust credits")
    details = {"amount": amount, "idempotency_key": idempotency_key, "description": description}
    if lot_expires_at is not None:
        details["lot_expires_at"] = lot_expires_at.isoformat()
    if not needs_second_approval(amount):
        key = f"staff-adjust:{idempotency_key}"
        try:
            with transaction.atomic(durable=True):
                repeat = LedgerEntry.objects.filter(idempotency_key=key).exists()
                entry = credits_adjust(
                    user=user,
                    amount=amount,
                    reason=reason,
                    description=description,
                    staff_user=staff_user,
                    idempotency_key=key,
                    expires_at=lot_expires_at,
                )
                if not repeat:
                    staff_action_record(
                        actor=staff_user,
                        action=AuditAction.STAFF_CREDITS_ADJUST,
                        reason=reason,
                        user=user,
                        details={**details, "ledger_entry_id": entry.pk},
                    )
        except CreditsError as exc:
            _record_failure(
                staff_user, AuditAction.STAFF_CREDITS_ADJUST, reason, user, exc, details
            )
            raise
        return AdjustmentOutcome(entry=entry)

    with transaction.atomic(durable=True):
        request, created = AdjustmentRequest.objects.get_or_create(
            request_key=idempotency_key,
            defaults={"user": user, "amount": amount, "reason": reason, "requested_by": staff_user},
        )
        if created:
            staff_action_record(
                actor=staff_user,
                action=AuditAction.STAFF_ADJUSTMENT_REQUEST,
                reason=reason,
                user=user,
                details={
                    **details,
                    "adjustment_request_id": request.pk,
                    "threshold": app_settings.adjustment_approval_threshold(),
                },
            )
        elif (request.user_id, request.amount, request.requested_by_id) != (
            user.pk,
            amount,
            staff_user.pk,
        ):
            raise InvalidAmount(
                f"Request key {idempotency_key!r} was already used for a different adjustment."
            )
    return AdjustmentOutcome(request=request)


def adjustment_approve(
    *, adjustment_request: AdjustmentRequest, staff_user, note: str
) -> AdjustmentRequest:
    """Apply a pending large adjustment. The approver must not be the staff member who asked."""
    note = (note or "").strip()
    _require_perm(staff_user, APPROVE_PERMISSION, "approve adjustments")
    pk = adjustment_request.pk
    try:
        with transaction.atomic(durable=True):
            request = (
                AdjustmentRequest.objects.select_for_update().select_related("user").get(pk=pk)
            )
            if request.requested_by_id == staff_user.pk:
                raise SelfApproval()
            if request.status != AdjustmentRequest.Status.PENDING:
                raise NotPending(request)
            asked = _request_details(request)
            lot_expires_at = _parse_moment(asked.get("lot_expires_at"))
            # Checked again: an expiry that has passed while the request waited is refused.
            _check_expiry(request.amount, lot_expires_at)
            entry = credits_adjust(
                user=request.user,
                amount=request.amount,
                reason=request.reason,
                description=str(asked.get("description") or ""),
                expires_at=lot_expires_at,
                staff_user=staff_user,
                idempotency_key=request.idempotency_key,
                metadata={
                    "adjustment_request_id": request.pk,
                    "requested_by_id": request.requested_by_id,
                },
            )
            request.status = AdjustmentRequest.Status.APPLIED
            request.decided_by = staff_user
            request.decided_at = timezone.now()
            request.decision_note = note
            request.ledger_entry = entry
            request.last_error = ""
            request.save(
                update_fields=[
                    "status",
                    "decided_by",
                    "decided_at",
                    "decision_note",
                    "ledger_entry",
                    "last_error",
                ]
            )
            staff_action_record(
                actor=staff_user,
                action=AuditAction.STAFF_ADJUSTMENT_APPROVE,
                reason=note or request.reason,
                user=request.user_id,
                details={
                    "adjustment_request_id": request.pk,
                    "amount": request.amount,
                    "requested_by_id": request.requested_by_id,
                    "ledger_entry_id": entry.pk,
                },
            )
    except (CreditsError, SelfApproval, NotPending) as exc:
        with transaction.atomic():
            AdjustmentRequest.objects.filter(pk=pk, status=AdjustmentRequest.Status.PENDING).update(
                last_error=str(exc)[:2000]
            )
            _record_failure(
                staff_user,
                AuditAction.STAFF_ADJUSTMENT_APPROVE,
                note,
                adjustment_request.user_id,
                exc,
                {"adjustment_request_id": pk, "amount": adjustment_request.amount},
            )
        raise
    return request


def adjustment_reject(
    *, adjustment_request: AdjustmentRequest, staff_user, note: str
) -> AdjustmentRequest:
    """Close a pending large adjustment without applying it. A note saying why is required."""
    note = (note or "").strip()
    if not note:
        raise InvalidAmount("Say why the adjustment is rejected.")
    _require_perm(staff_user, APPROVE_PERMISSION, "reject adjustments")
    with transaction.atomic(durable=True):
        request = AdjustmentRequest.objects.select_for_update().get(pk=adjustment_request.pk)
        if request.status != AdjustmentRequest.Status.PENDING:
            raise NotPending(request)
        request.status = AdjustmentRequest.Status.REJECTED
        request.decided_by = staff_user
        request.decided_at = timezone.now()
        request.decision_note = note
        request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        staff_action_record(
            actor=staff_user,
            action=AuditAction.STAFF_ADJUSTMENT_REJECT,
            reason=note,
            user=request.user_id,
            details={
                "adjustment_request_id": request.pk,
                "amount": request.amount,
                "requested_by_id": request.requested_by_id,
            },
        )
    return request


def adjustment_request_description(request: AdjustmentRequest) -> str:
    """The customer-facing description asked for with a pending request ("" for the neutral line).

    It is kept in the metadata of the request's own staff action row, written in the same
    transaction as the request.
    """
    return str(_request_details(request).get("description") or "")


def adjustment_request_lot_expiry(request: AdjustmentRequest) -> datetime | None:
    """When the credits a pending request adds would expire (None: never), kept like its
    description."""
    return _parse_moment(_request_details(request).get("lot_expires_at"))


def _request_details(request: AdjustmentRequest) -> dict:
    """The details filed with the request: its staff action row's metadata."""
    row = (
        AuditLog.objects.filter(
            action=AuditAction.STAFF_ADJUSTMENT_REQUEST, metadata__adjustment_request_id=request.pk
        )
        .values_list("metadata", flat=True)
        .first()
    )
    return row or {}


def _parse_moment(value) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- internals ----------------------------------------------------------------------------


def _check_amount_and_reason(amount, reason: str) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
        raise InvalidAmount("An adjustment must be a whole number of credits other than zero.")
    if not reason:
        raise InvalidAmount("An adjustment needs a reason.")


def _check_expiry(amount: int, lot_expires_at: datetime | None) -> None:
    if lot_expires_at is None:
        return
    if amount < 0:
        raise InvalidAmount("A negative adjustment takes credits: it cannot carry an expiry.")
    if lot_expires_at <= timezone.now():
        raise InvalidAmount(
            f"The credits would expire at {lot_expires_at.isoformat()}, which is not in the future."
        )


def _require_perm(staff_user, perm: str, what: str) -> None:
    if (
        staff_user is None
        or not staff_user.is_active
        or not staff_user.is_staff
        or not staff_user.has_perm(perm)
    ):
        raise PermissionMissing(f"{staff_user or 'Nobody'} may not {what}.")


def _record_failure(
    staff_user, action: AuditAction, reason: str, user, exc: Exception, details: dict
) -> None:
    staff_action_record(
        actor=staff_user,
        action=action,
        reason=reason,
        user=user,
        success=False,
        error=f"{type(exc).__name__}: {exc}",
        details=details,
    )
