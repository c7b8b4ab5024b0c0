"""The finance report: what happened to credits in a period, per category and currency.

Per category (paid, promotional) and currency, for the period ``[since, until)``::

    opening + granted - consumed - expired - voided == closing      (credits)

- **granted**: the original credits of the lots granted in the period.
- **consumed**: credits used, net of returns: spend draws minus what refunds and settlements
  below the reservation gave back (SPEND and REFUND lot movements).
- **expired**: credits that reached their lot's expiry (EXPIRY movements, dated when the
  entry is written).
- **voided**: every other way credits left a lot, shown split into its parts: bonus lots voided
  with their purchase (VOID), clawbacks after a payment refund or a lost dispute (CLAWBACK),
  balances forfeited when an account is deleted (FORFEIT) and credits removed by staff
  (negative ADJUSTMENT). ``other`` would hold a movement of any kind not listed (none today).
- **opening** / **closing**: the credits the lots held at ``since`` / ``until``.

Money, per currency, at each lot's cost basis (money per credit; 0 for promotional lots):
deferred revenue (opening and closing: remaining x cost basis), the value of the credits
granted, revenue recognised on use (consumed x cost basis), breakage (expired x cost basis)
and the value voided. The same identity holds in money:
``deferred opening + granted value - recognised - breakage - voided value == deferred closing``.

Timing comes from the ledger: a lot counts from its grant entry's ``created_at``, a movement
from its entry's ``created_at`` (never earlier than its lot's grant, so a lot cannot lose
credits before it exists even when the two transactions' clocks cross). Expired credits stay
in the closing balance until the expiry task writes their EXPIRY entry.

Everything is one SQL statement (one snapshot, whatever the isolation level): it reads the lots
that are live now or moved since the period began, and the movements dated since the period
began, and works back from each lot's ``remaining`` to what it held at both ends of the period
(``remaining`` is always ``original`` plus the sum of the lot's movements; ``check_ledger``
proves it). The same statement sums the ledger entries by kind, the other way round, and the
report says whether the two agree (``ties_out``).
"""

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal

from django.db import connection

from credits.models import CreditLot, LedgerEntry, LedgerKind, LotMovement

from .selectors import Period

#: The column a movement (or, for the ledger side, a debiting entry) of each kind counts in.
KIND_COLUMNS = {
    LedgerKind.SPEND: "consumed",
    LedgerKind.REFUND: "consumed",
    LedgerKind.EXPIRY: "expired",
    LedgerKind.VOID: "voided_bonus",
    LedgerKind.CLAWBACK: "clawed_back",
    LedgerKind.FORFEIT: "forfeited",
    LedgerKind.ADJUSTMENT: "removed_by_staff",
}
#: The parts of ``voided``, in the order the report shows them.
VOIDED_PARTS = ("voided_bonus", "clawed_back", "forfeited", "removed_by_staff", "other")
#: Columns that take credits out of the lots (shown positive).
TAKEN_COLUMNS = ("consumed", "expired", *VOIDED_PARTS)
#: The money columns, in the statement's order.
MONEY_COLUMNS = (
    "deferred_opening",
    "granted_value",
    "recognised",
    "breakage",
    "voided_value",
    "deferred_closing",
)
CATEGORY_ORDER = {"paid": 0, "promotional": 1}


def _column_of(kind_column: str) -> str:
    """A CASE naming the report column for the ledger kind in ``kind_column``."""
    whens = " ".join(f"WHEN '{kind}' THEN '{column}'" for kind, column in KIND_COLUMNS.items())
    return f"CASE {kind_column} {whens} ELSE 'other' END"


def _sum_taken(source: str, amount: str, *, extra: str = "") -> str:
    """One negated, filtered sum per taken column (credits taken show as positive numbers)."""
    return ",\n".join(
        f"coalesce(-sum({amount}) FILTER (WHERE {source}.col = '{column}'{extra}), 0) AS {column}"
        for column in TAKEN_COLUMNS
    )


_LOTS = CreditLot._meta.db_table
_MOVEMENTS = LotMovement._meta.db_table
_ENTRIES = LedgerEntry._meta.db_table
_PER_LOT_TAKEN = ",\n           ".join(
    f"coalesce(sum(credits) FILTER (WHERE at < %(until)s AND {_column_of('kind')} = '{column}'), 0)"
    f" AS {column}"
    for column in TAKEN_COLUMNS
)

