"""The provider-neutral webhook pipeline: verify, store, answer fast, process once.

``webhook_ingest`` runs in the request: the adapter verifies the signature on the raw body
and parses it; the event is stored (UNIQUE on provider + event id, so a duplicate delivery
is a no-op), due at once, and that is all: the request sends nothing to the broker. The
deliveries a web process receives at the same moment are stored with one INSERT and one
commit (``core.coalesce``), each answered once that commit is done.
``webhook_dispatch`` queues what is due: it claims due events in a batch (leasing them
forward, ``FOR UPDATE SKIP LOCKED``, so two dispatchers never claim the same event) and sends
their messages together. It runs in every worker that reads the webhooks queue
(``payments/dispatch.py``), and the beat sweep (``webhook_requeue_stuck``) runs it too, as the
fallback for events nobody has claimed. ``webhook_process`` runs in the Celery task: it asks
the provider about the order first (outside any transaction; for a refund event, every refund
of the payment as it stands now), then handles the event inside one transaction with the
event row locked, and records the attempt, the error and FAILED when it goes wrong.
"""

import dataclasses
import functools
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, transaction
from django.utils import timezone

from core.coalesce import Coalescer, CoalescerTimeout
from core.db import get_compiled, prepared_cursor, select_compiled, update_fields
from core.errors import is_retryable
from core.inserts import insert_many_unless_stored, insert_unless_stored
from core.logs import current as current_log_field
from core.logs import set_context as set_log_context
from core.metrics import (
    WEBHOOK_INGEST_BATCH,
    WEBHOOKS_PROCESSED,
    WEBHOOKS_RECEIVED,
    count_safely,
    observe_safely,
)
from core.queue import runs_in_place, task_send, tasks_send

from . import app_settings
from .exceptions import IngestBusy, PaymentMismatch, ProviderError, WebhookRejected
from .fulfilment import fetch_payment_status
from .models import Order, WebhookEvent
from .providers import get_provider
from .providers.base import EventKind, NormalizedEvent, PaymentStatus, RefundState
from .subscriptions import subscription_fetch
from .webhook_handlers import (
    HANDLERS,
    ORDER_KINDS,
    REFUND_KINDS,
    SUBSCRIPTION_KINDS,
    handle_ignored,
)

logger = logging.getLogger(__name__)

DONE = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)
#: States in which an event may be due (``next_attempt_at``); the partial index covers them.
DUE_STATUSES = (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED)
#: Failures that another attempt cannot fix: the event is left FAILED for staff.
UNIQUE_EVENT = "payments_webhook_unique_event"
#: What an INSERT of an event gives way to: the same event, stored already.
_STORED_EVENT = f"ON CONSTRAINT {UNIQUE_EVENT}"
KEPT_HEADERS = ("content-type", "user-agent", "stripe-signature", "sandbox-signature")
KEPT_HEADER_PREFIXES = ("paypal-",)
REQUEST_ID_HEADER = "x-request-id"
EVENT_ID_MAX_LENGTH = WebhookEvent._meta.get_field("event_id").max_length
#: How long a delivery waits for its turn to be stored before it is answered 503 (the
#: provider sends it again). Well under the web server's request timeout.
INGEST_WAIT_SECONDS = 20


@dataclasses.dataclass(frozen=True)
class IngestResult:
    duplicate: bool
    event_pk: int | None
    event_id: str
    kind: str


class WebhookRetry(Exception):
    """Processing failed in a way another attempt may fix; the attempt was recorded, unless
    ``recorded`` is False (the database could not take it: pass the message to the next
    attempt as ``unrecorded_error``)."""

    def __init__(self, message: str, *, attempts: int, recorded: bool = True):
        super().__init__(message)
        self.attempts = attempts
        self.recorded = recorded


# --- ingest (in the request) ----------------------------------------------------------------


