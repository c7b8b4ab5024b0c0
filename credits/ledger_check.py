"""Recompute every balance from the ledger and its lots in one pass and report where they disagree.

One SQL statement: the ledger, read in id order, is merged with each entry's lot movements
(summed per entry, with their lots' owner and lifetime) and with the lot it granted (read from
an index that holds what the check needs, in entry id order too), and everything an entry can
be found wrong on by itself is reduced there to one number, 0 for nearly every entry; a window
over each user's entries in id order (the order the balance row's lock gave them) then checks
every entry's before/after chain, on rows no wider than the chain checks alone sort; the lots
are summed per user and their movements per lot (merged in lot id order); and the per-user
sums are compared with the balance rows, the few entries with a finding coming back by id.
The joins are merges of inputs read in the order of their id indexes, not hash joins (which
probe tables of half a million rows at random: the whole check took about 1.6 times as long
at a million entries), and each table is read once per relation it is checked against, so
its time grows linearly with the ledger.

What counts as drift, per user:
  * an entry whose balance_after is not balance_before + amount;
  * a first entry whose balance_before is not 0, or an entry whose balance_before is not
    the previous entry's balance_after;
  * a balance that is not the sum of the entries, or not the last entry's balance_after;
  * lifetime totals that are not the sums of the earned and spent kinds, or a balance that
    is not lifetime_earned - lifetime_spent;
  * a balance row with no entries but a non-zero balance or totals, and entries with no
    balance row;
and, once the lots exist (migration 0013):
  * a balance that is not the sum of ``remaining`` over the user's lots;
  * a lot whose remaining is not its original plus the sum of its movements;
  * an entry that is not a grant whose movements do not add up to its amount (or a grant
    entry with movements);
  * a grant entry that did not create exactly one lot of its amount, or a lot created by an
    entry that is not a grant, or a lot of another user; the one exception is a refund of
    credits drawn before the lots existed (they have no lot to go back to): it creates a
    promotional ``opening`` lot of them, and its movements plus that lot's original add up
    to its amount;
  * an entry that moved credits of another user's lot;
  * a return that gives back more than its draw took, or to another lot than the draw's;
  * a spend or negative adjustment that drew from a lot not live at the entry's time
    (``effective_at <= created_at < expires_at``).

Entries written before the lots existed (up to ``credits_lotcutover.last_entry_id``, recorded
by 0013) have no movements: they are held only to the chain checks, and a grant among them
has at most one lot (what was left of it at the migration, so ``original <= amount``).
"""

from dataclasses import dataclass

from django.db import connection, transaction

from .models import CREDIT_KINDS, SPENT_SIDE_KINDS, LedgerKind

_SPENT_KINDS = ", ".join(f"'{kind}'" for kind in sorted(SPENT_SIDE_KINDS))
#: Entries that create a lot: every credit kind but refunds (which give back to the lots a
#: spend drew from), and positive staff adjustments.
_GRANT_KINDS = sorted(CREDIT_KINDS - {LedgerKind.REFUND})
_GRANT_KIND_LIST = ", ".join(f"'{kind}'" for kind in _GRANT_KINDS)
#: An entry that creates a lot: a grant, or a positive staff adjustment.
_IS_GRANT = f"(e.kind IN ({_GRANT_KIND_LIST}) OR (e.kind = 'ADJUSTMENT' AND e.amount > 0))"


def _chain_aggregates(*, earned: str, spent: str) -> str:
    """Each user's chain and totals, from ``chained`` rows; ``earned`` and ``spent`` tell an
    entry's side."""
    return f"""count(*) AS entries,
           sum(amount) AS total,
           coalesce(sum(amount) FILTER (WHERE {earned}), 0) AS earned,
           coalesce(-sum(amount) FILTER (WHERE {spent}), 0) AS spent,
           max(balance_after) FILTER (WHERE is_last) AS last_after,
           count(*) FILTER (WHERE balance_after <> balance_before + amount) AS bad_sums,
           count(*) FILTER (WHERE balance_before <> coalesce(previous_after, 0)) AS broken_links,
           min(id) FILTER (WHERE balance_after <> balance_before + amount
                              OR balance_before <> coalesce(previous_after, 0)) AS first_bad_entry"""