_SQL = f"""
WITH recent AS (
    -- Movements dated at or after the period's start: by their entry, never before their
    -- lot's grant. The second part finds the (rare) movements whose entry predates a grant
    -- made in or after the period. (A movement dated before its grant otherwise matters only
    -- for a lot granted after the period, which the report leaves out.)
    SELECT m.lot_id, m.credits, e.kind, e.created_at AS at
      FROM {_MOVEMENTS} m
      JOIN {_ENTRIES} e ON e.id = m.entry_id
     WHERE e.created_at >= %(since)s
    UNION ALL
    SELECT m.lot_id, m.credits, e.kind, g.created_at
      FROM {_ENTRIES} g
      JOIN {_LOTS} l ON l.grant_entry_id = g.id
      JOIN {_MOVEMENTS} m ON m.lot_id = l.id
      JOIN {_ENTRIES} e ON e.id = m.entry_id
     WHERE g.created_at >= %(since)s AND e.created_at < %(since)s
), per_lot AS (
    SELECT lot_id,
           sum(credits) AS after_since,
           coalesce(sum(credits) FILTER (WHERE at >= %(until)s), 0) AS after_until,
           {_PER_LOT_TAKEN}
      FROM recent
     GROUP BY lot_id
), lots AS (
    SELECT l.category, l.currency, l.cost_basis, l.original,
           g.created_at >= %(since)s AS granted_in_period,
           l.remaining - coalesce(p.after_since, 0) AS at_since,
           l.remaining - coalesce(p.after_until, 0) AS at_until,
           {", ".join(f"coalesce(p.{column}, 0) AS {column}" for column in TAKEN_COLUMNS)}
      FROM {_LOTS} l
      JOIN {_ENTRIES} g ON g.id = l.grant_entry_id
      LEFT JOIN per_lot p ON p.lot_id = l.id
     WHERE g.created_at < %(until)s
       AND (l.has_remaining OR p.lot_id IS NOT NULL)
), ledger AS (
    SELECT amount, created_at >= %(since)s AS in_period,
           CASE WHEN amount > 0 AND kind <> '{LedgerKind.REFUND}' THEN 'granted'
                ELSE {_column_of("kind")} END AS col
      FROM {_ENTRIES}
     WHERE created_at < %(until)s
)
SELECT 'lots', category, currency,
       coalesce(sum(at_since) FILTER (WHERE NOT granted_in_period), 0),
       coalesce(sum(original) FILTER (WHERE granted_in_period), 0),
       {", ".join(f"-sum({column})" for column in TAKEN_COLUMNS)},
       sum(at_until),
       coalesce(sum(at_since * cost_basis) FILTER (WHERE NOT granted_in_period), 0),
       coalesce(sum(original * cost_basis) FILTER (WHERE granted_in_period), 0),
       -sum(consumed * cost_basis),
       -sum(expired * cost_basis),
       -sum(({" + ".join(VOIDED_PARTS)}) * cost_basis),
       sum(at_until * cost_basis)
  FROM lots
 GROUP BY category, currency
UNION ALL
SELECT 'ledger', NULL, NULL,
       coalesce(sum(amount) FILTER (WHERE NOT in_period), 0),
       coalesce(sum(amount) FILTER (WHERE in_period AND col = 'granted'), 0),
       {_sum_taken("ledger", "amount", extra=" AND in_period")},
       coalesce(sum(amount), 0),
       NULL, NULL, NULL, NULL, NULL, NULL
  FROM ledger
"""

_ZERO = Decimal("0")


@dataclass(frozen=True)
class CreditMovements:
    """Credits in and out over the period (taken columns are positive)."""

    opening: int = 0
    granted: int = 0
    consumed: int = 0
    expired: int = 0
    voided_bonus: int = 0
    clawed_back: int = 0
    forfeited: int = 0
    removed_by_staff: int = 0
    other: int = 0
    closing: int = 0

    @property
    def voided(self) -> int:
        """Credits that left the lots other than by use or expiry (see the module's docstring)."""
        return sum(getattr(self, part) for part in VOIDED_PARTS)

    @property
    def balanced(self) -> bool:
        """opening + granted - consumed - expired - voided == closing."""
        return (
            self.opening + self.granted - self.consumed - self.expired - self.voided == self.closing
        )

    def credit_values(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(CreditMovements)}


