"""What happens when a balance falls below one of its user's thresholds.

The movement statement records the fall as a ``BalanceCrossing`` row in its own transaction
(see ``credits.ledger_sql``): that row is the work that is due. An upper app registers a
handler for a kind in its ``AppConfig.ready`` (the low-balance email, the automatic top-up);
``crossings_handle`` runs each due crossing's handler inside a transaction that also marks
the crossing handled, so the handler's own writes (an outbox row, an order) and the mark
commit together: a crossing is handled once, and a failed or lost run is retried by the
periodic sweep (``credits.tasks.handle_crossings``).
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from notices.services import low_balance_email_queue

from .models import BalanceCrossing

log = logging.getLogger(__name__)

#: A crossing whose handler failed this many times is left for staff (its error is kept).
MAX_ATTEMPTS = 10
#: Wait before a failed crossing is tried again: this times the attempts made.
RETRY_STEP = timedelta(seconds=60)

_HANDLERS: dict[str, Callable[[BalanceCrossing], None]] = {}


def register_crossing_handler(kind: str, handler: Callable[[BalanceCrossing], None]) -> None:
    """Call ``handler(crossing)`` for each crossing of ``kind`` (a ``BalanceCrossing.Kind``),
    inside the transaction that marks it handled. One handler per kind."""
    BalanceCrossing.Kind(kind)
    if _HANDLERS.get(kind, handler) is not handler:
        raise ValueError(f"a handler for {kind!r} crossings is registered already")
    _HANDLERS[kind] = handler


def crossings_handle(*, limit: int = 200) -> int:
    """Handle up to ``limit`` due crossings, oldest first; returns how many were handled.

    Each in its own transaction, its row locked (``SKIP LOCKED``: two runs at once share the
    work and never handle one twice). A kind nobody handles is marked handled as it is.
    """
    done = 0
    for _ in range(limit):
        with transaction.atomic():
            crossing = (
                BalanceCrossing.objects.select_for_update(skip_locked=True)
                .filter(handled_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
                .filter(_due())
                .order_by("id")
                .first()
            )
            if crossing is None:
                break
            handler = _HANDLERS.get(crossing.kind)
            try:
                with transaction.atomic():
                    if handler is not None:
                        handler(crossing)
            except Exception as exc:  # noqa: BLE001 - kept on the row, tried again later
                log.exception("handling %s failed", crossing)
                BalanceCrossing.objects.filter(pk=crossing.pk).update(
                    attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000]
                )
                continue
            BalanceCrossing.objects.filter(pk=crossing.pk).update(
                handled_at=Now(), attempts=F("attempts") + 1, last_error=""
            )
            done += 1
    return done


def _due() -> Q:
    # A failed crossing waits RETRY_STEP per attempt made before it is tried again.
    waited = [Q(attempts=n, created_at__lte=Now() - RETRY_STEP * n) for n in range(1, MAX_ATTEMPTS)]
    q = Q(attempts=0)
    for one in waited:
        q |= one
    return q


def low_balance_email(crossing: BalanceCrossing) -> None:
    """The low-balance alert's handler: the email, once per crossing (the user may have turned
    these emails off; the banner shows whatever they chose)."""
    low_balance_email_queue(
        user=crossing.user,
        threshold=crossing.threshold,
        balance=crossing.balance_after,
        crossing_key=f"crossing:{crossing.pk}",
    )