#: The chain checks alone: the whole check before the lots exist.
_PG_CHECK = f"""
WITH chained AS (
    SELECT user_id, id, amount, kind, balance_before, balance_after,
           lag(balance_after) OVER w AS previous_after,
           lead(id) OVER w IS NULL AS is_last
      FROM credits_ledgerentry
    WINDOW w AS (PARTITION BY user_id ORDER BY id)
), per_user AS (
    SELECT user_id,
           {_chain_aggregates(earned=f"kind NOT IN ({_SPENT_KINDS})", spent=f"kind IN ({_SPENT_KINDS})")}
      FROM chained
     GROUP BY user_id
)
SELECT coalesce(p.user_id, b.user_id) AS user_id,
       coalesce(p.entries, 0), p.total, p.earned, p.spent, p.last_after,
       coalesce(p.bad_sums, 0), coalesce(p.broken_links, 0), p.first_bad_entry,
       b.user_id IS NOT NULL AS has_balance_row, b.balance, b.lifetime_earned, b.lifetime_spent
  FROM per_user p
  FULL OUTER JOIN credits_creditbalance b ON b.user_id = p.user_id
 WHERE b.user_id IS NULL
    OR (p.user_id IS NULL AND (b.balance <> 0 OR b.lifetime_earned <> 0 OR b.lifetime_spent <> 0))
    OR b.balance <> b.lifetime_earned - b.lifetime_spent
    OR (p.user_id IS NOT NULL AND (
           p.bad_sums > 0 OR p.broken_links > 0
        OR b.balance <> p.total OR b.balance <> p.last_after
        OR b.lifetime_earned <> p.earned OR b.lifetime_spent <> p.spent))
 ORDER BY 1
"""

#: Bits of ``problems``, each entry's findings: its own sums, its lot checks, and (worked out
#: after the window) its link to the previous entry.
BAD_SUM, BAD_MOVED, BAD_GRANT, FOREIGN_LOTS, DEAD_DRAW, BROKEN_LINK = 1, 2, 4, 8, 16, 32


def _found(aggregate: str, bits: int) -> str:
    """``aggregate`` over a user's [id, problems] pairs that have one of ``bits`` (run only for
    the users reported)."""
    return (
        f"(SELECT {aggregate} FROM generate_subscripts(u.findings, 1) AS i"
        f" WHERE u.findings[i][2] & {bits} <> 0)"
    )


