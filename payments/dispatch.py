"""The webhook dispatcher: a thread in every worker that reads the webhooks queue.

A stored webhook event is due at once (``webhook_ingest`` sends no message); this thread
calls ``webhook_dispatch`` every ``PAYMENTS_WEBHOOK_DISPATCH_SECONDS`` (0.2 by default) and
at once again after a full batch, so an event waits a fraction of a second before its
message is queued. Each poll is one statement on the partial index of due events
(``payments_webhook_due``); claims never overlap, so any number of workers may run one.

It is a Celery worker bootstep (registered in config/celery_app.py): every ``celery worker``
whose queues include the one ``payments.tasks.process_webhook_event`` is routed to starts it,
whatever started the worker (compose, the scripts, the benchmarks, the tests), and stops it on
shutdown. Nothing runs where tasks run in place (no broker), nor with the setting at 0: then
the beat sweep alone queues due events, every ``BEAT_REQUEUE_STUCK_WEBHOOK_EVENTS_SECONDS``.

When the broker or the database is down, the failed poll is logged once, the claim is given
back (or its lease runs out), and the thread waits longer between polls (doubling, at most
``MAX_BACKOFF_SECONDS``) until a poll succeeds again.
"""

import logging
import threading

from celery import bootsteps
from django.db import connection

from . import app_settings

logger = logging.getLogger(__name__)

TASK = "payments.tasks.process_webhook_event"
MAX_BACKOFF_SECONDS = 5.0


class Dispatcher:
    """The polling loop, in a daemon thread of its own (with its own database connection and
    broker producer)."""

    def __init__(self, name: str = "webhook-dispatcher"):
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self) -> "Dispatcher":
        self.thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def run(self) -> None:
        from .webhooks import webhook_dispatch

        failures = 0
        try:
            while not self.stopping.is_set():
                interval = app_settings.webhook_dispatch_seconds() or 1.0
                batch = app_settings.webhook_dispatch_batch()
                try:
                    sent = webhook_dispatch(limit=batch)
                except Exception as exc:  # noqa: BLE001 - logged; the poll is tried again
                    failures += 1
                    if failures == 1:
                        logger.warning("webhook dispatch failed, trying again: %s", exc)
                    # A lost database connection is opened anew on the next poll.
                    connection.close_if_unusable_or_obsolete()
                    self.stopping.wait(min(MAX_BACKOFF_SECONDS, interval * 2**failures))
                    continue
                if failures:
                    logger.warning("webhook dispatch works again after %s failed polls", failures)
                    failures = 0
                if sent:
                    logger.debug("queued %s webhook events", sent)
                if sent < batch:
                    self.stopping.wait(interval)
        finally:
            connection.close()


def should_run(app) -> bool:
    """Whether a worker of ``app`` runs the dispatcher: a broker, the setting above 0, and
    the webhook task's queue among those the worker reads."""
    if app.conf.task_always_eager or not app_settings.webhook_dispatch_seconds():
        return False
    queue = app.amqp.router.route({}, TASK, args=(), kwargs={})["queue"]
    return queue.name in app.amqp.queues.consume_from


class DispatchStep(bootsteps.StartStopStep):
    """Runs the dispatcher alongside the worker's consumer."""

    label = "webhook dispatcher"

    def __init__(self, worker, **kwargs):
        self.dispatcher: Dispatcher | None = None
        super().__init__(worker, **kwargs)

    def start(self, worker):
        if should_run(worker.app):
            self.dispatcher = Dispatcher().start()
            logger.info(
                "webhook dispatcher started (every %ss)", app_settings.webhook_dispatch_seconds()
            )

    def stop(self, worker):
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None

    terminate = stop
