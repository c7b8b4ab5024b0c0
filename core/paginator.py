"""A paginator for changelists over big tables that never counts the whole table.

Django's changelist asks its paginator for ``count`` on every page view. On a table of
millions of rows an unfiltered ``SELECT COUNT(*)`` reads the whole table (PostgreSQL has
no stored row count), and that is most of the time the page takes. Here:

- an unfiltered list takes PostgreSQL's planner estimate (``pg_class.reltuples``, kept
  fresh by autovacuum/ANALYZE) when the table is estimated big, and counts exactly when
  it is small (a small table costs nothing to count, and its estimate may be stale);
- a filtered list counts at most ``cap`` matching rows
  (``SELECT COUNT(*) FROM (SELECT 1 ... LIMIT cap)``), so it stops early.

``is_estimate`` tells the template to say "about" or "more than".
"""

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from .app_settings import AppSettings, Setting


class BigTableSettings(AppSettings):
    """Checked with the back office's settings (backoffice.checks)."""

    #: Unfiltered changelists of tables estimated above this many rows show an estimate.
    ESTIMATED_COUNT_THRESHOLD = Setting(
        "BACKOFFICE_ESTIMATED_COUNT_THRESHOLD", 50_000, int, minimum=0, check_id="backoffice.E001"
    )
    #: Filtered changelists count matching rows only up to this many.
    FILTERED_COUNT_CAP = Setting(
        "BACKOFFICE_FILTERED_COUNT_CAP", 10_000, int, minimum=1, check_id="backoffice.E001"
    )


big_table_settings = BigTableSettings()


def estimated_count_threshold() -> int:
    """Unfiltered changelists of tables estimated above this many rows show an estimate."""
    return big_table_settings.ESTIMATED_COUNT_THRESHOLD


def filtered_count_cap() -> int:
    """Filtered changelists count matching rows only up to this many."""
    return big_table_settings.FILTERED_COUNT_CAP


class EstimatedCountPaginator(Paginator):
    def __init__(
        self, *args, estimate_threshold: int | None = None, cap: int | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.estimate_threshold = (
            estimated_count_threshold() if estimate_threshold is None else estimate_threshold
        )
        self.cap = filtered_count_cap() if cap is None else cap
        self.is_estimate = False
        self.is_capped = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        query = getattr(qs, "query", None)
        if query is None:  # a list, not a queryset
            return len(qs)
        connection = connections[qs.db]
        if not query.where and not query.distinct and not query.combinator:
            estimate = self._estimate(connection, qs.model._meta.db_table)
            if estimate >= self.estimate_threshold:
                self.is_estimate = True
                return estimate
            return qs.count()
        counted = qs.order_by().values("pk")[: self.cap + 1].count()
        if counted > self.cap:
            self.is_capped = True
            return self.cap
        return counted

    @staticmethod
    def _estimate(connection, table: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table]
            )
            row = cursor.fetchone()
        return max(0, int(row[0])) if row and row[0] is not None else 0