#: The chain checks and every lot invariant, in one statement (%(cutover)s: the last entry
#: written before the lots existed).
_PG_CHECK_LOTS = f"""
WITH by_entry AS (
    SELECT m.entry_id, sum(m.credits)::bigint AS moved,
           min(l.user_id) AS lot_user_lo, max(l.user_id) AS lot_user_hi,
           max(l.effective_at) FILTER (WHERE m.credits < 0) AS latest_effective,
           min(l.expires_at) FILTER (WHERE m.credits < 0) AS soonest_expiry
      FROM credits_lotmovement m
      JOIN credits_creditlot l ON l.id = m.lot_id
     GROUP BY m.entry_id
), by_lot AS (
    SELECT lot_id, sum(credits)::bigint AS moved FROM credits_lotmovement GROUP BY lot_id
), given_back AS (
    -- few rows, read through the partial index of returns
    SELECT returns_id, sum(credits) AS back, min(lot_id) AS lot_lo, max(lot_id) AS lot_hi
      FROM credits_lotmovement
     WHERE returns_id IS NOT NULL
     GROUP BY returns_id
), bad_returns AS (
    SELECT dl.user_id, count(*) AS bad_returns, min(d.id) AS first_bad_draw
      FROM given_back g
      JOIN credits_lotmovement d ON d.id = g.returns_id
      JOIN credits_creditlot dl ON dl.id = d.lot_id
     WHERE d.credits >= 0 OR g.back > -d.credits OR g.lot_lo <> d.lot_id OR g.lot_hi <> d.lot_id
     GROUP BY dl.user_id
), lots AS (
    SELECT user_id, count(*) AS lots, sum(remaining) AS remaining,
           array_agg(id) FILTER (WHERE bad) AS bad_lots
      FROM (SELECT l.user_id, l.id, l.remaining, l.remaining - l.original <> coalesce(bl.moved, 0) AS bad
              FROM credits_creditlot l
              LEFT JOIN by_lot bl ON bl.lot_id = l.id) AS checked
     GROUP BY user_id
), flagged AS (
    -- each entry's own checks, reduced to one number before the sort (0: nothing found): the
    -- window's rows stay as narrow as in the chain checks alone. A spend drawn as it should be
    -- and a grant with its lot, nearly every entry, are told apart first, in a few comparisons.
    SELECT e.user_id, e.id, e.amount, e.balance_before, e.balance_after,
           e.kind IN ({_SPENT_KINDS}) AS spent_side,
           CASE WHEN e.kind = 'SPEND' AND e.id > %(cutover)s
                     AND e.balance_after = e.balance_before + e.amount
                     AND be.moved = e.amount AND gl.grant_entry_id IS NULL
                     AND be.lot_user_lo = e.user_id AND be.lot_user_hi = e.user_id
                     AND be.latest_effective <= e.created_at
                     AND (be.soonest_expiry IS NULL OR be.soonest_expiry > e.created_at) THEN 0
                WHEN e.kind IN ({_GRANT_KIND_LIST}) AND e.id > %(cutover)s
                     AND e.balance_after = e.balance_before + e.amount
                     AND be.entry_id IS NULL AND gl.original = e.amount AND gl.user_id = e.user_id
                  THEN 0
                ELSE (e.balance_after <> e.balance_before + e.amount)::int * {BAD_SUM}
                   + coalesce(CASE WHEN be.entry_id IS NULL AND gl.grant_entry_id IS NULL
                                     THEN e.id > %(cutover)s AND NOT {_IS_GRANT} AND e.amount <> 0
                                   WHEN {_IS_GRANT} THEN be.entry_id IS NOT NULL
                                   WHEN e.id <= %(cutover)s AND be.entry_id IS NULL THEN false
                                   -- a refund of credits drawn before the lots existed: an
                                   -- opening lot holds them
                                   WHEN e.kind = 'REFUND'
                                     THEN coalesce(be.moved, 0) + coalesce(gl.original, 0) <> e.amount
                                   ELSE coalesce(be.moved, 0) <> e.amount
                              END, false)::int * {BAD_MOVED}
                   + coalesce(CASE WHEN be.entry_id IS NULL AND gl.grant_entry_id IS NULL
                                     THEN e.id > %(cutover)s AND {_IS_GRANT}
                                   WHEN {_IS_GRANT} AND e.id <= %(cutover)s
                                     THEN gl.grant_entry_id IS NOT NULL
                                          AND (gl.original > e.amount OR gl.user_id <> e.user_id)
                                   WHEN {_IS_GRANT}
                                     THEN gl.grant_entry_id IS NULL OR gl.original <> e.amount
                                          OR gl.user_id <> e.user_id
                                   -- only an opening lot of the refund's own user
                                   WHEN e.kind = 'REFUND' AND e.id > %(cutover)s
                                     THEN gl.grant_entry_id IS NOT NULL
                                          AND (NOT (gl.source = 'opening' AND gl.category = 'promotional')
                                               OR gl.user_id <> e.user_id)
                                   ELSE gl.grant_entry_id IS NOT NULL
                              END, false)::int * {BAD_GRANT}
                   + coalesce(be.lot_user_lo <> e.user_id OR be.lot_user_hi <> e.user_id,
                              false)::int * {FOREIGN_LOTS}
                   -- spends and negative adjustments draw from live lots only
                   + coalesce((e.kind = 'SPEND' OR (e.kind = 'ADJUSTMENT' AND e.amount < 0))
                              AND (be.latest_effective > e.created_at
                                   OR be.soonest_expiry <= e.created_at),
                              false)::int * {DEAD_DRAW}
           END AS problems
      FROM credits_ledgerentry e
      LEFT JOIN by_entry be ON be.entry_id = e.id
      LEFT JOIN credits_creditlot gl ON gl.grant_entry_id = e.id
    OFFSET 0  -- planned apart: the window sorts these rows, not the joins' wider ones
), chained AS (
    SELECT f.*,
           lag(balance_after) OVER w AS previous_after,
           lead(id) OVER w IS NULL AS is_last
      FROM flagged f
    WINDOW w AS (PARTITION BY user_id ORDER BY id)
), per_user AS (
    -- the entries with a finding are kept as [id, problems] pairs: one test per entry instead
    -- of a count and a first id per kind of finding, counted by kind for the users reported
    -- (the total is earned minus spent)
    SELECT user_id,
           count(*) AS entries,
           coalesce(sum(amount) FILTER (WHERE NOT spent_side), 0)
               + coalesce(sum(amount) FILTER (WHERE spent_side), 0) AS total,
           coalesce(sum(amount) FILTER (WHERE NOT spent_side), 0) AS earned,
           coalesce(-sum(amount) FILTER (WHERE spent_side), 0) AS spent,
           max(balance_after) FILTER (WHERE is_last) AS last_after,
           array_agg(ARRAY[id, problems + CASE WHEN balance_before <> coalesce(previous_after, 0)
                                               THEN {BROKEN_LINK} ELSE 0 END])
               FILTER (WHERE problems <> 0 OR balance_before <> coalesce(previous_after, 0)) AS findings
      FROM chained
     GROUP BY user_id
), users AS (
    -- every user with entries, a balance row or lots, and the whole ledger's counts beside
    -- them: the report's totals come from this pass, not from counts run after it
    SELECT coalesce(p.user_id, b.user_id, l.user_id, r.user_id) AS user_id,
           p.entries, p.total, p.earned, p.spent, p.last_after, p.findings,
           b.user_id IS NOT NULL AS has_balance_row, b.balance, b.lifetime_earned, b.lifetime_spent,
           l.lots, l.remaining, l.bad_lots, r.bad_returns, r.first_bad_draw,
           coalesce(b.user_id IS NULL
               OR (p.user_id IS NULL AND (b.balance <> 0 OR b.lifetime_earned <> 0 OR b.lifetime_spent <> 0))
               OR b.balance <> b.lifetime_earned - b.lifetime_spent
               OR (p.user_id IS NOT NULL AND (
                      p.findings IS NOT NULL
                   OR b.balance <> p.total OR b.balance <> p.last_after
                   OR b.lifetime_earned <> p.earned OR b.lifetime_spent <> p.spent))
               OR b.balance <> coalesce(l.remaining, 0)
               OR l.bad_lots IS NOT NULL
               OR r.bad_returns > 0, false) AS drifted,
           row_number() OVER () AS n,
           sum(p.entries) OVER () AS all_entries,
           count(b.user_id) OVER () AS all_balances,
           sum(l.lots) OVER () AS all_lots
      FROM per_user p
      FULL OUTER JOIN credits_creditbalance b ON b.user_id = p.user_id
      FULL OUTER JOIN lots l ON l.user_id = coalesce(p.user_id, b.user_id)
      FULL OUTER JOIN bad_returns r ON r.user_id = coalesce(p.user_id, b.user_id, l.user_id)
)
-- the users that drifted, and one more row for the counts when none did
SELECT user_id, coalesce(entries, 0), total, earned, spent, last_after,
       {_found("count(*)", BAD_SUM)}, {_found("count(*)", BROKEN_LINK)},
       {_found("min(u.findings[i][1])", BAD_SUM | BROKEN_LINK)},
       has_balance_row, balance, lifetime_earned, lifetime_spent,
       true AS lots_checked, coalesce(lots, 0), coalesce(remaining, 0),
       coalesce(cardinality(bad_lots), 0), (SELECT min(lot) FROM unnest(bad_lots) AS lot),
       {_found("count(*)", BAD_MOVED)}, {_found("min(u.findings[i][1])", BAD_MOVED)},
       {_found("count(*)", BAD_GRANT)}, {_found("min(u.findings[i][1])", BAD_GRANT)},
       {_found("count(*)", FOREIGN_LOTS)}, coalesce(bad_returns, 0), first_bad_draw,
       {_found("count(*)", DEAD_DRAW)}, {_found("min(u.findings[i][1])", DEAD_DRAW)},
       drifted, coalesce(all_entries, 0)::bigint, all_balances, coalesce(all_lots, 0)::bigint
  FROM users u
 WHERE drifted OR n = 1
 ORDER BY 1
"""