def webhook_ingest(*, provider_name: str, body: bytes, headers: Mapping[str, str]) -> IngestResult:
    """Verify, parse and store one delivery, due at once: the dispatcher queues it.

    Raises WebhookRejected (bad, stale or missing signature; unreadable body) and
    ProviderNotConfigured; nothing is stored then. IngestBusy: the delivery could not be
    stored in time (the provider sends it again). A delivery of an event already stored
    is acknowledged as a duplicate and stored nothing.
    """
    event = get_provider(provider_name).parse_webhook(body=body, headers=headers)
    if event.provider != provider_name or not event.event_id:
        raise WebhookRejected("The event does not belong to this endpoint.")
    if len(event.event_id) > EVENT_ID_MAX_LENGTH:
        raise WebhookRejected(f"The event id is longer than {EVENT_ID_MAX_LENGTH} characters.")
    row = WebhookEvent(
        provider=provider_name,
        event_id=event.event_id,
        type=event.type[:128],
        raw_body=body.decode("utf-8", errors="replace"),
        headers=_kept_headers(headers, request_id=current_log_field("request_id")),
        signature_valid=True,
        normalized=event_to_json(event),
        # Due now: the dispatcher claims it within a fraction of a second.
        next_attempt_at=timezone.now(),
    )
    # One INSERT, committed before the answer, shared with the deliveries that arrive at the
    # same moment (``_store``): at most one round trip to the database (the kept connection's
    # check sends nothing: core/postgresql) and no broker message. A duplicate delivery
    # inserts nothing and raises nothing, inside a caller's transaction too.
    stored = _store(row)
    if not stored:
        count_safely(WEBHOOKS_RECEIVED, provider_name, "duplicate")
        return IngestResult(duplicate=True, event_pk=None, event_id=event.event_id, kind=event.kind)
    count_safely(WEBHOOKS_RECEIVED, provider_name, "received")
    _process_in_place_on_commit(row.pk)
    return IngestResult(duplicate=False, event_pk=row.pk, event_id=event.event_id, kind=event.kind)


def _store(row: WebhookEvent) -> bool:
    """Store ``row`` unless its event is stored already; whether it was. In a transaction,
    with it; otherwise (a request: autocommit) together with the deliveries that other
    threads of this process are storing at the same moment, one INSERT and one commit for
    all (``core.coalesce``), committed before this returns."""
    most = app_settings.webhook_ingest_batch()
    if connection.in_atomic_block or most == 1:
        return insert_unless_stored(row, _STORED_EVENT)
    try:
        return _INGEST_WRITER.submit(row, timeout=INGEST_WAIT_SECONDS, max_batch=most)
    except CoalescerTimeout as exc:
        logger.warning("%s event %s: %s", row.provider, row.event_id, exc)
        raise IngestBusy("The delivery could not be stored in time; send it again.") from exc


def _store_batch(rows: list[WebhookEvent]) -> list:
    """Each row stored unless its event is: whether it was, in order. A batch the database
    refuses is stored row by row, so a delivery it cannot take fails alone (its exception in
    its place) and the others are stored; if the batch lost the connection (the server
    restarted, PgBouncer let it go), row by row on a new one."""
    observe_safely(WEBHOOK_INGEST_BATCH, len(rows))
    try:
        return insert_many_unless_stored(rows, _STORED_EVENT, ("provider", "event_id"))
    except DatabaseError:
        if len(rows) == 1:
            raise
    # As at the end of a request: a connection the error left unusable is closed (the next
    # statement opens another); one that only refused the statement is kept.
    connection.close_if_unusable_or_obsolete()
    results = []
    for row in rows:
        try:
            results.append(insert_unless_stored(row, _STORED_EVENT))
        except DatabaseError as exc:
            results.append(exc)
    return results


_INGEST_WRITER = Coalescer(_store_batch, name="webhook ingest")


def _process_in_place_on_commit(event_pk: int) -> None:
    """Without a broker (development: tasks run in this process) no worker runs a
    dispatcher, so the event is processed here once its row is committed. With a broker this
    does nothing: the dispatcher queues the event."""
    if not runs_in_place():
        return

    def process_webhook_event():
        task_send("payments.tasks.process_webhook_event", args=[event_pk])

    transaction.on_commit(process_webhook_event, robust=True)


def _kept_headers(headers: Mapping[str, str], *, request_id: str = "") -> dict:
    """The headers worth keeping, and the id the logs know the request by (``x-request-id``:
    the worker that processes the event logs it too, whoever queued the event)."""
    kept = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in KEPT_HEADERS or lowered.startswith(KEPT_HEADER_PREFIXES):
            kept[lowered] = value
    if request_id:
        kept[REQUEST_ID_HEADER] = request_id
    return dict(sorted(kept.items()))


# --- processing (in the task) ---------------------------------------------------------------


