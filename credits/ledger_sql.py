"""The statements that move a balance and append its ledger entry and audit row.

A movement is ONE statement: a conditional ``UPDATE ... RETURNING`` of the
balance row feeding the ledger insert and the audit insert in the same CTE. The balance
row's lock is therefore held only from that statement to the commit right after it (and
when the caller has no transaction open, the statement is its own transaction: the lock is
taken and released inside the server, with no client round trip in between). The UNIQUE
idempotency key makes a repeated movement fail as a whole, so it never moves money.

Free-tier regeneration rides on the same statement: ``_PG_MOVE_WITH_REGEN`` locks the
balance row, works out the credits due since ``regen_checked_at`` (whole periods, topping up
to the cap and never beyond), and writes the regeneration entry and the movement's entry,
in that order, in one statement. All times come from the database clock (the statement's
start, not the transaction's), so web servers with different clocks agree and a long
transaction does not judge time by when it began. ``_PG_REGEN`` does the same for a
read of the balance: when nothing is due it is a plain read and takes no lock.

Every movement keeps ``balance == lifetime_earned - lifetime_spent``: spends and their
refunds count on the spent side, every other kind on the earned side.
"""

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from core.audit import AuditAction

from .app_settings import app_settings
from .models import SPENT_SIDE_KINDS, CreditBalance, LedgerEntry

SPENT_SIDE = SPENT_SIDE_KINDS
REGEN_ACTION = AuditAction.REGENERATE
REGEN_DESCRIPTION = "Free-tier regeneration"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_INSERT_COLUMNS = """
    INSERT INTO credits_ledgerentry
           (user_id, amount, kind, balance_before, balance_after, description, internal_note, metadata,
            idempotency_key, source_type, source_id, reverses_id, created_by_id, created_at)
"""

_PG_MOVE = f"""
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
    {_INSERT_COLUMNS}
    SELECT %(uid)s, %(delta)s, %(kind)s, moved.balance - %(delta)s, moved.balance,
           %(description)s, %(internal_note)s::text, %(metadata)s::jsonb, %(key)s, %(source_type)s::varchar,
           %(source_id)s::bigint, %(reverses_id)s::bigint, %(created_by_id)s::bigint, now()
      FROM moved
    RETURNING id, kind, balance_before, balance_after, created_at
), audit AS (
    INSERT INTO credits_auditlog (user_id, actor_id, action, success, metadata, error_message, created_at)
    SELECT %(uid)s, %(created_by_id)s::bigint, %(action)s, true,
           %(audit)s::jsonb || jsonb_build_object('ledger_entry_id', entry.id), '', now()
      FROM entry
)
SELECT id, kind, balance_before, balance_after, created_at FROM entry
"""

