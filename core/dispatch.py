"""Dispatchers: threads in a worker that turn rows due for work into broker messages.

The database says what work is due (a stored webhook event, a submitted job); the request
that stored it sends no message. A dispatcher claims due rows (each claim leases them
forward, so claims never overlap and any number of dispatchers may run) and sends their
messages, every ``interval()`` seconds and at once again after a full batch. The sweeps
(beat) are the fallback when no dispatcher runs or one fell behind.

Each app's dispatcher is a Celery worker bootstep: every ``celery worker`` whose queues
include the one its task is routed to starts it, whatever started the worker (compose, the
scripts, the benchmarks, the tests), and stops it on shutdown. Nothing runs where tasks run
in place (no broker), nor with the app's interval at 0.

When the broker or the database is down, the failed poll is logged once (the claim is given
back, or its lease runs out), and the thread waits longer between polls (doubling, at most
``MAX_BACKOFF_SECONDS``) until a poll succeeds again.
"""

import logging
import threading
from collections.abc import Callable

from celery import bootsteps
from django.db import connection

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0


class Dispatcher:
    """The polling loop, in a daemon thread of its own (with its own database connection and
    broker producer).

    ``poll(limit=n)`` claims up to n due rows, sends their messages and returns how many;
    ``interval()`` and ``batch()`` are read before every poll (0 seconds: poll every second).
    ``what`` names the rows in the log ("webhook", "job").
    """

    def __init__(
        self,
        *,
        what: str,
        poll: Callable[..., int],
        interval: Callable[[], float],
        batch: Callable[[], int],
    ):
        self.what, self.poll, self.interval, self.batch = what, poll, interval, batch
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"{what}-dispatcher", daemon=True)

    def start(self) -> "Dispatcher":
        self.thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def run(self) -> None:
        failures = 0
        try:
            while not self.stopping.is_set():
                interval = self.interval() or 1.0
                batch = self.batch()
                try:
                    sent = self.poll(limit=batch)
                except Exception as exc:  # noqa: BLE001 - logged; the poll is tried again
                    failures += 1
                    if failures == 1:
                        logger.warning("%s dispatch failed, trying again: %s", self.what, exc)
                    # A lost database connection is opened anew on the next poll.
                    connection.close_if_unusable_or_obsolete()
                    self.stopping.wait(min(MAX_BACKOFF_SECONDS, interval * 2**failures))
                    continue
                if failures:
                    logger.warning(
                        "%s dispatch works again after %s failed polls", self.what, failures
                    )
                    failures = 0
                if sent:
                    logger.debug("queued %s %ss", sent, self.what)
                if sent < batch:
                    self.stopping.wait(interval)
        finally:
            connection.close()


def reads_queue_of(app, task: str) -> bool:
    """Whether a worker of ``app`` reads the queue ``task`` is routed to (and has a broker)."""
    if app.conf.task_always_eager:
        return False
    queue = app.amqp.router.route({}, task, args=(), kwargs={})["queue"]
    return queue.name in app.amqp.queues.consume_from


class DispatchStep(bootsteps.StartStopStep):
    """Runs an app's dispatcher alongside the worker's consumer. A subclass sets ``label``
    and says whether this worker runs it (``should_run``) and what it is (``dispatcher``)."""

    def __init__(self, worker, **kwargs):
        self.running: Dispatcher | None = None
        super().__init__(worker, **kwargs)

    def should_run(self, app) -> bool:
        raise NotImplementedError

    def dispatcher(self) -> Dispatcher:
        raise NotImplementedError

    def start(self, worker):
        if self.should_run(worker.app):
            self.running = self.dispatcher().start()
            logger.info("%s started (every %ss)", self.label, self.running.interval())

    def stop(self, worker):
        if self.running is not None:
            self.running.stop()
            self.running = None

    terminate = stop