def webhook_process(*, event_pk: int, unrecorded_error: str = "") -> str:
    """Process one stored event once; returns its status afterwards.

    Every failure, the database's own included, is recorded on the event (attempts, error,
    FAILED and when the next attempt is due) and raises WebhookRetry while another attempt
    may help (up to ``PAYMENTS_WEBHOOK_MAX_ATTEMPTS``). When the database cannot take the
    record, WebhookRetry says so (``recorded=False``) and the caller passes the error back
    as ``unrecorded_error`` on the next attempt, which records it first.
    """
    try:
        if unrecorded_error:
            _record_failure(event_pk, unrecorded_error)
        # The lease: until it runs out, the sweep leaves this attempt alone.
        leased = _lease(event_pk)
        if leased is None:
            row = WebhookEvent.objects.filter(pk=event_pk).only("status").first()
            return row.status if row else "missing"
        normalized, request_id, by_ref = leased
        event = event_from_json(normalized)
        if request_id:  # the delivery's request, whoever queued the event
            set_log_context(request_id=request_id)
        set_log_context(webhook_event_id=event.event_id)
        order, status, refunds = None, None, None
        if event.kind in ORDER_KINDS:
            order = find_order(event, by_ref=by_ref)
            if order is not None:
                set_log_context(order_id=order.pk)
            status = _ask_provider(event, order)
            refunds = _ask_refunds(event, order)
        extra = {}
        if event.kind in SUBSCRIPTION_KINDS:
            extra["facts"] = subscription_fetch(
                provider_name=event.provider,
                subscription_id=event.subscription_id,
                invoice_id=event.invoice_id,
            )
        with transaction.atomic(durable=True):
            row = _locked_event(event_pk)
            if row.status in DONE:
                return row.status
            handler = HANDLERS.get(event.kind, handle_ignored)
            outcome = handler(event=event, order=order, status=status, refunds=refunds, **extra)
            row.status = outcome.status
            row.order = order
            row.attempts += 1
            row.last_error = "" if outcome.status == WebhookEvent.Status.PROCESSED else outcome.note
            row.processed_at = timezone.now()
            row.next_attempt_at = None
            update_fields(row, SETTLED_FIELDS)
        logger.info("webhook %s %s %s: %s", row.provider, row.type, row.event_id, outcome.note)
        count_safely(WEBHOOKS_PROCESSED, row.provider, row.status)
        return row.status
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the event
        error = f"{type(exc).__name__}: {exc}"
        count_safely(WEBHOOKS_PROCESSED, "", WebhookEvent.Status.FAILED)
        # The error says whether trying again may help (a mismatch, an impossible transition or
        # a provider's final refusal do not); anything unexpected is tried again.
        retryable = is_retryable(exc)
        try:
            attempts, status = _record_failure(event_pk, error, retryable=retryable)
        except DatabaseError as db_exc:
            # Nothing can be written now. The row keeps its lease, so the sweep queues the
            # event again once it runs out; the caller's retry carries the error along.
            logger.error(
                "webhook event %s: attempt failed (%s) and could not be recorded: %s",
                event_pk,
                error,
                db_exc,
            )
            raise WebhookRetry(error, attempts=1, recorded=False) from exc
        if (
            status == WebhookEvent.Status.FAILED
            and retryable
            and attempts < app_settings.webhook_max_attempts()
        ):
            raise WebhookRetry(error, attempts=attempts) from exc
        return status


#: What settling an event writes.
SETTLED_FIELDS = ("status", "order", "attempts", "last_error", "processed_at", "next_attempt_at")


def _event_to_settle(event_pk: int):
    # The columns processing needs, not the stored body and headers.
    return (
        WebhookEvent.objects.select_for_update()
        .only("status", "attempts", "provider", "type", "event_id")
        .order_by()  # one row by its key
        .filter(pk=event_pk)
    )


def _locked_event(event_pk: int) -> WebhookEvent:
    """Lock the event's row and read it (the statement compiled once per process)."""
    return get_compiled(_event_to_settle, event_pk)