# The credits due for a locked row ``cur`` (columns balance, regen_checked_at, now_ts): whole
# periods since regen_checked_at, times the amount, topped up to the cap and never beyond.
# regen_checked_at advances by the whole periods only (the part of a period already waited
# is kept), also at the cap (time at the cap is not banked). A row never checked starts
# counting now; a regen_checked_at in the future (a clock that went backwards) is kept, and
# nothing is due until the clock has caught up with it and a whole period has passed.
_REGEN_CALC = """
    SELECT marked.*,
           CASE WHEN marked.balance >= %(regen_cap)s OR marked.periods = 0
                  -- the period's entry exists already (regen_checked_at was moved back by hand)
                  OR EXISTS (SELECT 1 FROM credits_ledgerentry e WHERE e.idempotency_key = marked.regen_key)
                THEN 0
                ELSE LEAST(%(regen_cap)s - marked.balance, %(regen_amount)s * marked.periods)
           END AS regen
      FROM (SELECT due.*,
                   'regen:' || %(uid)s::bigint || ':'
                     || (extract(epoch FROM due.checked_to) * 1000000)::bigint AS regen_key
              FROM (SELECT periods.*,
                           CASE WHEN periods.regen_checked_at IS NULL THEN periods.now_ts
                                ELSE periods.regen_checked_at + periods.periods * %(regen_every)s * interval '1 second'
                           END AS checked_to
                      FROM (SELECT cur.*,
                                   CASE WHEN cur.regen_checked_at IS NULL
                                          OR cur.regen_checked_at > cur.now_ts - %(regen_every)s * interval '1 second'
                                        THEN 0
                                        ELSE floor(extract(epoch FROM cur.now_ts - cur.regen_checked_at)
                                                   / %(regen_every)s)::bigint
                                   END AS periods
                              FROM cur) AS periods) AS due) AS marked
"""
# Something to write: a first check, or at least one whole period elapsed.
_REGEN_DUE = "({t}.regen_checked_at IS NULL OR {t}.regen_checked_at <= {t}.now_ts - %(regen_every)s * interval '1 second')"
_REGEN_ROW = """
    SELECT 1 AS ord, 'REGENERATION'::varchar AS kind, moved.regen AS amount, moved.before AS bb,
           %(regen_description)s::varchar AS description, ''::text AS internal_note,
           jsonb_build_object('periods', moved.periods, 'from', moved.regen_from, 'to', moved.regen_to) AS metadata,
           moved.regen_key AS key,
           NULL::varchar AS source_type, NULL::bigint AS source_id, NULL::bigint AS reverses_id,
           NULL::bigint AS created_by_id
      FROM moved
     WHERE moved.regen > 0
"""
_REGEN_AUDIT = """
    INSERT INTO credits_auditlog (user_id, actor_id, action, success, metadata, error_message, created_at)
    SELECT %(uid)s, entry.created_by_id,
           CASE WHEN entry.kind = 'REGENERATION' THEN %(regen_action)s ELSE %(action)s END, true,
           CASE WHEN entry.kind = 'REGENERATION'
                THEN jsonb_build_object('kind', entry.kind, 'amount', entry.amount)
                ELSE %(audit)s::jsonb END
             || jsonb_build_object('ledger_entry_id', entry.id), '', now()
      FROM entry
"""

_PG_MOVE_WITH_REGEN = f"""
WITH cur AS MATERIALIZED (
    SELECT balance, regen_checked_at, statement_timestamp() AS now_ts
      FROM credits_creditbalance
     WHERE user_id = %(uid)s
       FOR UPDATE
), calc AS MATERIALIZED ({_REGEN_CALC}
), moved AS (
    UPDATE credits_creditbalance b
       SET balance = calc.balance + calc.regen + %(delta)s,
           lifetime_earned = b.lifetime_earned + calc.regen + %(earned)s,
           lifetime_spent = b.lifetime_spent + %(spent)s,
           regen_checked_at = calc.checked_to,
           version = b.version + 1,
           updated_at = now()
      FROM calc
     WHERE b.user_id = %(uid)s
       AND calc.balance + calc.regen + %(delta)s >= 0
       AND (b.spend_holds = 0 OR NOT %(needs_no_holds)s)
    RETURNING calc.balance AS before, calc.regen, calc.periods, calc.regen_key,
              calc.regen_checked_at AS regen_from, calc.checked_to AS regen_to
), rows AS ({_REGEN_ROW}
    UNION ALL
    SELECT 2, %(kind)s, %(delta)s, moved.before + moved.regen, %(description)s, %(internal_note)s::text,
           %(metadata)s::jsonb,
           %(key)s, %(source_type)s::varchar, %(source_id)s::bigint, %(reverses_id)s::bigint,
           %(created_by_id)s::bigint
      FROM moved
), entry AS (
    {_INSERT_COLUMNS}
    SELECT %(uid)s, amount, kind, bb, bb + amount, description, internal_note, metadata, key, source_type,
           source_id, reverses_id, created_by_id, now()
      FROM (SELECT * FROM rows ORDER BY ord) AS ordered
    RETURNING id, kind, amount, balance_before, balance_after, created_at, created_by_id
), audit AS ({_REGEN_AUDIT}
)
SELECT id, kind, balance_before, balance_after, created_at FROM entry ORDER BY id
"""

