"""Reads of the ledger: the history page (keyset pages, never OFFSET) and the CSV export.

Selectors only read: anything that writes (regeneration due on a balance read, for one) is a
service in credits/services.py.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.postgres.aggregates import JSONBAgg
from django.db import connection, models, transaction
from django.db.models import Case, F, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import JSONObject
from django.utils import timezone
from django.utils.formats import date_format

from .app_settings import app_settings
from .models import (
    CreditLot,
    LedgerEntry,
    LedgerKind,
    LotCategory,
    LotMovement,
    LotSource,
    customer_description,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The columns the history page and the export read; nothing else is fetched. The customer
#: reads ``customer_description`` (annotated), never the stored description or internal note
#: as such. Both also read the lot a grant created (``lot_ref``, ``lot_category``,
#: ``lot_expires_at``) and the lots other entries moved (``moved_lots``), annotated.
HISTORY_FIELDS = (
    "id",
    "created_at",
    "kind",
    "amount",
    "balance_before",
    "balance_after",
    "source_type",
    "source_id",
    "reverses_id",
)
EXPORT_FIELDS = (
    "id",
    "created_at",
    "kind",
    "amount",
    "balance_before",
    "balance_after",
    "customer_description",
    "source_type",
    "source_id",
    "reverses_id",
    "lot_ref",
    "lot_category",
    "lot_expires_at",
    "moved_lots",
)

#: Entries whose customer description is told from the lot they took credits from.
LOT_TOLD_KINDS = (LedgerKind.EXPIRY, LedgerKind.VOID)

#: How a customer reads a lot's source: "12 credits expired (trial credits from 1 Nov)".
LOT_SOURCE_PHRASES = {
    LotSource.PURCHASE: "purchased credits",
    LotSource.SUBSCRIPTION: "subscription credits",
    LotSource.ROLLOVER: "rolled-over credits",
    LotSource.TRIAL: "trial credits",
    LotSource.BONUS: "bonus credits",
    LotSource.VOUCHER: "voucher credits",
    LotSource.REGENERATION: "free-plan credits",
    LotSource.ADJUSTMENT: "credits from our support team",
    LotSource.OPENING: "earlier credits",
}


@dataclass(frozen=True)
class CreditSummary:
    """The balance as the header and the credits page tell it: paid and promotional parts, and
    the soonest expiry.

    ``balance`` is the balance row. ``lapsed`` counts credits whose lot has expired but
    which the expiry task has not written off yet: they can no longer be spent, so the
    pages show ``available`` (the balance without them).
    """

    balance: int = 0
    paid: int = 0
    promotional: int = 0
    lapsed: int = 0
    #: Credits of the live lots expiring on the day of the soonest expiry, and that moment.
    expiring: int = 0
    expires_at: datetime | None = None

    @property
    def available(self) -> int:
        return max(0, self.balance - self.lapsed)

    @property
    def split_known(self) -> bool:
        """True when the lots account for the whole balance (always, once every balance is in lots)."""
        return self.available > 0 and self.paid + self.promotional == self.available


_SUMMARY_SQL = """
WITH lots AS (
    SELECT category, remaining, expires_at,
           effective_at <= statement_timestamp()
           AND (expires_at IS NULL OR expires_at > statement_timestamp()) AS live
    FROM {lots}
    WHERE user_id = %(uid)s AND has_remaining
), soonest AS (
    SELECT min(expires_at) AS at FROM lots WHERE live
)
SELECT
    coalesce(sum(remaining) FILTER (WHERE live AND category = %(paid)s), 0),
    coalesce(sum(remaining) FILTER (WHERE live AND category = %(promotional)s), 0),
    coalesce(sum(remaining) FILTER (WHERE expires_at <= statement_timestamp()), 0),
    coalesce(sum(remaining) FILTER (
        WHERE live AND expires_at < (
            SELECT (date_trunc('day', at AT TIME ZONE %(tz)s) + interval '1 day')
                   AT TIME ZONE %(tz)s
            FROM soonest
        )
    ), 0),
    (SELECT at FROM soonest)