# The lease, and the order the event names by our reference, read along (find_order's
# first lookup) when that reference is a plain number: one round trip for both.
#
# Run on its own (its own transaction), the lease commits without waiting for the WAL to
# reach the disk: it only keeps the sweep away while the provider is asked, and were it lost
# in a crash, the event would be due sooner and processed again, which changes nothing (the
# processing locks the row and handles an event once). Inside a caller's transaction the
# setting is left as it is.
_LEASE = """
WITH leased AS (
    UPDATE payments_webhookevent SET next_attempt_at = %s
     WHERE id = %s AND status NOT IN (%s, %s)
    RETURNING normalized, headers ->> %s AS request_id
)
SELECT leased.normalized, leased.request_id,
       set_config('synchronous_commit',
                  CASE WHEN %s THEN 'off' ELSE current_setting('synchronous_commit') END,
                  true),
       {columns}
  FROM leased LEFT JOIN payments_order AS o
    ON o.id = CASE WHEN leased.normalized ->> 'order_ref' ~ '^[0-9]{{1,18}}$'
                   THEN (leased.normalized ->> 'order_ref')::bigint END
   AND o.provider = leased.normalized ->> 'provider'
"""


@functools.cache
def _lease_statement() -> tuple[str, tuple[str, ...]]:
    fields = Order._meta.concrete_fields
    columns = ", ".join(f"o.{connection.ops.quote_name(f.column)}" for f in fields)
    return _LEASE.format(columns=columns), tuple(f.attname for f in fields)


#: find_order has not looked the order up by its reference yet.
NOT_READ = object()


def read_along(order_ref: str) -> bool:
    """Whether the lease read the order named by ``order_ref`` along (the reference is the
    plain number the statement takes; any other reference is looked up on its own)."""
    return order_ref.isascii() and order_ref.isdigit() and len(order_ref) <= 18


def _lease(event_pk: int) -> tuple[dict, str, object] | None:
    """Lease an event not settled yet and read its stored reading, its delivery's request
    id and the order its reference names (None: no such order of its provider; NOT_READ:
    the reference is not a plain number), in one round trip; None when it is settled or
    gone."""
    sql, attnames = _lease_statement()
    own_transaction = connection.get_autocommit() and not connection.in_atomic_block
    with prepared_cursor() as cursor:
        cursor.execute(
            sql,
            [
                timezone.now() + app_settings.webhook_lease(),
                event_pk,
                *DONE,
                REQUEST_ID_HEADER,
                own_transaction,
            ],
        )
        found = cursor.fetchone()
    if found is None:
        return None
    value, request_id, _commit_setting, *order = found
    normalized = json.loads(value) if isinstance(value, str) else value
    by_ref = NOT_READ
    if read_along(str(normalized.get("order_ref") or "")):
        by_ref = None if order[0] is None else Order.from_db(DEFAULT_DB_ALIAS, attnames, order)
    return normalized, request_id or "", by_ref


def webhook_replay(*, event_pk: int) -> None:
    """Make a stored event due again (staff replay): a FAILED event gets a fresh set of
    attempts. The dispatcher queues it within a fraction of a second, as it queues a new
    delivery; the replay itself never waits on the broker."""
    WebhookEvent.objects.filter(pk=event_pk, status=WebhookEvent.Status.FAILED).update(
        status=WebhookEvent.Status.RECEIVED, attempts=0
    )
    WebhookEvent.objects.filter(pk=event_pk).exclude(status__in=DONE).update(
        next_attempt_at=timezone.now()
    )
    _process_in_place_on_commit(event_pk)


# --- dispatch (in the workers; the sweep) ---------------------------------------------------

# Claim due events, oldest due first, leasing each forward: in one statement, committed on
# its own. Rows locked by a running attempt or by another dispatcher are skipped, and a row
# another dispatcher claimed meanwhile no longer matches (its lease is in the future), so
# two dispatchers never claim the same event. MATERIALIZED: the locking read runs once.
_CLAIM = """
WITH due AS MATERIALIZED (
    SELECT id FROM payments_webhookevent
     WHERE status IN (%s, %s) AND next_attempt_at <= %s
     ORDER BY next_attempt_at
     LIMIT %s
       FOR UPDATE SKIP LOCKED
)
UPDATE payments_webhookevent AS event SET next_attempt_at = %s
  FROM due WHERE event.id = due.id
RETURNING event.id
"""

# Give a claim back when its messages could not be sent: each event is due again at once,
# unless something else moved it since (its attempt started, it was settled).
_RELEASE = """
UPDATE payments_webhookevent SET next_attempt_at = %s
 WHERE id = ANY(%s) AND next_attempt_at = %s AND status IN (%s, %s)
"""


