"""Reads of the ledger: the history page (keyset pages, never OFFSET) and the CSV export.

Selectors only read: anything that writes (regeneration due on a balance read, for one) is a
service in credits/services.py.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .app_settings import app_settings
from .models import LedgerEntry, customer_description

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The columns the history page and the export read; nothing else is fetched. The customer
#: reads ``customer_description`` (annotated), never the stored description or internal note
#: as such.
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
        customer_description=customer_description()
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
    rows = list(qs.order_by("-created_at", "-id").only(*HISTORY_FIELDS)[: limit + 1])
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
    qs = ledger_entries_filtered(user=user, kinds=kinds, date_from=date_from, date_to=date_to)
    with transaction.atomic():
        yield from (
            qs.order_by("created_at", "id")
            .values_list(*EXPORT_FIELDS)
            .iterator(chunk_size=chunk_size or app_settings.EXPORT_CHUNK_SIZE)
        )


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())