FROM lots
"""


def credit_summary(*, user_id: int, balance: int) -> CreditSummary:
    """The user's lots summed in ONE statement over the lots that still hold credits (the burn-order
    index): paid and promotional credits that can be spent now, credits expired but not yet
    written off, and the credits expiring on the (local) day of the soonest expiry.

    ``balance`` is the balance row as just read (``balance_refresh``). Lots are live between
    their ``effective_at`` and ``expires_at`` by the statement's clock, as for a spend.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _SUMMARY_SQL.format(lots=connection.ops.quote_name(CreditLot._meta.db_table)),
            {
                "uid": user_id,
                "paid": LotCategory.PAID.value,
                "promotional": LotCategory.PROMOTIONAL.value,
                "tz": timezone.get_current_timezone_name(),
            },
        )
        paid, promotional, lapsed, expiring, expires_at = cursor.fetchone()
    return CreditSummary(
        balance=balance,
        paid=int(paid),
        promotional=int(promotional),
        lapsed=int(lapsed),
        expiring=int(expiring),
        expires_at=expires_at,
    )


@dataclass(frozen=True)
class Cursor:
    """A position in a user's history: entries strictly older than (created_at, id)."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        micros = (self.created_at - _EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.id}"

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        """Parse ``encode``'s output; raises ValueError for anything else."""
        micros, _, entry_id = value.partition(".")
        if not micros.isdigit() or not entry_id.isdigit():
            raise ValueError(f"not a history position: {value!r}")
        try:
            created_at = _EPOCH + timedelta(microseconds=int(micros))
        except OverflowError as exc:
            raise ValueError(f"not a history position: {value!r}") from exc
        return cls(created_at=created_at, id=int(entry_id))


@dataclass(frozen=True)
class HistoryPage:
    entries: list[LedgerEntry]
    next_cursor: Cursor | None