def webhook_dispatch(*, limit: int | None = None, due_before=None) -> int:
    """Claim up to ``limit`` events due by ``due_before`` (now) and queue their processing,
    all messages sent together; returns how many were queued.

    Each claimed event is leased forward first, so no dispatcher or sweep claims it again
    while its message waits. When the messages cannot be sent (the broker is down) the
    claim is given back, the events are due again and the error is raised; were even that
    impossible, the lease runs out and they are due again then. A duplicate message is
    harmless: processing leases the row, locks it and handles an event once.
    """
    limit = limit or app_settings.webhook_dispatch_batch()
    now = timezone.now()
    lease_until = now + app_settings.webhook_lease()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, [*DUE_STATUSES, due_before or now, limit, lease_until])
        pks = sorted(row[0] for row in cursor.fetchall())
    if not pks:
        return 0
    try:
        _queue(pks)
    except Exception:
        try:
            with connection.cursor() as cursor:
                cursor.execute(_RELEASE, [timezone.now(), pks, lease_until, *DUE_STATUSES])
        except DatabaseError:
            logger.warning("could not give back %s claimed webhook events", len(pks))
        raise
    return len(pks)


#: A claim of fewer events than this goes out one message per event; a larger one in
#: batches, still at least this many messages, so that a pool of threads shares the work.
SPREAD = 8
#: The most events one message carries.
BATCH_MAX = 10