_PG_REGEN = f"""
WITH peek AS (
    SELECT balance, lifetime_earned, lifetime_spent, spend_holds, regen_checked_at, statement_timestamp() AS now_ts
      FROM credits_creditbalance
     WHERE user_id = %(uid)s
), cur AS MATERIALIZED (
    SELECT b.balance, b.lifetime_earned, b.lifetime_spent, b.spend_holds, b.regen_checked_at, peek.now_ts
      FROM credits_creditbalance b, peek
     WHERE b.user_id = %(uid)s
       AND {_REGEN_DUE.format(t="peek")}
       FOR UPDATE OF b
), calc AS MATERIALIZED ({_REGEN_CALC}
     WHERE {_REGEN_DUE.format(t="marked")}
), moved AS (
    UPDATE credits_creditbalance b
       SET balance = calc.balance + calc.regen,
           lifetime_earned = b.lifetime_earned + calc.regen,
           regen_checked_at = calc.checked_to,
           version = b.version + 1,
           updated_at = now()
      FROM calc
     WHERE b.user_id = %(uid)s
    RETURNING b.balance, b.lifetime_earned, b.lifetime_spent, b.spend_holds, b.regen_checked_at,
              calc.balance AS before, calc.regen, calc.periods, calc.regen_key,
              calc.regen_checked_at AS regen_from, calc.checked_to AS regen_to
), rows AS ({_REGEN_ROW}
), entry AS (
    {_INSERT_COLUMNS}
    SELECT %(uid)s, amount, kind, bb, bb + amount, description, internal_note, metadata, key, source_type,
           source_id, reverses_id, created_by_id, now()
      FROM rows
    RETURNING id, kind, amount, created_by_id
), audit AS ({_REGEN_AUDIT}
)
SELECT balance, lifetime_earned, lifetime_spent, spend_holds, regen_checked_at, regen FROM moved
UNION ALL
SELECT balance, lifetime_earned, lifetime_spent, spend_holds, regen_checked_at, 0 FROM cur
 WHERE NOT EXISTS (SELECT 1 FROM moved)
UNION ALL
SELECT balance, lifetime_earned, lifetime_spent, spend_holds, regen_checked_at, 0 FROM peek
 WHERE NOT EXISTS (SELECT 1 FROM cur)
"""

# What ``_PG_REGEN`` would make the balance, without writing anything (for error messages).
_PG_PEEK_REGEN = f"""
WITH cur AS (
    SELECT balance, lifetime_earned, lifetime_spent, spend_holds, regen_checked_at, statement_timestamp() AS now_ts
      FROM credits_creditbalance
     WHERE user_id = %(uid)s
), calc AS ({_REGEN_CALC}
)
SELECT balance + regen, lifetime_earned + regen, lifetime_spent, spend_holds, checked_to, regen FROM calc
"""

# The whole balance, taken in one movement (a forfeiture): the amount is what the locked row
# holds when the statement runs, so a movement committed just before it is included. Nothing
# is written when the balance is 0. Spending holds do not stop it: it is not a spend. The kind
# is on the earned side (as expiry and clawback are), so lifetime received goes down by the
# amount and ``balance == lifetime_earned - lifetime_spent`` still holds.
_PG_TAKE_ALL = f"""
WITH cur AS MATERIALIZED (
    SELECT balance
      FROM credits_creditbalance
     WHERE user_id = %(uid)s
       FOR UPDATE
), moved AS (
    UPDATE credits_creditbalance b
       SET balance = 0,
           lifetime_earned = b.lifetime_earned - cur.balance,
           version = b.version + 1,
           updated_at = now()
      FROM cur
     WHERE b.user_id = %(uid)s
       AND cur.balance > 0
    RETURNING cur.balance AS before
), entry AS (
    {_INSERT_COLUMNS}
    SELECT %(uid)s, -moved.before, %(kind)s, moved.before, 0,
           %(description)s, %(internal_note)s::text, %(metadata)s::jsonb, %(key)s, %(source_type)s::varchar,
           %(source_id)s::bigint, %(reverses_id)s::bigint, %(created_by_id)s::bigint, now()
      FROM moved
    RETURNING id, amount, balance_before, balance_after, created_at
), audit AS (
    INSERT INTO credits_auditlog (user_id, actor_id, action, success, metadata, error_message, created_at)
    SELECT %(uid)s, %(created_by_id)s::bigint, %(action)s, true,
           %(audit)s::jsonb || jsonb_build_object('amount', entry.amount, 'ledger_entry_id', entry.id), '', now()
      FROM entry
)
SELECT id, amount, balance_before, balance_after, created_at FROM entry
"""


