"""The only way credits move. Every function here is one unit of work in one transaction.

Each takes an ``idempotency_key``: calling it again with the same key returns the entry the
first call wrote and changes nothing (the same key for a different operation raises
IdempotencyConflict). Each writes its ledger entry and its audit row in the same
transaction as the balance change, and is safe under any number of concurrent callers (the
balance changes in one conditional statement under the balance row's lock).

Called with no transaction open, a movement is one PostgreSQL statement and so its own
transaction; called inside the caller's ``transaction.atomic``, it joins it (in a
savepoint, so a refused or repeated movement leaves the caller's transaction usable).
Errors come from ``credits.exceptions`` and always mean that nothing was written.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Now
from django.utils import timezone

from core.audit import AuditAction
from core.metrics import LEDGER_MOVEMENTS, count_safely

from .app_settings import app_settings
from .exceptions import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    InvalidKind,
    RefundNotAllowed,
    SpendingCapReached,
    SpendingFrozen,
    StaffRequired,
)
from .idempotency import FOREVER, idempotency_remember, require_key
from .ledger_sql import (
    CLAW,
    LOT_OF_KIND,
    BalanceSnapshot,
    LotTerms,
    Movement,
    RegenPolicy,
    apply_catch_up,
    apply_movement,
    apply_regeneration,
    live_credits,
    lock_balance,
)
from .models import (
    GRANT_KINDS,
    AuditLog,
    CreditBalance,
    CreditLot,
    LedgerEntry,
    LedgerKind,
    LotCategory,
    LotMovement,
    LotSource,
    staff_adjustment_description,
)
from .references import Source, require_registered
from .selectors import spending_controls_of

#: The longest customer-facing description an entry keeps.
DESCRIPTION_MAX_LENGTH = LedgerEntry._meta.get_field("description").max_length


@dataclass(frozen=True)
class ClawbackResult:
    """What a clawback took back, and what it could not because the credits were spent."""

    entry: LedgerEntry
    requested: int
    recovered: int
    unrecovered: int


def balance_ensure(*, user_id: int) -> bool:
    """Create the user's balance row if it is missing (it is normally made with the user).

    Returns True when it had to be created.
    """
    _, created = CreditBalance.objects.get_or_create(user_id=user_id)
    return created


def lot_terms(
    *,
    kind: str,
    lot_source: str | None = None,
    category: str | None = None,
    expires_at: datetime | None = None,
    cost_basis: Decimal | None = None,
    currency: str | None = None,
) -> LotTerms:
    """The lot a grant of ``kind`` creates: the kind's source and category unless given, the
    source's priority, ``expires_at`` or else the source's expiry (``CREDITS_LOT_EXPIRY``)."""
    default_source, default_category = LOT_OF_KIND[kind]
    source = LotSource(lot_source or default_source)
    category = LotCategory(category or default_category)
    if category == LotCategory.PROMOTIONAL and cost_basis:
        raise InvalidAmount("Promotional credits have no cost basis.")
    if cost_basis is not None and (not isinstance(cost_basis, Decimal) or cost_basis < 0):
        raise InvalidAmount(f"A cost basis is a Decimal of at least 0, not {cost_basis!r}.")
    if expires_at is not None and timezone.is_naive(expires_at):
        raise InvalidAmount("An expiry needs a time zone.")
    after = None if expires_at is not None else app_settings.lot_expiry(source)
    return LotTerms(
        category=category,
        source=source,
        priority=app_settings.lot_priority(source),
        expires_at=expires_at,
        expires_in=None if after is None else after.total_seconds(),
        cost_basis=None if category == LotCategory.PROMOTIONAL else cost_basis,
        currency=None if category == LotCategory.PROMOTIONAL else (currency or "").upper() or None,
    )


def credits_grant(
    *,
    user,
    amount: int,
    kind: str,
    idempotency_key: str,
    description: str = "",
    metadata: dict | None = None,
    source: Source | None = None,
    created_by=None,
    lot_source: str | None = None,
    category: str | None = None,
    expires_at: datetime | None = None,
    cost_basis: Decimal | None = None,
    currency: str | None = None,
) -> LedgerEntry:
    """Add ``amount`` (> 0) credits of a granting ``kind`` (purchase, trial, bonus, ...) as a lot.

    ``source``: what caused it (the order that bought it, ...), see ``credits.references``;
    the lot carries it too. The lot's source and category follow the kind (``LOT_OF_KIND``)
    unless given; it expires at ``expires_at``, else as ``CREDITS_LOT_EXPIRY`` says for its
    source (never, when it says nothing). ``cost_basis`` (money per credit, in
    ``currency``) is for paid lots only.
    """
    _require_positive(amount)
    if kind not in GRANT_KINDS:
        raise InvalidKind(f"{kind!r} is not a kind of grant; use one of {sorted(GRANT_KINDS)}.")
    terms = lot_terms(
        kind=kind,
        lot_source=lot_source,
        category=category,
        expires_at=expires_at,
        cost_basis=cost_basis,
        currency=currency,
    )
    return _move(
        Movement(
            user_id=user.pk,
            delta=amount,
            kind=kind,
            idempotency_key=require_key(idempotency_key),
            action=AuditAction.GRANT,
            description=description,
            metadata=metadata or {},
            **_source_columns(source),
            created_by_id=_pk(created_by),
            lot=terms,
        )
    )


def credits_grant_trial(*, user) -> LedgerEntry | None:
    """Grant the free trial (``CREDITS_TRIAL_GRANT``) once per user, whenever it is called again.

    Called when the user's email address is verified. Returns the trial entry (the first
    one on a repeat), or None when trial grants are turned off (0).
    """
    key = f"trial:{user.pk}"
    existing = _existing(key)
    if existing is not None:
        return existing
    amount = app_settings.TRIAL_GRANT
    if amount <= 0:
        return None
    return credits_grant(
        user=user,
        amount=amount,
        kind=LedgerKind.TRIAL_GRANT,
        idempotency_key=key,
        description="Free trial credits",
    )


def credits_spend(
    *,
    user,
    amount: int,
    idempotency_key: str,
    description: str = "",
    metadata: dict | None = None,
    source: Source | None = None,
) -> LedgerEntry:
    """Take ``amount`` (> 0) credits. Raises InsufficientCredits or SpendingFrozen, changing nothing.

    ``source``: what the credits were spent on (a job, ...); a refund of the spend names it too.

    For a free-tier user, regeneration due is applied first, in the same statement.
    """
    _require_positive(amount)
    return _move(
        Movement(
            user_id=user.pk,
            delta=-amount,
            kind=LedgerKind.SPEND,
            idempotency_key=require_key(idempotency_key),
            action=AuditAction.SPEND,
            description=description,
            metadata=metadata or {},
            **_source_columns(source),
            needs_no_holds=True,
        ),
        regen=regen_policy_for(user),
    )


def credits_refund(
    *,
    spend: LedgerEntry,
    idempotency_key: str,
    amount: int | None = None,
    reason: str = "",
    internal_note: str = "",
    created_by=None,
) -> LedgerEntry:
    """Give back ``amount`` (default: all) of a SPEND entry. A spend is refunded at most once.

    ``reason`` is the description the customer reads; ``internal_note`` (staff only) says
    why staff refunded it.

    Raises RefundNotAllowed for anything but a stored spend, for a refund larger than the
    spend, and for a spend already refunded under another key.
    """
    require_key(idempotency_key)
    if not isinstance(spend, LedgerEntry) or spend.pk is None:
        raise RefundNotAllowed("Only a stored ledger entry can be refunded.")
    # The stored row, not the caller's copy, decides what may be refunded.
    row = (
        LedgerEntry.objects.filter(pk=spend.pk)
        .annotate(
            refund_key=Subquery(
                LedgerEntry.objects.filter(kind=LedgerKind.REFUND, reverses=OuterRef("pk")).values(
                    "idempotency_key"
                )[:1]
            )
        )
        .values("kind", "amount", "user_id", "source_type", "source_id", "refund_key")
        .first()
    )
    if row is None:
        raise RefundNotAllowed(f"There is no ledger entry #{spend.pk}.")
    if row["kind"] != LedgerKind.SPEND:
        label = LedgerKind(row["kind"]).label.lower()
        raise RefundNotAllowed(f"Only a spend can be refunded, not a {label} (entry #{spend.pk}).")
    taken = -row["amount"]
    amount = taken if amount is None else amount
    _require_positive(amount)
    if amount > taken:
        raise RefundNotAllowed(
            f"A refund of {amount} is more than the {taken} credits spend #{spend.pk} took."
        )
    m = Movement(
        user_id=row["user_id"],
        delta=amount,
        kind=LedgerKind.REFUND,
        idempotency_key=idempotency_key,
        action=AuditAction.REFUND,
        description=reason or f"Refund of spend #{spend.pk}",
        internal_note=internal_note.strip(),
        metadata={"reason": reason} if reason else {},
        source_type=row["source_type"],
        source_id=row["source_id"],
        reverses_id=spend.pk,
        created_by_id=_pk(created_by),
    )
    if row["refund_key"] is not None:
        if row["refund_key"] == idempotency_key:
            return _check_same(_existing(idempotency_key), m)
        raise RefundNotAllowed(f"Spend #{spend.pk} has already been refunded.")
    return _move(m)


def credits_adjust(
    *,
    user,
    amount: int,
    reason: str,
    staff_user,
    idempotency_key: str,
    description: str = "",
    metadata: dict | None = None,
    expires_at: datetime | None = None,
) -> LedgerEntry:
    """A staff correction of ``amount`` (signed, not zero). It never takes the balance below zero.

    Credits added become a promotional lot (source ``adjustment``) expiring at ``expires_at``
    (None: as ``CREDITS_LOT_EXPIRY`` says, by default never); credits removed are taken from
    the live lots in burn order.

    ``reason`` is the staff's internal note: it goes to the entry's ``internal_note`` and the
    audit row, never to the customer. ``description`` is what the customer reads in their
    history, export and emails; when empty, a neutral line saying that support changed
    the balance.
    """
    if not _is_int(amount) or amount == 0 or abs(amount) > app_settings.MAX_AMOUNT:
        raise InvalidAmount(
            f"An adjustment must be a whole number of credits other than zero, at most "
            f"{app_settings.MAX_AMOUNT} either way, not {amount!r}."
        )
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidAmount("An adjustment needs a reason.")
    if not isinstance(description, str):
        raise InvalidAmount("An adjustment's customer-facing description must be text.")
    if len(description.strip()) > DESCRIPTION_MAX_LENGTH:
        raise InvalidAmount(
            f"The customer-facing description is longer than {DESCRIPTION_MAX_LENGTH} characters."
        )
    if staff_user is None or not getattr(staff_user, "is_staff", False):
        raise StaffRequired("Only staff can adjust credits.")
    if expires_at is not None and amount < 0:
        raise InvalidAmount("Only credits added can be given an expiry.")
    note = reason.strip()
    terms = lot_terms(kind=LedgerKind.ADJUSTMENT, expires_at=expires_at) if amount > 0 else None
    return _move(
        Movement(
            user_id=user.pk,
            delta=amount,
            kind=LedgerKind.ADJUSTMENT,
            idempotency_key=require_key(idempotency_key),
            action=AuditAction.ADJUST,
            description=description.strip() or staff_adjustment_description(amount),
            internal_note=note,
            metadata=metadata or {},
            audit={"reason": note},
            created_by_id=staff_user.pk,
            lot=terms,
        )
    )


def credits_clawback(
    *,
    user,
    amount: int,
    idempotency_key: str,
    reason: str,
    source: Source | None = None,
    metadata: dict | None = None,
    created_by=None,
) -> ClawbackResult:
    """Take back up to ``amount`` granted credits, never below zero.

    The entry records what was recovered (possibly 0); the result also says what could
    not be recovered because the user had already spent it. A repeat of the key returns
    the first result, whatever the balance is now.
    """
    _require_positive(amount)
    require_key(idempotency_key)
    m = Movement(
        user_id=user.pk,
        delta=0,  # the statement takes what it can of ``amount``
        kind=LedgerKind.CLAWBACK,
        idempotency_key=idempotency_key,
        action=AuditAction.CLAWBACK,
        description=reason,
        metadata=metadata or {},
        audit={"reason": reason, "requested": amount},
        **_source_columns(source),
        created_by_id=_pk(created_by),
    )
    existing = _existing(idempotency_key)
    if existing is None:
        existing = _move(m, mode=CLAW, need=amount)
    entry = existing
    if (
        entry.user_id != user.pk
        or entry.kind != LedgerKind.CLAWBACK
        or int(entry.metadata.get("requested", -1)) != amount
    ):
        raise IdempotencyConflict(
            f"Idempotency key {idempotency_key!r} was already used for a different operation."
        )
    return ClawbackResult(
        entry=entry, requested=amount, recovered=-entry.amount, unrecovered=amount + entry.amount
    )


def credits_forfeit(
    *,
    user,
    idempotency_key: str,
    description: str,
    internal_note: str = "",
    metadata: dict | None = None,
    created_by=None,
) -> LedgerEntry | None:
    """Take the user's whole remaining balance (FORFEIT): the credits are given up for good.

    Used when the account is deleted, inside the deletion's transaction. The amount is the
    balance when the statement runs, under the balance row's lock. Spending holds (an open
    dispute) do not stop it: a forfeiture is not a spend, and the holds stay counted on the
    row for their own release; a clawback after it finds nothing left to take and records
    the credits it could not recover. Returns the entry (the first one on a repeat of the
    key), or None when the balance was already 0 (nothing is written).
    """
    m = Movement(
        user_id=user.pk,
        delta=0,  # the statement takes whatever the balance is
        kind=LedgerKind.FORFEIT,
        idempotency_key=require_key(idempotency_key),
        action=AuditAction.FORFEIT,
        description=description,
        internal_note=internal_note.strip(),
        metadata=metadata or {},
        created_by_id=_pk(created_by),
    )
    existing = _existing(idempotency_key)
    if existing is None:
        try:
            return apply_movement(m)
        except IntegrityError:
            existing = _existing(idempotency_key)
            if existing is None:
                raise
    if existing.user_id != user.pk or existing.kind != LedgerKind.FORFEIT:
        raise IdempotencyConflict(
            f"Idempotency key {idempotency_key!r} was already used for a different operation."
        )
    return existing


def lots_expire_due(*, limit: int | None = None) -> int:
    """Write the expiry of lots that have lapsed with credits left; returns the users caught up.

    For the periodic task. Each user's due lots expire in one statement under their balance
    row's lock (one EXPIRY entry per lot, key ``expire:<lot id>``), the same catch-up every
    movement of theirs runs first: a lot is expired once however many runs, spends or
    refunds reach it at the same time. Spends never draw on a lapsed lot, written or not;
    this only brings the balance rows and the history up to date. At most ``limit``
    (``CREDITS_LOT_EXPIRY_BATCH``) lots are looked at per run, soonest lapsed first.
    """
    limit = limit or app_settings.LOT_EXPIRY_BATCH
    users = list(
        CreditLot.objects.filter(has_remaining=True, expires_at__lte=Now())
        .order_by("expires_at")
        .values_list("user_id", flat=True)[:limit]
    )
    done = 0
    for user_id in dict.fromkeys(users):
        apply_catch_up(user_id=user_id)
        done += 1
    return done


@dataclass(frozen=True)
class RolloverResult:
    """What a period's end did with its lots: the credits left unused (all expired) and the
    credits granted again as a rollover lot (at most the cap; None when nothing rolled)."""

    unused: int
    rolled: int
    entry: LedgerEntry | None


def credits_roll_over(
    *,
    user,
    lot_ids: list[int],
    cap: int,
    expires_at: datetime,
    idempotency_key: str,
    source: Source,
    description: str,
    cost_basis: Decimal | None = None,
    currency: str | None = None,
    ending_rollover_ids: list[int] = (),
    category: str = LotCategory.PAID,
) -> RolloverResult:
    """End the lots ``lot_ids`` (a subscription period's) and roll up to ``cap`` of what they
    held over into a new paid ROLLOVER lot expiring at ``expires_at``. The rollover lots of
    the ending period (``ending_rollover_ids``) end with it and roll no further.

    Under the user's balance lock, in one transaction: lots that have lapsed are expired as
    usual (``expire:<lot id>``); lots still live (the period ended early: a renewal or an
    upgrade before the lot's own expiry) are expired now, each from its own lot only (an
    EXPIRY entry keyed ``<key>:end:<lot id>``). Every unused credit of the period therefore
    shows as an EXPIRY entry; then ``min(cap, unused)`` come back as one grant (kind
    SUBSCRIPTION_GRANT, lot source ``rollover``) under ``idempotency_key``. A rollover lot is
    never among ``lot_ids`` (rolled credits never roll again). A repeat of the key changes
    nothing and returns the first result.
    """
    require_key(idempotency_key)
    if not _is_int(cap) or cap < 0:
        raise InvalidAmount(f"A rollover cap is a whole number of at least 0, not {cap!r}.")
    for attempt in range(1, MOVE_ATTEMPTS + 1):
        try:
            return _roll_over_once(
                user=user,
                lot_ids=lot_ids,
                cap=cap,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
                source=source,
                description=description,
                cost_basis=cost_basis,
                currency=currency,
                ending_rollover_ids=ending_rollover_ids,
                category=category,
            )
        except _LotLapsed:
            if attempt == MOVE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class _LotLapsed(Exception):
    """A lot being ended lapsed while its expiry statement ran: try the rollover again."""


def _roll_over_once(
    *,
    user,
    lot_ids,
    cap,
    expires_at,
    idempotency_key,
    source,
    description,
    cost_basis,
    currency,
    ending_rollover_ids,
    category,
) -> RolloverResult:
    with transaction.atomic():
        _lock_balance(user_id=user.pk)
        lots = list(
            CreditLot.objects.select_for_update()
            .filter(pk__in=[*lot_ids, *ending_rollover_ids], user_id=user.pk)
            .order_by("pk")
        )
        # The period's own lots end first, its rollover lots after them: each expiry draws
        # from its source's lots in that order (see CLAW), so each takes exactly its lot.
        lots.sort(key=lambda lot: (lot.source == LotSource.ROLLOVER, lot.pk))
        # What has lapsed is written first (the same catch-up every movement runs).
        apply_catch_up(user_id=user.pk)
        for lot in lots:
            lot.refresh_from_db(fields=["remaining"])
            if lot.remaining <= 0:
                continue
            m = Movement(
                user_id=user.pk,
                delta=0,
                kind=LedgerKind.EXPIRY,
                idempotency_key=f"{idempotency_key}:end:{lot.pk}",
                action=AuditAction.EXPIRE,
                description="Plan credits ended with their period",
                metadata={"lot_id": lot.pk},
                source_type=lot.source_type,
                source_id=lot.source_id,
            )
            if _existing(m.idempotency_key) is None:
                # A clawback-shaped draw of exactly what the lot holds, from that lot first
                # (its source's paid lot): under the balance lock nothing else can draw it.
                # Should the lot lapse between the read and the statement, the statement
                # expires it and would draw elsewhere: that is refused, and the caller's
                # savepoint rolls back (the lapsed lot is then caught up normally).
                entry = apply_movement(m, mode=CLAW, need=lot.remaining)
                if (
                    entry is not None
                    and LotMovement.objects.filter(entry_id=entry.pk)
                    .exclude(lot_id=lot.pk)
                    .exists()
                ):
                    raise _LotLapsed(lot.pk)
        unused = -sum(
            LotMovement.objects.filter(
                lot_id__in=[lot.pk for lot in lots if lot.source != LotSource.ROLLOVER],
                entry__kind=LedgerKind.EXPIRY,
            ).values_list("credits", flat=True)
        )
        rolled = min(cap, unused)
        entry = _existing(idempotency_key)
        if entry is None and rolled > 0:
            entry = credits_grant(
                user=user,
                amount=rolled,
                kind=LedgerKind.SUBSCRIPTION_GRANT,
                idempotency_key=idempotency_key,
                description=description,
                metadata={"unused": unused, "cap": cap},
                source=source,
                lot_source=LotSource.ROLLOVER,
                category=category,
                expires_at=expires_at,
                cost_basis=cost_basis,
                currency=currency,
            )
    return RolloverResult(unused=unused, rolled=entry.amount if entry else 0, entry=entry)


def spending_hold(*, user, reason: str, idempotency_key: str) -> bool:
    """Freeze the user's spending (for example while a payment dispute is open).

    Holds count up and down, so two open disputes need two releases. Returns False when
    ``idempotency_key`` was already used (nothing changes then).
    """
    return _change_holds(user=user, step=1, reason=reason, idempotency_key=idempotency_key)


def spending_release(*, user, reason: str, idempotency_key: str) -> bool:
    """Release one hold placed by ``spending_hold``. Never goes below zero holds."""
    return _change_holds(user=user, step=-1, reason=reason, idempotency_key=idempotency_key)


def regen_policy_for(user) -> RegenPolicy | None:
    """The free-tier regeneration that applies to ``user``, or None (paid plan, turned off, or
    a deleted account, whose balance was forfeited)."""
    if (
        not app_settings.REGEN_ENABLED
        or getattr(user, "has_paid_plan", False)
        or getattr(user, "deleted_at", None) is not None
    ):
        return None
    return RegenPolicy(
        every_seconds=app_settings.REGEN_INTERVAL_SECONDS,
        amount=app_settings.REGEN_AMOUNT,
        cap=app_settings.REGEN_CAP,
    )


def balance_refresh(*, user) -> BalanceSnapshot:
    """The user's balance as of now: regeneration due is written first (one entry per catch-up).

    Safe to call on every page view: when nothing is due it is one plain read. Two requests
    at once regenerate once (the catch-up is conditional on ``regen_checked_at`` under the
    row lock, and its entry's key is derived from the user and the period).
    """
    snapshot = apply_regeneration(user_id=user.pk, regen=regen_policy_for(user))
    return snapshot or BalanceSnapshot()


def balance_refresh_for_request(*, request) -> BalanceSnapshot:
    """The signed-in user's balance, refreshed once per request (``balance_refresh``).

    The credits page and the header share it, so a page view refreshes the balance once.
    """
    cached = getattr(request, "_credits_balance", None)
    if cached is None:
        cached = balance_refresh(user=request.user)
        request._credits_balance = cached
    return cached


# --- internals ----------------------------------------------------------------------------


#: A movement refused because the user has no balance row yet runs once more, after
#: creating it.
MOVE_ATTEMPTS = 2


def _move(
    m: Movement,
    *,
    regen: RegenPolicy | None = None,
    mode: str | None = None,
    need: int | None = None,
) -> LedgerEntry:
    """Apply a movement once. A repeat of its key returns the first entry."""
    for attempt in range(1, MOVE_ATTEMPTS + 1):
        try:
            entry = apply_movement(m, regen=regen, mode=mode, need=need)
        except IntegrityError:
            existing = _existing(m.idempotency_key)
            if existing is not None:
                return existing if mode == CLAW else _check_same(existing, m)
            if m.kind == LedgerKind.REFUND and _refunded(m.reverses_id):
                raise RefundNotAllowed(
                    f"Spend #{m.reverses_id} has already been refunded."
                ) from None
            raise
        if entry is not None:
            _count_movement(entry.kind)
            return entry
        existing = _existing(m.idempotency_key)
        if existing is not None:
            if mode == CLAW:
                return existing
            return _check_same(existing, m)
        if attempt == 1 and balance_ensure(user_id=m.user_id):
            continue
        if m.kind == LedgerKind.SPEND and (capped := _cap_refusal(m)) is not None:
            raise capped
        break
    raise _refusal(m, regen)


def _count_movement(kind: str) -> None:
    """Metrics: one more ledger entry of ``kind``, counted once its transaction commits."""
    transaction.on_commit(lambda: count_safely(LEDGER_MOVEMENTS, kind))


def _lock_balance(*, user_id: int) -> int:
    """Lock the user's balance row as a movement does (creating it if needed) and return the
    balance."""
    held = lock_balance(user_id=user_id)
    if held is None:
        balance_ensure(user_id=user_id)
        held = lock_balance(user_id=user_id)
    return held


def _change_holds(*, user, step: int, reason: str, idempotency_key: str) -> bool:
    require_key(idempotency_key)
    with transaction.atomic():
        # Kept for good: a hold replayed years later must still not count twice.
        _, created = idempotency_remember(
            key=f"holds:{idempotency_key}", result={"step": step}, ttl=FOREVER
        )
        if not created:
            return False
        _lock_balance(user_id=user.pk)
        changed = CreditBalance.objects.filter(
            user_id=user.pk, spend_holds__gte=max(0, -step)
        ).update(
            spend_holds=F("spend_holds") + step, version=F("version") + 1, updated_at=timezone.now()
        )
        AuditLog.objects.create(
            user_id=user.pk,
            action=AuditAction.HOLD if step > 0 else AuditAction.RELEASE,
            success=bool(changed),
            metadata={"reason": reason, "idempotency_key": idempotency_key},
            error_message="" if changed else "no hold to release",
        )
        return bool(changed)


def _refusal(m: Movement, regen: RegenPolicy | None) -> Exception:
    # Report what could be spent now, expired credits left out and any regeneration due
    # counted in (computed, not written: a refusal writes nothing).
    available, holds = live_credits(user_id=m.user_id, regen=regen) or (0, 0)
    if m.needs_no_holds and holds > 0:
        return SpendingFrozen()
    return InsufficientCredits(needed=-m.delta, available=available)


def _cap_refusal(m: Movement) -> SpendingCapReached | None:
    """The cap a refused spend would pass, read fresh (the windows on the database clock)."""
    state = spending_controls_of(user_id=m.user_id)
    tz = state.time_zone
    needed = -m.delta
    for period, cap, spent, resets in (
        ("daily", state.daily_cap, state.spent_today, f"at midnight ({tz})"),
        ("monthly", state.monthly_cap, state.spent_this_month, f"on the 1st of the month ({tz})"),
    ):
        if cap is not None and spent + needed > cap:
            return SpendingCapReached(
                period=period, cap=cap, spent=spent, needed=needed, resets=resets
            )
    return None


@dataclass(frozen=True)
class SpendingControls:
    """A user's caps and low-balance threshold (None: not set)."""

    daily_cap: int | None = None
    monthly_cap: int | None = None
    low_balance_threshold: int | None = None


def spending_controls_set(
    *, user, controls: SpendingControls, actor=None, reason: str = ""
) -> SpendingControls:
    """Set ``user``'s spending caps and low-balance threshold, audited (``actor``: staff doing
    it for them, saying why in ``reason``; None: the user themself).

    Under the balance row's lock, so no movement runs half under the old values. A threshold
    set while the balance is already below it waits for the balance to come back up before
    it can be crossed (a crossing is a fall from at or above it to below).
    """
    for value in (controls.daily_cap, controls.monthly_cap, controls.low_balance_threshold):
        if value is not None and (not _is_int(value) or not 0 <= value <= app_settings.MAX_AMOUNT):
            raise InvalidAmount(
                f"Caps and thresholds are whole numbers of credits from 0 to {app_settings.MAX_AMOUNT}."
            )
    with transaction.atomic():
        balance = _lock_balance(user_id=user.pk)
        row = CreditBalance.objects.get(user_id=user.pk)
        before = SpendingControls(row.daily_cap, row.monthly_cap, row.low_balance_threshold)
        threshold = controls.low_balance_threshold
        CreditBalance.objects.filter(user_id=user.pk).update(
            daily_cap=controls.daily_cap,
            monthly_cap=controls.monthly_cap,
            low_balance_threshold=threshold,
            low_balance_armed=(
                row.low_balance_armed
                if threshold == before.low_balance_threshold
                else threshold is None or balance >= threshold
            ),
        )
        AuditLog.objects.create(
            user_id=user.pk,
            actor_id=(actor or user).pk,
            action=AuditAction.CONTROLS,
            metadata={"before": before.__dict__, "after": controls.__dict__, "reason": reason},
        )
    return controls


def spending_top_up_threshold_set(*, user, threshold: int | None) -> None:
    """Set the balance below which an automatic top-up is due (None: off); the payments app
    calls it when the user turns automatic top-up on or off. Armed only from at or above it."""
    if threshold is not None and (not _is_int(threshold) or threshold < 0):
        raise InvalidAmount("A top-up threshold is a whole number of credits.")
    with transaction.atomic():
        balance = _lock_balance(user_id=user.pk)
        CreditBalance.objects.filter(user_id=user.pk).update(
            top_up_threshold=threshold,
            top_up_armed=threshold is None or balance >= threshold,
        )


def _refunded(spend_id: int | None) -> bool:
    return LedgerEntry.objects.filter(kind=LedgerKind.REFUND, reverses_id=spend_id).exists()


def _existing(key: str) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(idempotency_key=key).first()


def _check_same(entry: LedgerEntry, m: Movement) -> LedgerEntry:
    if (
        entry.user_id != m.user_id
        or entry.kind != m.kind
        or entry.amount != m.delta
        or entry.reverses_id != m.reverses_id
    ):
        raise IdempotencyConflict(
            f"Idempotency key {m.idempotency_key!r} was already used for a different operation."
        )
    return entry


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_positive(amount) -> None:
    if not _is_int(amount) or amount <= 0:
        raise InvalidAmount(
            f"The amount must be a whole number of credits above zero, not {amount!r}."
        )
    if amount > app_settings.MAX_AMOUNT:
        raise InvalidAmount(
            f"The amount {amount} is more than the {app_settings.MAX_AMOUNT} credits allowed at once."
        )


def _pk(obj) -> int | None:
    return None if obj is None else obj.pk


def _source_columns(source: Source | None) -> dict:
    """The movement's source columns; ValueError for a type no app registered."""
    if require_registered(source) is None:
        return {}
    return {"source_type": source.type, "source_id": source.id}