def ledger_entries_filtered(
    *,
    user,
    kinds: list[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet:
    """The user's entries, filtered by kind and by an inclusive range of dates (local time)."""
    qs = LedgerEntry.objects.filter(user_id=user.pk).annotate(
        customer_description=customer_description(),
        # The lot a grant created (a join on its unique key) ...
        lot_ref=F("lot__id"),
        lot_category=F("lot__category"),
        lot_expires_at=F("lot__expires_at"),
    )
    if kinds:
        qs = qs.filter(kind__in=sorted(kinds))
    if date_from is not None:
        qs = qs.filter(created_at__gte=_start_of(date_from))
    if date_to is not None:
        qs = qs.filter(created_at__lt=_start_of(date_to + timedelta(days=1)))
    return qs


def ledger_history(
    *,
    user,
    before: Cursor | None = None,
    limit: int | None = None,
    kinds: list[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> HistoryPage:
    """One page of the user's history, newest first, strictly older than ``before``.

    Keyset pagination on (created_at, id): one index range scan of (user, created_at, id)
    whatever the page, so the 1000th page costs what the first does.
    """
    limit = limit or app_settings.HISTORY_PAGE_SIZE
    qs = ledger_entries_filtered(user=user, kinds=kinds, date_from=date_from, date_to=date_to)
    if before is not None:
        # The first condition bounds the index range scan; the second settles ties.
        qs = qs.filter(created_at__lte=before.created_at).filter(
            Q(created_at__lt=before.created_at) | Q(id__lt=before.id)
        )
    # ... and the lots an expiry or a void took from, which tell its customer description.
    qs = qs.annotate(
        moved_lots=Case(
            When(kind__in=LOT_TOLD_KINDS, then=_moved_lots()),
            default=None,
            output_field=models.JSONField(),
        )
    )
    rows = list(qs.order_by("-created_at", "-id").only(*HISTORY_FIELDS)[: limit + 1])
    for row in rows:
        row.customer_description = lot_entry_description(
            kind=row.kind,
            amount=row.amount,
            moved_lots=row.moved_lots,
            default=row.customer_description,
        )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(created_at=rows[-1].created_at, id=rows[-1].id)
    return HistoryPage(entries=rows, next_cursor=next_cursor)


def ledger_export_rows(
    *,
    user,
    kinds: list[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    chunk_size: int | None = None,
) -> Iterator[tuple]:
    """Yield the user's entries oldest first as tuples of ``EXPORT_FIELDS``, in constant memory.

    A server-side cursor fetches ``chunk_size`` rows per round trip, inside one read
    transaction (one consistent snapshot; a holdable cursor would copy the whole result
    on the server before the first row).
    """
    qs = ledger_entries_filtered(
        user=user, kinds=kinds, date_from=date_from, date_to=date_to
    ).annotate(moved_lots=_moved_lots())
    with transaction.atomic():
        yield from (
            qs.order_by("created_at", "id")
            .values_list(*EXPORT_FIELDS)
            .iterator(chunk_size=chunk_size or app_settings.EXPORT_CHUNK_SIZE)
        )


def lot_entry_description(*, kind: str, amount: int, moved_lots, default: str) -> str:
    """What a customer reads for an expiry or a void that took credits from lots:
    "12 credits expired (trial credits from 1 Nov)". Any other entry reads ``default``."""
    if kind not in LOT_TOLD_KINDS or not moved_lots:
        return default
    first = moved_lots[0]
    credits = -amount
    verb = "expired" if kind == LedgerKind.EXPIRY else "voided"
    phrase = LOT_SOURCE_PHRASES.get(first["source"], "credits")
    granted = timezone.localtime(datetime.fromisoformat(first["effective_at"]))
    day = date_format(granted, "j M" if granted.year == timezone.localdate().year else "j M Y")
    others = len({lot["lot"] for lot in moved_lots}) - 1
    more = f" and {others} other grant{'s' if others != 1 else ''}" if others else ""
    return f"{credits} credit{'s' if credits != 1 else ''} {verb} ({phrase} from {day}{more})"


def moved_lot_ids(moved_lots) -> list[int]:
    """The lots an entry took from or gave back to, in the order it moved them, each once."""
    return list(dict.fromkeys(lot["lot"] for lot in moved_lots or ()))


def moved_categories(moved_lots) -> list[str]:
    """The categories of those lots, paid first."""
    found = {lot["category"] for lot in moved_lots or ()}
    return [c for c in (LotCategory.PAID, LotCategory.PROMOTIONAL) if c in found]


def _moved_lots() -> Subquery:
    """The lots one entry moved (its ``LotMovement`` rows, in order), as a JSON list; NULL for none.

    One index lookup on the movements' entry per entry: the export stays linear.
    """
    return Subquery(
        LotMovement.objects.filter(entry_id=OuterRef("pk"))
        .values("entry_id")
        .annotate(
            lots=JSONBAgg(
                JSONObject(
                    lot="lot_id",
                    credits="credits",
                    category="lot__category",
                    source="lot__source",
                    effective_at="lot__effective_at",
                ),
                order_by="id",
            )
        )
        .values("lots"),
        output_field=models.JSONField(),
    )


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


@dataclass(frozen=True)
class SpendingControlsState:
    """A user's caps and threshold with what has been spent in the current windows."""

    daily_cap: int | None
    monthly_cap: int | None
    low_balance_threshold: int | None
    spent_today: int
    spent_this_month: int
    time_zone: str

    @property
    def any_set(self) -> bool:
        return any(
            v is not None for v in (self.daily_cap, self.monthly_cap, self.low_balance_threshold)
        )


def spending_controls_of(*, user_id: int) -> SpendingControlsState:
    """The user's spending controls and the credits spent today and this month (the windows
    of ``CREDITS_CAP_TIMEZONE``, on the database clock, as the spend statement counts them)."""
    tz = app_settings.CAP_TIMEZONE
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT daily_cap, monthly_cap, low_balance_threshold,
                   CASE WHEN spent_day = (statement_timestamp() AT TIME ZONE %(tz)s)::date
                        THEN spent_in_day ELSE 0 END,
                   CASE WHEN spent_month = date_trunc('month', statement_timestamp() AT TIME ZONE %(tz)s)::date
                        THEN spent_in_month ELSE 0 END
              FROM credits_creditbalance WHERE user_id = %(uid)s
            """,
            {"tz": tz, "uid": user_id},
        )
        row = cursor.fetchone() or (None, None, None, 0, 0)
    return SpendingControlsState(*row, time_zone=tz)