#: The last entry written before the lots existed (NULL: the lots do not exist yet).
_PG_HAS_LOTS = "SELECT to_regclass('credits_lotcutover') IS NOT NULL"
_PG_CUTOVER = "SELECT coalesce(max(last_entry_id), 0) FROM credits_lotcutover"

_PG_COUNTS = "SELECT (SELECT count(*) FROM credits_ledgerentry), (SELECT count(*) FROM credits_creditbalance)"


@dataclass(frozen=True)
class UserDrift:
    user_id: int
    entries: int
    ledger_total: int | None
    ledger_earned: int | None
    ledger_spent: int | None
    last_balance_after: int | None
    bad_sums: int
    broken_links: int
    first_bad_entry: int | None
    has_balance_row: bool
    balance: int | None
    lifetime_earned: int | None
    lifetime_spent: int | None
    #: The lot checks ran (False before migration 0013).
    lots_checked: bool = False
    lots: int = 0
    lots_remaining: int = 0
    bad_lots: int = 0
    first_bad_lot: int | None = None
    bad_moved: int = 0
    first_bad_moved: int | None = None
    bad_grants: int = 0
    first_bad_grant: int | None = None
    foreign_lots: int = 0
    bad_returns: int = 0
    first_bad_draw: int | None = None
    dead_draws: int = 0
    first_dead_draw: int | None = None

    def problems(self) -> list[str]:
        found = []
        if not self.has_balance_row:
            return [
                f"{self.entries} ledger entries but no balance row (ledger total {self.ledger_total})"
            ]
        if self.entries == 0:
            found.append(
                f"no ledger entries but balance {self.balance}, earned {self.lifetime_earned}, "
                f"spent {self.lifetime_spent}"
            )
        if self.bad_sums:
            found.append(
                f"{self.bad_sums} entries whose balance_after is not balance_before + amount"
            )
        if self.broken_links:
            found.append(
                f"{self.broken_links} entries whose balance_before does not follow the previous entry"
            )
        if self.first_bad_entry is not None:
            found.append(f"first broken entry #{self.first_bad_entry}")
        if self.entries and self.balance != self.ledger_total:
            found.append(f"balance {self.balance} but the entries sum to {self.ledger_total}")
        if self.entries and self.balance != self.last_balance_after:
            found.append(
                f"balance {self.balance} but the last entry left {self.last_balance_after}"
            )
        if self.entries and self.lifetime_earned != self.ledger_earned:
            found.append(
                f"lifetime_earned {self.lifetime_earned} but the entries earned {self.ledger_earned}"
            )
        if self.entries and self.lifetime_spent != self.ledger_spent:
            found.append(
                f"lifetime_spent {self.lifetime_spent} but the entries spent {self.ledger_spent}"
            )
        if self.balance != self.lifetime_earned - self.lifetime_spent:
            found.append(
                f"balance {self.balance} is not lifetime_earned - lifetime_spent "
                f"({self.lifetime_earned} - {self.lifetime_spent})"
            )
        if self.lots_checked:
            found.extend(self._lot_problems())
        return found

    def _lot_problems(self) -> list[str]:
        found = []
        if self.has_balance_row and self.balance != self.lots_remaining:
            found.append(
                f"balance {self.balance} but its {self.lots} lots hold {self.lots_remaining}"
            )
        if self.bad_lots:
            found.append(
                f"{self.bad_lots} lots whose remaining is not original + their movements "
                f"(first lot #{self.first_bad_lot})"
            )
        if self.bad_moved:
            found.append(
                f"{self.bad_moved} entries whose lot movements do not add up to their amount "
                f"(first entry #{self.first_bad_moved})"
            )
        if self.bad_grants:
            found.append(
                f"{self.bad_grants} entries with a missing, wrong or misplaced lot: a grant "
                f"makes exactly one lot of its amount, nothing else makes one "
                f"(first entry #{self.first_bad_grant})"
            )
        if self.foreign_lots:
            found.append(f"{self.foreign_lots} entries that moved credits of another user's lot")
        if self.bad_returns:
            found.append(
                f"{self.bad_returns} draws given back more than they took, or to another lot "
                f"(first draw movement #{self.first_bad_draw})"
            )
        if self.dead_draws:
            found.append(
                f"{self.dead_draws} spends or adjustments that drew from a lot not live at "
                f"their time (first entry #{self.first_dead_draw})"
            )
        return found


