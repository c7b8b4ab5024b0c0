"""The one statement that moves a balance and appends its ledger entry and audit row.

On PostgreSQL a movement is ONE statement: a conditional ``UPDATE ... RETURNING`` of the
balance row feeding the ledger insert and the audit insert in the same CTE. The balance
row's lock is therefore held only from that statement to the commit right after it. The
UNIQUE idempotency key makes a repeated movement fail as a whole, so it never moves money.

SQLite (the no-servers development default) cannot modify data inside a CTE, so there the
same three writes run as three statements; SQLite serialises writers, so the outcome is
the same.

Every movement keeps ``balance == lifetime_earned - lifetime_spent``: spends and their
refunds count on the spent side, every other kind on the earned side.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.utils import timezone

from .models import AuditLog, LedgerEntry, LedgerKind

SPENT_SIDE = frozenset({LedgerKind.SPEND, LedgerKind.REFUND})

_PG_MOVE = """
WITH moved AS (
    UPDATE credits_creditbalance
       SET balance = balance + %(delta)s,
           lifetime_earned = lifetime_earned + %(earned)s,
           lifetime_spent = lifetime_spent + %(spent)s,
           version = version + 1,
           updated_at = now()
     WHERE user_id = %(uid)s
       AND balance + %(delta)s >= 0
       AND (spend_holds = 0 OR NOT %(needs_no_holds)s)
    RETURNING balance
), entry AS (
    INSERT INTO credits_ledgerentry
           (user_id, amount, kind, balance_before, balance_after, description, metadata,
            idempotency_key, order_id, job_id, reverses_id, created_by_id, created_at)
    SELECT %(uid)s, %(delta)s, %(kind)s, moved.balance - %(delta)s, moved.balance,
           %(description)s, %(metadata)s::jsonb, %(key)s, %(order_id)s, %(job_id)s,
           %(reverses_id)s, %(created_by_id)s, now()
      FROM moved
    RETURNING id, balance_before, balance_after, created_at
), audit AS (
    INSERT INTO credits_auditlog (user_id, actor_id, action, success, metadata, error_message, created_at)
    SELECT %(uid)s, %(created_by_id)s, %(action)s, true,
           %(audit)s::jsonb || jsonb_build_object('ledger_entry_id', entry.id), '', now()
      FROM entry
)
SELECT id, balance_before, balance_after, created_at FROM entry
"""

_SQLITE_MOVE = """
UPDATE credits_creditbalance
   SET balance = balance + %(delta)s,
       lifetime_earned = lifetime_earned + %(earned)s,
       lifetime_spent = lifetime_spent + %(spent)s,
       version = version + 1,
       updated_at = %(now)s
 WHERE user_id = %(uid)s
   AND balance + %(delta)s >= 0
   AND (spend_holds = 0 OR NOT %(needs_no_holds)s)
RETURNING balance
"""


@dataclass(frozen=True)
class Movement:
    """One change of one user's balance, described completely before it is applied."""

    user_id: int
    delta: int
    kind: str
    idempotency_key: str
    action: str
    description: str = ""
    metadata: dict = field(default_factory=dict)
    audit: dict = field(default_factory=dict)
    order_id: int | None = None
    job_id: int | None = None
    reverses_id: int | None = None
    created_by_id: int | None = None
    #: Refuse the movement while the user's spending is frozen (open dispute).
    needs_no_holds: bool = False

    def params(self) -> dict:
        on_spent_side = self.kind in SPENT_SIDE
        return {
            "uid": self.user_id,
            "delta": self.delta,
            "earned": 0 if on_spent_side else self.delta,
            "spent": -self.delta if on_spent_side else 0,
            "needs_no_holds": self.needs_no_holds,
            "kind": self.kind,
            "key": self.idempotency_key,
            "description": self.description[:255],
            "metadata": json.dumps(self.metadata),
            "order_id": self.order_id,
            "job_id": self.job_id,
            "reverses_id": self.reverses_id,
            "created_by_id": self.created_by_id,
            "action": self.action,
            "audit": json.dumps({**self.audit, "kind": self.kind, "amount": self.delta}),
        }


def apply_movement(m: Movement) -> LedgerEntry | None:
    """Apply ``m`` inside the caller's transaction.

    Returns the new entry, or None when the conditional update matched no row (the
    balance is too small, spending is frozen, or the user has no balance row). Raises
    IntegrityError when the idempotency key (or a one-per-spend refund) already exists.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_PG_MOVE, m.params())
            row = cursor.fetchone()
        if row is None:
            return None
        entry_id, before, after, created_at = row
    else:
        entry_id, before, after, created_at = _apply_portable(m)
        if entry_id is None:
            return None
    return _entry_from(m, entry_id, before, after, created_at)


def _apply_portable(m: Movement) -> tuple:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_SQLITE_MOVE, {**m.params(), "now": now})
        row = cursor.fetchone()
    if row is None:
        return None, None, None, None
    after = row[0]
    entry = _entry_from(m, None, after - m.delta, after, now)
    LedgerEntry.objects.bulk_create([entry])
    AuditLog.objects.create(
        user_id=m.user_id,
        actor_id=m.created_by_id,
        action=m.action,
        success=True,
        metadata={**m.audit, "kind": m.kind, "amount": m.delta, "ledger_entry_id": entry.pk},
    )
    return entry.pk, after - m.delta, after, now


def _entry_from(m: Movement, entry_id, before: int, after: int, created_at: datetime) -> LedgerEntry:
    entry = LedgerEntry(
        id=entry_id,
        user_id=m.user_id,
        amount=m.delta,
        kind=m.kind,
        balance_before=before,
        balance_after=after,
        description=m.description[:255],
        metadata=m.metadata,
        idempotency_key=m.idempotency_key,
        order_id=m.order_id,
        job_id=m.job_id,
        reverses_id=m.reverses_id,
        created_by_id=m.created_by_id,
        created_at=created_at,
    )
    entry._state.adding = entry_id is None
    entry._state.db = "default"
    return entry
