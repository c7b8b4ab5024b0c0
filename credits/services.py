"""The only way credits move. Every function here is one unit of work in one transaction.

Each takes an ``idempotency_key``: calling it again with the same key returns the entry the
first call wrote and changes nothing. Each writes its ledger entry and its audit row in the
same transaction as the balance change, and is safe under any number of concurrent callers
(the balance changes in one conditional statement under the balance row's lock).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .exceptions import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    InvalidKind,
    RefundNotAllowed,
    SpendingFrozen,
)
from .ledger_sql import Movement, apply_movement
from .models import GRANT_KINDS, AuditLog, CreditBalance, IdempotencyRecord, LedgerEntry, LedgerKind


@dataclass(frozen=True)
class ClawbackResult:
    """What a clawback took back, and what it could not because the credits were spent."""

    entry: LedgerEntry
    requested: int
    recovered: int
    unrecovered: int


def balance_ensure(*, user_id: int) -> None:
    """Create the user's balance row if it is missing (it is normally made with the user)."""
    CreditBalance.objects.get_or_create(user_id=user_id)


def credits_grant(
    *,
    user,
    amount: int,
    kind: str,
    idempotency_key: str,
    description: str = "",
    metadata: dict | None = None,
    order=None,
    created_by=None,
) -> LedgerEntry:
    """Add ``amount`` (> 0) credits of a granting ``kind`` (purchase, trial, bonus, ...)."""
    _require_positive(amount)
    if kind not in GRANT_KINDS:
        raise InvalidKind(f"{kind!r} is not a kind of grant; use one of {sorted(GRANT_KINDS)}.")
    return _move(
        Movement(
            user_id=user.pk,
            delta=amount,
            kind=kind,
            idempotency_key=idempotency_key,
            action="credits.grant",
            description=description,
            metadata=metadata or {},
            order_id=_pk(order),
            created_by_id=_pk(created_by),
        )
    )


def credits_spend(
    *,
    user,
    amount: int,
    idempotency_key: str,
    description: str = "",
    metadata: dict | None = None,
    job=None,
) -> LedgerEntry:
    """Take ``amount`` (> 0) credits. Raises InsufficientCredits or SpendingFrozen, changing nothing."""
    _require_positive(amount)
    return _move(
        Movement(
            user_id=user.pk,
            delta=-amount,
            kind=LedgerKind.SPEND,
            idempotency_key=idempotency_key,
            action="credits.spend",
            description=description,
            metadata=metadata or {},
            job_id=_pk(job),
            needs_no_holds=True,
        )
    )


def credits_refund(
    *,
    spend: LedgerEntry,
    idempotency_key: str,
    amount: int | None = None,
    reason: str = "",
    created_by=None,
) -> LedgerEntry:
    """Give back ``amount`` (default: all) of a SPEND entry. A spend is refunded at most once."""
    if spend.kind != LedgerKind.SPEND:
        raise RefundNotAllowed(f"Only a spend can be refunded, not a {spend.get_kind_display().lower()}.")
    taken = -spend.amount
    amount = taken if amount is None else amount
    _require_positive(amount)
    if amount > taken:
        raise RefundNotAllowed(f"A refund of {amount} is more than the {taken} credits the spend took.")
    existing = _existing(idempotency_key)
    if existing is None and LedgerEntry.objects.filter(kind=LedgerKind.REFUND, reverses=spend).exists():
        raise RefundNotAllowed(f"Spend #{spend.pk} has already been refunded.")
    return _move(
        Movement(
            user_id=spend.user_id,
            delta=amount,
            kind=LedgerKind.REFUND,
            idempotency_key=idempotency_key,
            action="credits.refund",
            description=reason or f"Refund of spend #{spend.pk}",
            metadata={"reason": reason} if reason else {},
            job_id=spend.job_id,
            reverses_id=spend.pk,
            created_by_id=_pk(created_by),
        )
    )


