"""Celery tasks of the payments app. Thin: each calls one service."""

import importlib.util
import logging

from celery import shared_task

from core.queue import sent_together, task_send

from .autotopup import autotopup_attempts_due
from .autotopup_charge import autotopup_charge
from .exceptions import PaymentsError, ProviderError
from .refunds import order_refund_closed_account
from .subscription_notices import subscriptions_renewing_notify
from .webhooks import WebhookRetry, retry_delay, webhook_process, webhook_requeue_stuck

logger = logging.getLogger(__name__)


@shared_task(
    bind=True, name="payments.tasks.process_webhook_event", max_retries=None, acks_late=True
)
def process_webhook_event(self, event_pk: int, unrecorded_error: str = "") -> str:
    """Process one stored webhook event. A failed attempt is retried here after its backoff
    (the fast path); the event's ``next_attempt_at`` lets a dispatcher (or the sweep) queue
    it again should this worker die first."""
    try:
        return webhook_process(event_pk=event_pk, unrecorded_error=unrecorded_error)
    except WebhookRetry as exc:
        if self.request.is_eager:
            # No broker (development): nothing would run the retry; the event stays FAILED
            # with its error and its next attempt for the sweep or staff.
            return "FAILED"
        attempts = max(exc.attempts, self.request.retries + 1)
        raise self.retry(
            exc=exc,
            countdown=retry_delay(attempts),
            args=(event_pk,),
            kwargs={"unrecorded_error": "" if exc.recorded else str(exc)},
        ) from None


@shared_task(name="payments.tasks.process_webhook_events", acks_late=True)
def process_webhook_events(event_pks: list[int]) -> list[str]:
    """Process several stored webhook events, one after the other (a busy dispatcher queues
    them in small batches: a worker then takes one message per batch, not one per event).

    Each event is processed as ``process_webhook_event`` processes it. An attempt that failed
    and may succeed later is retried by a message of its own after its backoff; were that
    message lost, the event's ``next_attempt_at`` brings it back through the dispatcher. An
    event is never held back by another: whatever one raises, the next is processed."""
    outcomes = []
    try:
        # The batch's messages (receipts to send, retries) go out together when it ends.
        with sent_together():
            _process_each(event_pks, outcomes)
    except Exception as exc:  # noqa: BLE001 - the outbox's sweep and the rows bring them back
        logger.warning("webhook batch %s: messages not sent: %s", event_pks, exc)
    return outcomes


def _process_each(event_pks: list[int], outcomes: list[str]) -> None:
    for event_pk in event_pks:
        try:
            outcomes.append(webhook_process(event_pk=event_pk))
        except WebhookRetry as exc:
            outcomes.append("FAILED")
            if process_webhook_events.request.is_eager:
                continue  # no broker: the event waits for the sweep or staff, as above
            try:
                task_send(
                    "payments.tasks.process_webhook_event",
                    args=[event_pk, "" if exc.recorded else str(exc)],
                    countdown=retry_delay(exc.attempts),
                )
            except Exception as send_exc:  # noqa: BLE001 - the row brings it back
                logger.warning("webhook event %s: retry not queued: %s", event_pk, send_exc)
        except Exception:  # noqa: BLE001 - its lease runs out and the dispatcher requeues it
            logger.exception("webhook event %s: processing stopped", event_pk)
            outcomes.append("error")


@shared_task(name="payments.tasks.requeue_stuck_webhook_events")
def requeue_stuck_webhook_events() -> int:
    """Beat: queue every event left overdue, whatever its state (the fallback behind the
    workers' dispatchers)."""
    return webhook_requeue_stuck()


@shared_task(name="payments.tasks.refund_closed_account_order")
def refund_closed_account_order(order_id: int) -> str:
    """Give back a payment that arrived after its buyer closed the account. A provider that
    fails is logged: the next fulfilment attempt (reconciliation) queues this again."""
    try:
        return order_refund_closed_account(order_id=order_id).status
    except PaymentsError as exc:
        logger.warning("refunding order %s of a closed account failed: %s", order_id, exc)
        return "FAILED"


@shared_task(bind=True, name="payments.tasks.run_auto_topup", max_retries=5, acks_late=True)
def run_auto_topup(self, attempt_id: int) -> str:
    """Charge an automatic purchase after the spend that started it committed. An outage is
    retried with backoff here; the sweep runs it again if this task is lost."""
    try:
        return autotopup_charge(attempt_id=attempt_id)
    except ProviderError as exc:
        if exc.retryable and not self.request.is_eager:
            raise self.retry(countdown=30 * 2**self.request.retries) from exc
        logger.warning("auto top-up %s: %s (the sweep tries again)", attempt_id, exc)
        return "error"


@shared_task(name="payments.tasks.retry_auto_topups")
def retry_auto_topups() -> int:
    """Beat: run the charge again for automatic purchases still in flight (a lost task)."""
    due = autotopup_attempts_due()
    for attempt_id in due:
        run_auto_topup.delay(attempt_id)
    return len(due)


@shared_task(name="payments.tasks.notify_renewing_subscriptions")
def notify_renewing_subscriptions() -> int:
    """Beat: the renewal reminder of each membership renewing within a few days, once a period."""
    return subscriptions_renewing_notify()


# Reconciliation keeps its tasks in its own module; importing it here lets Celery's
# autodiscovery (which looks at tasks.py) register them.
if importlib.util.find_spec("payments.reconciliation_tasks") is not None:
    from . import reconciliation_tasks  # noqa: E402,F401