def _queue(pks: list[int]) -> None:
    """Send the messages that process the events ``pks``: one per event, or under load a
    message per batch of events (``process_webhook_events``), so that a worker pays a
    message's costs (receiving, acknowledging, its task's bookkeeping) once per batch."""
    size = min(BATCH_MAX, len(pks) // SPREAD)
    if size <= 1:
        tasks_send("payments.tasks.process_webhook_event", [[pk] for pk in pks])
        return
    count = -(-len(pks) // size)  # batches of ``size``, the last one smaller
    batches = [pks[i::count] for i in range(count)]
    tasks_send("payments.tasks.process_webhook_events", [[batch] for batch in batches])


#: The dispatcher takes a due event within a fraction of a second; the sweep takes only
#: events due for longer than this (no dispatcher runs, or it fell behind or failed).
SWEEP_GRACE = timedelta(seconds=5)


def webhook_requeue_stuck(*, limit: int = 500) -> int:
    """The sweep: queue every event overdue by more than ``SWEEP_GRACE``, RECEIVED or FAILED
    alike (nothing dispatched it, its message was lost, its worker died, or its retry lived
    only in a dead worker's memory), through the dispatcher's own claim.

    Rows locked by a running attempt are skipped. A duplicate message is harmless:
    processing locks the row and handles an event once.
    """
    count = webhook_dispatch(limit=limit, due_before=timezone.now() - SWEEP_GRACE)
    if count:
        logger.warning("re-queued %s overdue webhook events", count)
    return count


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt: doubling from the base, at most an hour."""
    return min(3600, app_settings.webhook_retry_base_seconds() * 2 ** max(0, attempts - 1))


# The provider's orders by one column, the first in the model's order: each statement is
# compiled once per process (select_compiled).


def _order_by_pk(provider: str, pk: int):
    return Order.objects.filter(provider=provider).filter(pk=pk)[:1]


def _order_by_checkout(provider: str, provider_order_id: str):
    return Order.objects.filter(provider=provider).filter(provider_order_id=provider_order_id)[:1]


def _order_by_payment(provider: str, provider_payment_id: str):
    return Order.objects.filter(provider=provider).filter(provider_payment_id=provider_payment_id)[
        :1
    ]


def _first(build, *params) -> Order | None:
    found = select_compiled(build, *params)
    return found[0] if found else None


def find_order(event: NormalizedEvent, *, by_ref=NOT_READ) -> Order | None:
    """The order an event is about: by our reference, else the provider's checkout or payment id.

    ``by_ref``: the order the reference names, when it was read already (None: none)."""
    if event.order_ref:
        if by_ref is not NOT_READ:
            order = by_ref
        elif event.order_ref.isdigit():
            order = _first(_order_by_pk, event.provider, int(event.order_ref))
        else:
            order = None
        if (
            order is not None
            and event.provider_order_id
            and order.provider_order_id
            and order.provider_order_id != event.provider_order_id
        ):
            raise PaymentMismatch(
                f"Event {event.event_id} names order #{order.pk} but checkout "
                f"{event.provider_order_id}, not {order.provider_order_id}."
            )
        if order is not None:
            return order
    if event.provider_order_id:
        order = _first(_order_by_checkout, event.provider, event.provider_order_id)
        if order is not None:
            return order
    if event.provider_payment_id:
        return _first(_order_by_payment, event.provider, event.provider_payment_id)
    return None


#: Kinds whose handling does not depend on the payment's state: when the provider cannot be
#: asked, they are handled anyway (a refund is recorded and applied once the payment is seen).
STATUS_OPTIONAL = frozenset(
    {EventKind.REFUNDED, EventKind.DISPUTE_OPENED, EventKind.DISPUTE_CLOSED}
)


def _ask_provider(event: NormalizedEvent, order: Order | None) -> PaymentStatus | None:
    """What the provider says about an order not fulfilled yet (asked outside any transaction)."""
    if order is None or order.is_fulfilled:
        return None
    if not order.provider_order_id and event.provider_order_id:
        # The checkout was created but its id never reached us (a crash after the API call).
        Order.objects.filter(pk=order.pk, provider_order_id__isnull=True).update(
            provider_order_id=event.provider_order_id
        )
        order.refresh_from_db()
    try:
        return fetch_payment_status(order=order)
    except ProviderError as exc:
        if event.kind not in STATUS_OPTIONAL:
            raise
        logger.warning(
            "order %s: could not ask the provider (%s); handling %s without it",
            order.pk,
            exc,
            event.type,
        )
        return None


def _ask_refunds(event: NormalizedEvent, order: Order | None) -> RefundState | None:
    """For a refund event, every refund of the order's payment as the provider has it now
    (asked outside any transaction). The event's own numbers may be older than a refund that
    failed since: delivery is at-least-once and unordered, so the object is read again."""
    if order is None or event.kind not in REFUND_KINDS:
        return None
    return get_provider(order.provider).refund_state(
        order=order, payment_id=event.provider_payment_id
    )


def _record_failure(event_pk: int, error: str, *, retryable: bool = True) -> tuple[int, str]:
    """Write a failed attempt on the event: FAILED, the error, one more attempt, and when the
    next attempt is due (the backoff plus the lease), or none when it failed for good.

    Returns the attempts and the status afterwards. An event settled meanwhile (a duplicate
    delivery processed it) is left as it is.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        # After a lost connection or a failed query, start again on a usable one.
        connection.close_if_unusable_or_obsolete()
    with transaction.atomic():
        row = WebhookEvent.objects.select_for_update().filter(pk=event_pk).first()
        if row is None:
            return 0, "missing"
        if row.status in DONE:
            return row.attempts, row.status
        row.attempts += 1
        row.last_error = error[:4000]
        row.status = WebhookEvent.Status.FAILED
        if retryable and row.attempts < app_settings.webhook_max_attempts():
            row.next_attempt_at = (
                timezone.now()
                + timedelta(seconds=retry_delay(row.attempts))
                + app_settings.webhook_lease()
            )
            logger.warning(
                "webhook %s %s attempt %s failed: %s",
                row.provider,
                row.event_id,
                row.attempts,
                row.last_error,
            )
        else:
            # Failed for good: nothing will try again; staff see it FAILED with no next
            # attempt in the admin and may replay it.
            row.next_attempt_at = None
            logger.error(
                "webhook %s %s failed for good after %s attempts: %s",
                row.provider,
                row.event_id,
                row.attempts,
                row.last_error,
            )
        row.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
        return row.attempts, row.status


# --- the stored, provider-neutral reading of an event ---------------------------------------


def event_to_json(event: NormalizedEvent) -> dict:
    data = {}
    for f in dataclasses.fields(event):
        if f.name == "raw":
            continue
        value = getattr(event, f.name)
        data[f.name] = str(value) if isinstance(value, Decimal) else value
    data["kind"] = str(event.kind)
    return data


def event_from_json(data: dict) -> NormalizedEvent:
    values = dict(data)
    values["kind"] = EventKind(values.get("kind", EventKind.IGNORED))
    for name in ("amount", "amount_refunded"):
        if values.get(name) not in (None, ""):
            values[name] = Decimal(values[name])
    known = {f.name for f in dataclasses.fields(NormalizedEvent)}
    return NormalizedEvent(**{k: v for k, v in values.items() if k in known})