def credits_adjust(
    *,
    user,
    amount: int,
    reason: str,
    staff_user,
    idempotency_key: str,
    metadata: dict | None = None,
) -> LedgerEntry:
    """A staff correction of ``amount`` (signed, not zero). It never takes the balance below zero."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
        raise InvalidAmount("An adjustment must be a whole number of credits other than zero.")
    if not reason or not reason.strip():
        raise InvalidAmount("An adjustment needs a reason.")
    if staff_user is None or not staff_user.is_staff:
        raise InvalidAmount("Only staff can adjust credits.")
    return _move(
        Movement(
            user_id=user.pk,
            delta=amount,
            kind=LedgerKind.ADJUSTMENT,
            idempotency_key=idempotency_key,
            action="credits.adjust",
            description=reason.strip(),
            metadata={**(metadata or {}), "reason": reason.strip()},
            audit={"reason": reason.strip()},
            created_by_id=staff_user.pk,
        )
    )


def credits_clawback(
    *,
    user,
    amount: int,
    idempotency_key: str,
    reason: str,
    order=None,
    metadata: dict | None = None,
    created_by=None,
) -> ClawbackResult:
    """Take back up to ``amount`` granted credits, never below zero.

    The entry records what was recovered (possibly 0); the result also says what could
    not be recovered because the user had already spent it.
    """
    _require_positive(amount)
    existing = _existing(idempotency_key)
    if existing is None:
        with transaction.atomic():
            held = (
                CreditBalance.objects.select_for_update().filter(user_id=user.pk).values_list("balance", flat=True).first()
            )
            recovered = min(amount, held or 0)
            entry = _move(
                Movement(
                    user_id=user.pk,
                    delta=-recovered,
                    kind=LedgerKind.CLAWBACK,
                    idempotency_key=idempotency_key,
                    action="credits.clawback",
                    description=reason,
                    metadata={**(metadata or {}), "requested": amount, "unrecovered": amount - recovered},
                    audit={"reason": reason, "requested": amount},
                    order_id=_pk(order),
                    created_by_id=_pk(created_by),
                )
            )
    else:
        entry = _check_same(existing, Movement(user_id=user.pk, delta=existing.amount, kind=LedgerKind.CLAWBACK,
                                               idempotency_key=idempotency_key, action=""))
    requested = int(entry.metadata.get("requested", amount))
    return ClawbackResult(entry=entry, requested=requested, recovered=-entry.amount,
                          unrecovered=requested + entry.amount)


def spending_hold(*, user, reason: str, idempotency_key: str) -> bool:
    """Freeze the user's spending (for example while a payment dispute is open).

    Holds count up and down, so two open disputes need two releases. Returns False when
    ``idempotency_key`` was already used (nothing changes then).
    """
    return _change_holds(user=user, step=1, reason=reason, idempotency_key=idempotency_key)


def spending_release(*, user, reason: str, idempotency_key: str) -> bool:
    """Release one hold placed by ``spending_hold``. Never goes below zero holds."""
    return _change_holds(user=user, step=-1, reason=reason, idempotency_key=idempotency_key)


# --- internals ----------------------------------------------------------------------------


def _move(m: Movement) -> LedgerEntry:
    """Apply a movement once. A repeat of its key returns the first entry."""
    try:
        with transaction.atomic():
            entry = apply_movement(m)
            if entry is None and not CreditBalance.objects.filter(user_id=m.user_id).exists():
                balance_ensure(user_id=m.user_id)
                entry = apply_movement(m)
    except IntegrityError:
        existing = _existing(m.idempotency_key)
        if existing is None:
            raise
        return _check_same(existing, m)
    if entry is not None:
        return entry
    existing = _existing(m.idempotency_key)
    if existing is not None:
        return _check_same(existing, m)
    raise _refusal(m)


def _change_holds(*, user, step: int, reason: str, idempotency_key: str) -> bool:
    with transaction.atomic():
        _, created = IdempotencyRecord.objects.get_or_create(
            key=f"holds:{idempotency_key}",
            defaults={"result": {"step": step}, "expires_at": timezone.now() + timedelta(days=3650)},
        )
        if not created:
            return False
        balance_ensure(user_id=user.pk)
        changed = CreditBalance.objects.filter(user_id=user.pk, spend_holds__gte=max(0, -step)).update(
            spend_holds=F("spend_holds") + step, version=F("version") + 1, updated_at=timezone.now()
        )
        AuditLog.objects.create(
            user_id=user.pk,
            action="credits.hold" if step > 0 else "credits.release",
            success=bool(changed),
            metadata={"reason": reason, "idempotency_key": idempotency_key},
            error_message="" if changed else "no hold to release",
        )
        return bool(changed)


def _refusal(m: Movement) -> Exception:
    row = CreditBalance.objects.filter(user_id=m.user_id).values("balance", "spend_holds").first()
    balance = row["balance"] if row else 0
    if m.needs_no_holds and row and row["spend_holds"] > 0:
        return SpendingFrozen()
    return InsufficientCredits(needed=-m.delta, available=balance)


def _existing(key: str) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(idempotency_key=key).first()


def _check_same(entry: LedgerEntry, m: Movement) -> LedgerEntry:
    if entry.user_id != m.user_id or entry.kind != m.kind or entry.amount != m.delta:
        raise IdempotencyConflict(
            f"Idempotency key {m.idempotency_key!r} was already used for a different operation."
        )
    return entry


def _require_positive(amount) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidAmount(f"The amount must be a whole number of credits above zero, not {amount!r}.")


def _pk(obj) -> int | None:
    return None if obj is None else obj.pk
