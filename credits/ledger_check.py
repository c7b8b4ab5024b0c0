"""Recompute every balance from the ledger in one pass and report where they disagree.

One SQL statement: a window over each user's entries in id order (the order the balance
row's lock gave them) checks every entry's before/after chain, and the per-user sums are
compared with the balance rows. It reads each ledger row once (a sort by user and id, then
a streaming aggregate), so its time grows linearly with the ledger.

What counts as drift, per user:
  * an entry whose balance_after is not balance_before + amount;
  * a first entry whose balance_before is not 0, or an entry whose balance_before is not
    the previous entry's balance_after;
  * a balance that is not the sum of the entries, or not the last entry's balance_after;
  * lifetime totals that are not the sums of the earned and spent kinds, or a balance that
    is not lifetime_earned - lifetime_spent;
  * a balance row with no entries but a non-zero balance or totals, and entries with no
    balance row.
"""

from dataclasses import dataclass

from django.db import connection, transaction

from .models import SPENT_SIDE_KINDS

_SPENT_KINDS = ", ".join(f"'{kind}'" for kind in sorted(SPENT_SIDE_KINDS))

_PG_CHECK = f"""
WITH chained AS (
    SELECT user_id, id, amount, kind, balance_before, balance_after,
           lag(balance_after) OVER w AS previous_after,
           lead(id) OVER w IS NULL AS is_last
      FROM credits_ledgerentry
    WINDOW w AS (PARTITION BY user_id ORDER BY id)
), per_user AS (
    SELECT user_id,
           count(*) AS entries,
           sum(amount) AS total,
           coalesce(sum(amount) FILTER (WHERE kind NOT IN ({_SPENT_KINDS})), 0) AS earned,
           coalesce(-sum(amount) FILTER (WHERE kind IN ({_SPENT_KINDS})), 0) AS spent,
           max(balance_after) FILTER (WHERE is_last) AS last_after,
           count(*) FILTER (WHERE balance_after <> balance_before + amount) AS bad_sums,
           count(*) FILTER (WHERE balance_before <> coalesce(previous_after, 0)) AS broken_links,
           min(id) FILTER (WHERE balance_after <> balance_before + amount
                              OR balance_before <> coalesce(previous_after, 0)) AS first_bad_entry
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
        return found


@dataclass(frozen=True)
class LedgerReport:
    entries: int
    balances: int
    drift: list[UserDrift]

    @property
    def clean(self) -> bool:
        return not self.drift


def ledger_check() -> LedgerReport:
    """Check the whole ledger: one pass over it, and a count, in one snapshot."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            if outermost:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # The per-user sort then fits in memory for a few million rows.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            cursor.execute(_PG_CHECK)
            drift = [UserDrift(*row) for row in cursor.fetchall()]
            cursor.execute(_PG_COUNTS)
            entries, balances = cursor.fetchone()
    return LedgerReport(entries=entries, balances=balances, drift=drift)
