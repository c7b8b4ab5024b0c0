"""Sending a Celery task by its registered name.

A module that queues work (an outbox, a webhook inbox, a job queue) would otherwise import
the tasks module, which imports that module's services back: a circle. Naming the task
keeps the dependency one way (tasks -> services). Each app imports its ``tasks`` module in
``AppConfig.ready``, so its tasks are registered in every process, and a task sent here
behaves as ``task.apply_async`` does: in-process when ``CELERY_TASK_ALWAYS_EAGER``, else
to the broker (an unreachable broker raises as it would there).

Every send of a web request or a task comes through here, so it is kept cheap:

- each thread keeps one producer on a broker connection of its own, instead of taking one
  from Celery's pool and reviving its channel for every message; a send that fails drops it
  (the next send starts on a fresh connection), and a forked child never uses its parent's;
- the message's ``argsrepr`` (what monitoring shows) is the arguments' plain ``repr``: they
  are ids and short names, nothing that needs Celery's size-bounded ``saferepr``;
- on Redis nothing is declared per message: a message goes straight onto its queue's list
  and each worker declares the queues it reads (other brokers declare as Celery does).

``tasks_send`` sends many messages of one task at once: on Redis they go out pipelined, in
one round trip (kombu's publish batch), and a failure means any of them may or may not have
been delivered.

The database row a message is about stays the source of truth: a message that is lost, or
was never sent, is sent again by the sweeps.
"""

import contextlib
import itertools
import os
import threading
from collections.abc import Sequence

from celery import current_app

_ARGSREPR_MAX = 1024  # Celery's own bound for ``argsrepr``
_kept = threading.local()


def task_send(name: str, *, args: Sequence = (), countdown: float | None = None):
    """Send the task registered as ``name`` with ``args``; a name nobody registered is a bug
    (KeyError), never a message no worker would run. Inside ``sent_together`` the message
    is held until the block ends (and None returned)."""
    task = current_app.tasks[name]
    held = getattr(_kept, "held", None)
    if held is not None and not task.app.conf.task_always_eager:
        held.append((name, list(args), countdown))
        return None
    args = list(args)
    producer, declare = _producer(task.app)  # unused when tasks run in place (eager)
    try:
        return _apply(task, args, producer, declare, countdown=countdown)
    except BaseException:
        _drop_producer()
        raise


def _apply(task, args: list, producer, declare: dict, *, countdown: float | None = None):
    return task.apply_async(
        args=args,
        countdown=countdown,
        producer=producer,
        argsrepr=repr(args)[:_ARGSREPR_MAX],
        kwargsrepr="{}",
        **declare,
    )


def tasks_send(name: str, args_list: Sequence[Sequence]) -> int:
    """Send the task registered as ``name`` once for each argument list, together (one
    pipelined round trip on Redis; one message at a time on other brokers). Returns how many
    were sent; raises as ``task_send`` does, in which case any of them may have gone out."""
    task = current_app.tasks[name]
    if task.app.conf.task_always_eager:
        for args in args_list:
            task_send(name, args=args)
        return len(args_list)
    producer, declare = _producer(task.app)
    try:
        with producer.batch(max_size=max(1, len(args_list))):
            for args in args_list:
                _apply(task, list(args), producer, declare)
    except BaseException:
        _drop_producer()
        raise
    return len(args_list)


@contextlib.contextmanager
def sent_together():
    """Hold the messages this thread sends (``task_send``) until the block ends, then send
    them together: a task that does several units of work (a batch of webhook events) pays
    for one round trip to the broker instead of one per message. A message is never sent
    before the block ends; what is held when sending fails is lost, so only hold messages
    a sweep sends again (an outbox email, a retry the row brings back). Nested blocks send
    when the outermost ends."""
    if getattr(_kept, "held", None) is not None:
        yield
        return
    _kept.held = held = []
    try:
        yield
    finally:
        _kept.held = None
        # In order: each run of messages of one task with no countdown goes in one batch.
        runs = itertools.groupby(held, key=lambda message: (message[0], message[2] is None))
        for (name, batched), messages in runs:
            if batched:
                tasks_send(name, [args for _, args, _ in messages])
            else:
                for _, args, countdown in messages:
                    task_send(name, args=args, countdown=countdown)


def runs_in_place() -> bool:
    """Whether a task sent now runs in this process (no broker: development, most tests)."""
    return bool(current_app.conf.task_always_eager)


def _producer(app):
    """This thread's producer, and the ``declare`` option its sends take. It follows the
    app's connection pool: when that is replaced (the broker changed, a fork), so is it."""
    pool = app.pool
    kept = getattr(_kept, "producer", None)
    if kept is not None and kept[0] is pool:
        return kept[1], kept[2]
    _drop_producer()
    producer = app.amqp.Producer(app.connection_for_write())
    declare = {"declare": ()} if producer.connection.transport.driver_type == "redis" else {}
    _kept.producer = (pool, producer, declare)
    return producer, declare


def _drop_producer() -> None:
    kept = getattr(_kept, "producer", None)
    _kept.producer = None
    if kept is not None:
        try:
            kept[1].connection.release()
        except Exception:  # noqa: BLE001 - a broken connection is being let go anyway
            pass


def _forget_after_fork() -> None:
    """A forked child never writes to its parent's broker connection."""
    global _kept
    _kept = threading.local()


os.register_at_fork(after_in_child=_forget_after_fork)