@dataclass(frozen=True)
class LedgerReport:
    entries: int
    balances: int
    drift: list[UserDrift]
    #: The lots were checked too (False before migration 0013 has made them).
    lots_checked: bool = False
    lots: int = 0

    @property
    def clean(self) -> bool:
        return not self.drift


def ledger_check() -> LedgerReport:
    """Check the whole ledger in one snapshot: one pass over it (and, before the lots, a count)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            if outermost:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # The per-user sort then fits in memory for a few million rows.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            # Run once, the statement is not worth compiling: JIT takes longer than it saves.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(_PG_HAS_LOTS)
            lots_checked = cursor.fetchone()[0]
            if lots_checked:
                cursor.execute(_PG_CUTOVER)
                cutover = cursor.fetchone()[0]
                # Every join of the lot checks is on ids that both sides can be read in order
                # of (the ledger, lots and movements through their id indexes): merged, they
                # walk each table once in order, where a hash table of a million rows is
                # probed at random (about twice the time at a million entries).
                # And no parallel workers: each would sum every movement per entry again for
                # its share of the ledger (the sort after them runs in one process anyway).
                cursor.execute(
                    "SELECT current_setting('enable_hashjoin'),"
                    " current_setting('max_parallel_workers_per_gather')"
                )
                hashjoin, workers = cursor.fetchone()
                cursor.execute("SET LOCAL enable_hashjoin = off")
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                cursor.execute(_PG_CHECK_LOTS, {"cutover": cutover})
                rows = cursor.fetchall()
                drift = [UserDrift(*row[:-4]) for row in rows if row[-4]]
                entries, balances, lots = rows[0][-3:] if rows else (0, 0, 0)
                # within a caller's transaction, leave its planner as it was
                cursor.execute(
                    "SELECT set_config('enable_hashjoin', %s, true),"
                    " set_config('max_parallel_workers_per_gather', %s, true)",
                    [hashjoin, workers],
                )
            else:
                cursor.execute(_PG_CHECK)
                drift = [UserDrift(*row) for row in cursor.fetchall()]
                cursor.execute(_PG_COUNTS)
                entries, balances = cursor.fetchone()
                lots = 0
    return LedgerReport(
        entries=entries, balances=balances, drift=drift, lots_checked=lots_checked, lots=lots
    )
