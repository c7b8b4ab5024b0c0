"""Sending a Celery task by its registered name.

A module that queues work (an outbox, a webhook inbox, a job queue) would otherwise import
the tasks module, which imports that module's services back: a circle. Naming the task
keeps the dependency one way (tasks -> services). Each app imports its ``tasks`` module in
``AppConfig.ready``, so its tasks are registered in every process, and a task sent here
behaves as ``task.apply_async`` does: in-process when ``CELERY_TASK_ALWAYS_EAGER``, else
to the broker (an unreachable broker raises as it would there).
"""

from collections.abc import Sequence

from celery import current_app


def task_send(name: str, *, args: Sequence = (), countdown: float | None = None):
    """Send the task registered as ``name`` with ``args``; a name nobody registered is a bug
    (KeyError), never a message no worker would run."""
    task = current_app.tasks[name]
    return task.apply_async(args=list(args), countdown=countdown)
