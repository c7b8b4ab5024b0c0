"""Helpers for the lot tests: the database clock, lots that lapse now, and the lot invariants
checked by plain SQL (independently of ``check_ledger``)."""

from datetime import datetime

from django.db import connection, transaction

from credits.models import CreditLot, LedgerEntry, LotMovement


def sql(query: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def db_now() -> datetime:
    """The database clock (what every movement judges expiry by)."""
    return sql("SELECT statement_timestamp()")[0][0]


def wait_for_db_clock(moment: datetime) -> None:
    """Wait in the database until its clock has passed ``moment`` (no longer than that)."""
    sql(
        "SELECT pg_sleep(greatest(0, extract(epoch FROM %s::timestamptz - clock_timestamp())) + 0.001)",
        [moment],
    )


def lapse(*lots: CreditLot) -> None:
    """Bring the lots' expiry to now, by the database clock: what time passing would do.

    A lot's terms are otherwise never updated (a trigger refuses it): the trigger is left out
    for this one statement only.
    """
    with transaction.atomic():
        sql("SET LOCAL session_replication_role = replica")
        sql(
            "UPDATE credits_creditlot SET expires_at = statement_timestamp() WHERE id = ANY(%s)",
            [[lot.pk for lot in lots]],
        )
        sql("SET LOCAL session_replication_role = origin")


def lot_of(entry: LedgerEntry) -> CreditLot:
    """The lot a grant entry created."""
    return CreditLot.objects.get(grant_entry_id=entry.pk)


def moves(entry: LedgerEntry) -> dict[int, int]:
    """What ``entry`` did to each lot: {lot id: credits} (negative: taken)."""
    moved: dict[int, int] = {}
    for lot_id, credits in LotMovement.objects.filter(entry_id=entry.pk).values_list(
        "lot_id", "credits"
    ):
        moved[lot_id] = moved.get(lot_id, 0) + credits
    return moved


def remaining(*lots: CreditLot) -> list[int]:
    by_id = dict(
        CreditLot.objects.filter(pk__in=[lot.pk for lot in lots]).values_list("id", "remaining")
    )
    return [by_id[lot.pk] for lot in lots]


def by_category(user) -> dict[str, int]:
    """The credits left in the user's lots, per category."""
    rows = sql(
        "SELECT category, sum(remaining) FROM credits_creditlot WHERE user_id = %s GROUP BY category",
        [user.pk],
    )
    return {category: int(total) for category, total in rows}


def live_credits_of(user) -> int:
    """The credits in the user's lots that are spendable now, by the database clock."""
    return sql(
        """SELECT coalesce(sum(remaining), 0) FROM credits_creditlot
            WHERE user_id = %s AND remaining > 0 AND effective_at <= statement_timestamp()
              AND (expires_at IS NULL OR expires_at > statement_timestamp())""",
        [user.pk],
    )[0][0]


#: Each query lists what breaks one invariant; every list must be empty.
LOT_INVARIANTS = {
    "balance row == sum of the user's lots' remaining, and >= 0": """
        SELECT b.user_id, b.balance, coalesce(sum(l.remaining), 0)
          FROM credits_creditbalance b LEFT JOIN credits_creditlot l ON l.user_id = b.user_id
         GROUP BY b.user_id, b.balance
        HAVING b.balance <> coalesce(sum(l.remaining), 0) OR b.balance < 0""",
    "balance == lifetime earned - lifetime spent == the last entry's balance_after": """
        SELECT b.user_id FROM credits_creditbalance b
         WHERE b.balance <> b.lifetime_earned - b.lifetime_spent
            OR b.balance <> coalesce((SELECT e.balance_after FROM credits_ledgerentry e
                                       WHERE e.user_id = b.user_id ORDER BY e.id DESC LIMIT 1), 0)""",
    "lot remaining == original + its movements, within 0..original": """
        SELECT l.id, l.original, l.remaining, coalesce(sum(m.credits), 0)
          FROM credits_creditlot l LEFT JOIN credits_lotmovement m ON m.lot_id = l.id
         GROUP BY l.id
        HAVING l.remaining <> l.original + coalesce(sum(m.credits), 0)
            OR l.remaining < 0 OR l.remaining > l.original""",
    "a grant entry created one lot of its amount": """
        SELECT l.id FROM credits_creditlot l JOIN credits_ledgerentry e ON e.id = l.grant_entry_id
         WHERE l.original <> e.amount OR l.user_id <> e.user_id""",
    "any other entry's movements add up to its amount": """
        SELECT e.id, e.kind, e.amount, coalesce(sum(m.credits), 0)
          FROM credits_ledgerentry e LEFT JOIN credits_lotmovement m ON m.entry_id = e.id
         WHERE NOT EXISTS (SELECT 1 FROM credits_creditlot l WHERE l.grant_entry_id = e.id)
         GROUP BY e.id
        HAVING e.amount <> coalesce(sum(m.credits), 0)""",
    "movements stay with the user's own lots": """
        SELECT m.id FROM credits_lotmovement m
          JOIN credits_ledgerentry e ON e.id = m.entry_id
          JOIN credits_creditlot l ON l.id = m.lot_id
         WHERE e.user_id <> l.user_id""",
    "a return goes back to its draw's lot, never more than the draw took": """
        SELECT d.id FROM credits_lotmovement d JOIN credits_lotmovement r ON r.returns_id = d.id
         GROUP BY d.id
        HAVING sum(r.credits) > -d.credits OR bool_or(r.lot_id <> d.lot_id) OR d.credits >= 0""",
    "nothing is drawn from a lot that was not live at the entry's time (expiries excepted)": """
        SELECT m.id, e.kind FROM credits_lotmovement m
          JOIN credits_ledgerentry e ON e.id = m.entry_id
          JOIN credits_creditlot l ON l.id = m.lot_id
         WHERE m.credits < 0 AND m.returns_id IS NULL AND e.kind <> 'EXPIRY'
           AND NOT (l.effective_at <= e.created_at
                    AND (l.expires_at IS NULL OR e.created_at < l.expires_at))""",
    "an expiry takes only from a lot that has lapsed": """
        SELECT m.id FROM credits_lotmovement m
          JOIN credits_ledgerentry e ON e.id = m.entry_id
          JOIN credits_creditlot l ON l.id = m.lot_id
         WHERE e.kind = 'EXPIRY' AND (l.expires_at IS NULL OR e.created_at < l.expires_at)""",
    "a lot is expired at most once by its own key": """
        SELECT idempotency_key FROM credits_ledgerentry
         WHERE kind = 'EXPIRY' AND idempotency_key LIKE 'expire:%%'
         GROUP BY idempotency_key HAVING count(*) > 1""",
}


def assert_lot_invariants() -> None:
    broken = {name: rows for name, query in LOT_INVARIANTS.items() if (rows := sql(query))}
    assert not broken, broken