@dataclass(frozen=True)
class FinanceLine(CreditMovements):
    """One category and currency (promotional lots have no currency: "")."""

    category: str = ""
    currency: str = ""
    deferred_opening: Decimal = _ZERO
    granted_value: Decimal = _ZERO
    recognised: Decimal = _ZERO
    breakage: Decimal = _ZERO
    voided_value: Decimal = _ZERO
    deferred_closing: Decimal = _ZERO

    @property
    def money_balanced(self) -> bool:
        return (
            self.deferred_opening + self.granted_value
            - self.recognised - self.breakage - self.voided_value
            == self.deferred_closing
        )  # fmt: skip


@dataclass(frozen=True)
class FinanceReport:
    since: datetime
    until: datetime
    lines: list[FinanceLine] = field(default_factory=list)
    #: The same credit columns summed from the ledger entries by kind (all categories).
    ledger: CreditMovements = field(default_factory=CreditMovements)

    @property
    def totals(self) -> CreditMovements:
        """The credit columns summed over every category and currency."""
        names = [f.name for f in fields(CreditMovements)]
        return CreditMovements(
            **{name: sum(getattr(line, name) for line in self.lines) for name in names}
        )

    @property
    def differences(self) -> dict[str, tuple[int, int]]:
        """Columns where the lots and the ledger disagree: name -> (lots, ledger)."""
        lots, ledger = self.totals.credit_values(), self.ledger.credit_values()
        return {name: (lots[name], ledger[name]) for name in lots if lots[name] != ledger[name]}

    @property
    def ties_out(self) -> bool:
        return not self.differences and all(
            line.balanced and line.money_balanced for line in self.lines
        )


def finance_report(*, start: date, end: date) -> FinanceReport:
    """The report for the days ``start`` to ``end`` (inclusive, the dashboard's period)."""
    period = Period(start, end)
    return finance_report_between(since=period.since, until=period.until)


def finance_report_between(*, since: datetime, until: datetime) -> FinanceReport:
    """The report for ``since <= t < until``, in one statement."""
    if until < since:
        raise ValueError("The period ends before it starts.")
    with connection.cursor() as cursor:
        cursor.execute(_SQL, {"since": since, "until": until})
        rows = cursor.fetchall()
    lines, ledger = [], CreditMovements()
    n_credits = 3 + len(TAKEN_COLUMNS)  # opening, granted, the taken columns, closing
    for part, category, currency, *values in rows:
        opening, granted, *taken, closing = (int(v) for v in values[:n_credits])
        credit_values = {
            "opening": opening,
            "granted": granted,
            "closing": closing,
            **dict(zip(TAKEN_COLUMNS, taken, strict=True)),
        }
        if part == "ledger":
            ledger = CreditMovements(**credit_values)
            continue
        money = dict(zip(MONEY_COLUMNS, values[n_credits:], strict=True))
        lines.append(
            FinanceLine(category=category, currency=currency or "", **credit_values, **money)
        )
    lines.sort(
        key=lambda line: (CATEGORY_ORDER.get(line.category, 2), line.category, line.currency)
    )
    return FinanceReport(since=since, until=until, lines=lines, ledger=ledger)


#: The CSV's columns, one row per category and currency, then one row of the ledger's sums.
CSV_HEADER = [
    "period_start",
    "period_end",
    "source",
    "category",
    "currency",
    "opening",
    "granted",
    "consumed",
    "expired",
    "voided",
    "voided_bonus",
    "clawed_back",
    "forfeited",
    "removed_by_staff",
    "voided_other",
    "closing",
    "deferred_revenue_opening",
    "granted_value",
    "revenue_recognised",
    "breakage",
    "voided_value",
    "deferred_revenue_closing",
]


def finance_csv_rows(report: FinanceReport, *, start: date, end: date):
    """The report as CSV rows: exact credits and money (six decimal places, as cost bases are)."""
    start, end = start.isoformat(), end.isoformat()

    def credit_cells(m: CreditMovements) -> list:
        return [
            m.opening,
            m.granted,
            m.consumed,
            m.expired,
            m.voided,
            *(getattr(m, part) for part in VOIDED_PARTS),
            m.closing,
        ]

    for line in report.lines:
        money = [
            line.deferred_opening,
            line.granted_value,
            line.recognised,
            line.breakage,
            line.voided_value,
            line.deferred_closing,
        ]
        yield [
            start,
            end,
            "lots",
            line.category,
            line.currency,
            *credit_cells(line),
            *(f"{value:.6f}" for value in money),
        ]
    yield [start, end, "ledger", "all", "", *credit_cells(report.ledger), *[""] * 6]