@dataclass(frozen=True)
class RegenPolicy:
    """Free-tier regeneration: ``amount`` credits per ``every_seconds``, up to ``cap``."""

    every_seconds: int
    amount: int
    cap: int

    def params(self) -> dict:
        return {
            "regen_every": self.every_seconds,
            "regen_amount": self.amount,
            "regen_cap": self.cap,
            "regen_description": REGEN_DESCRIPTION,
            "regen_action": REGEN_ACTION,
        }


def regen_key(*, user_id: int, checked_to: datetime) -> str:
    """The idempotency key of the regeneration entry that accounts ``user_id`` up to ``checked_to``.

    regen_checked_at only moves forward, so each catch-up has its own key; two catch-ups
    racing for the same period compute the same key, and the second cannot be written.
    """
    micros = (checked_to - _EPOCH) // timedelta(microseconds=1)
    return f"regen:{user_id}:{micros}"


@dataclass(frozen=True)
class Movement:
    """One change of one user's balance, described completely before it is applied."""

    user_id: int
    delta: int
    kind: str
    idempotency_key: str
    action: str
    description: str = ""
    #: Staff only: never shown to the customer (see ``LedgerEntry.internal_note``).
    internal_note: str = ""
    metadata: dict = field(default_factory=dict)
    audit: dict = field(default_factory=dict)
    #: What caused it (see ``credits.references``): both None or both set.
    source_type: str | None = None
    source_id: int | None = None
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
            "kind": str(self.kind),
            "key": self.idempotency_key,
            "description": self.description[:255],
            "internal_note": self.internal_note,
            "metadata": json.dumps(self.metadata, cls=DjangoJSONEncoder),
            "source_type": self.source_type,
            "source_id": self.source_id,
            "reverses_id": self.reverses_id,
            "created_by_id": self.created_by_id,
            "action": self.action,
            "audit": json.dumps(
                {**self.audit, "kind": str(self.kind), "amount": self.delta}, cls=DjangoJSONEncoder
            ),
        }


@dataclass(frozen=True)
class BalanceSnapshot:
    """A balance row as read (after any regeneration that was due)."""

    balance: int = 0
    lifetime_earned: int = 0
    lifetime_spent: int = 0
    spend_holds: int = 0
    regen_checked_at: datetime | None = None
    #: Credits regenerated by this read (0 when nothing was due).
    regenerated: int = 0


def _db():
    """The default database's wrapper, looked up once (``django.db.connection`` is a proxy
    that looks it up again on every attribute access)."""
    return connections[DEFAULT_DB_ALIAS]


class _PreparedCursor(psycopg.Cursor):
    """Server-side binding, and every statement prepared once per connection."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


class _LoggedCursor(CursorDebugWrapper):
    """Django's debug wrapper, logging the statement with its values (a prepared server-side
    cursor has no client-side query text for Django to read back)."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


# Explicitly requested preparation only: nothing else on the connection starts preparing.
_PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


def _run(sql: str, params: dict) -> list[tuple]:
    """Run one of this module's statements and return its rows.

    The statement is bound server-side and prepared once per connection, so
    its (large) CTE is parsed and planned once instead of on every call. It still goes
    through Django's cursor wrapper: query logging, counting and execute wrappers see it.
    ``CREDITS_PREPARED_STATEMENTS = False`` turns this off (for a transaction-pooling
    PgBouncer older than 1.21).
    """
    db = _db()
    if not app_settings.PREPARED_STATEMENTS:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    db.close_if_health_check_failed()
    db.ensure_connection()
    raw = db.connection
    if raw.prepare_threshold is None:  # Django turns automatic preparation off
        raw.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        prepared = _PreparedCursor(raw)
    cursor = _LoggedCursor(prepared, db) if db.queries_logged else CursorWrapper(prepared, db)
    with cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def run_atomically(apply):
    """Run ``apply()`` (which issues ONE statement) as one unit of work.

    With no transaction open, a single statement is already its own transaction:
    it runs bare, saving the BEGIN and COMMIT round trips and keeping the balance row's lock
    inside the server. Inside the caller's transaction it runs in a savepoint, so a failed
    statement (a repeated idempotency key) leaves the caller's transaction usable.
    """
    db = _db()
    if not db.in_atomic_block and db.get_autocommit():
        return apply()
    with transaction.atomic():
        return apply()


def apply_movement(m: Movement, *, regen: RegenPolicy | None = None) -> LedgerEntry | None:
    """Apply ``m`` (after any regeneration due under ``regen``) inside the caller's transaction.

    Returns the new entry, or None when the conditional update matched no row (the
    balance is too small, spending is frozen, or the user has no balance row). Raises
    IntegrityError when the idempotency key (or a one-per-spend refund) already exists.
    """
    params = m.params()
    sql = _PG_MOVE
    if regen is not None:
        params.update(regen.params())
        sql = _PG_MOVE_WITH_REGEN
    rows = _run(sql, params)
    if not rows:
        return None
    entry_id, _kind, before, after, created_at = rows[-1]
    return _entry_from(m, entry_id, before, after, created_at)


def apply_take_all(m: Movement) -> LedgerEntry | None:
    """Take the user's whole balance as the movement ``m`` (its ``delta`` is ignored), in the
    caller's transaction.

    For kinds on the earned side only (see ``_PG_TAKE_ALL``). Returns the new entry, or None
    when there was nothing to take (a zero balance, or no balance row). Raises IntegrityError
    when the idempotency key already exists.
    """
    if m.kind in SPENT_SIDE:
        raise ValueError(f"A {m.kind} movement cannot take the whole balance.")
    rows = _run(_PG_TAKE_ALL, m.params())
    if not rows:
        return None
    entry_id, amount, before, after, created_at = rows[0]
    return _entry_from(replace(m, delta=amount), entry_id, before, after, created_at)


def apply_regeneration(*, user_id: int, regen: RegenPolicy) -> BalanceSnapshot | None:
    """Read the balance row, first writing the regeneration entry when credits are due.

    One statement; a plain read (no lock) when nothing is due. It cannot fail
    on the entry's key (the statement checks it), so it needs no savepoint inside the
    caller's transaction. Returns None when the user has no balance row.
    """
    rows = _run(
        _PG_REGEN, {"uid": user_id, "action": REGEN_ACTION, "audit": "{}", **regen.params()}
    )
    return BalanceSnapshot(*rows[0]) if rows else None


def peek_regeneration(*, user_id: int, regen: RegenPolicy) -> BalanceSnapshot | None:
    """The balance as ``apply_regeneration`` would leave it, computed without writing."""
    rows = _run(_PG_PEEK_REGEN, {"uid": user_id, **regen.params()})
    return BalanceSnapshot(*rows[0]) if rows else None


def read_balance(*, user_id: int) -> BalanceSnapshot | None:
    row = (
        CreditBalance.objects.filter(user_id=user_id)
        .values_list(
            "balance", "lifetime_earned", "lifetime_spent", "spend_holds", "regen_checked_at"
        )
        .first()
    )
    return None if row is None else BalanceSnapshot(*row)


_ENTRY_FIELDS = [f.attname for f in LedgerEntry._meta.concrete_fields]


def _entry_from(
    m: Movement, entry_id, before: int, after: int, created_at: datetime
) -> LedgerEntry:
    values = {
        "id": entry_id,
        "user_id": m.user_id,
        "amount": m.delta,
        "kind": m.kind,
        "balance_before": before,
        "balance_after": after,
        "description": m.description[:255],
        "internal_note": m.internal_note,
        "metadata": m.metadata,
        "idempotency_key": m.idempotency_key,
        "source_type": m.source_type,
        "source_id": m.source_id,
        "reverses_id": m.reverses_id,
        "created_by_id": m.created_by_id,
        "created_at": created_at,
    }
    # Positional arguments in field order: Model.__init__'s fast path.
    entry = LedgerEntry(*[values[name] for name in _ENTRY_FIELDS])
    entry._state.adding = False
    entry._state.db = DEFAULT_DB_ALIAS
    return entry
