"""The job dispatcher: a thread in every worker that reads the generations queue.

It calls ``queue.jobs_dispatch`` every ``GENERATIONS_DISPATCH_SECONDS`` (0.2 by default) and
at once again after a full batch, so a submitted job waits a fraction of a second before its
task is queued, and the request that submitted it does not wait for the broker. It is a
Celery worker bootstep (registered in config/celery_app.py; the loop is ``core.dispatch``).
"""

from core import dispatch

from .app_settings import app_settings
from .queue import TASK, jobs_dispatch


def job_dispatcher() -> dispatch.Dispatcher:
    """The job dispatcher, not started yet."""
    return dispatch.Dispatcher(
        what="job",
        poll=jobs_dispatch,
        interval=lambda: app_settings.DISPATCH_SECONDS,
        batch=lambda: app_settings.DISPATCH_BATCH,
    )


def should_run(app) -> bool:
    """Whether a worker of ``app`` runs the dispatcher: a broker, the setting above 0, and
    the job task's queue among those the worker reads."""
    return bool(app_settings.DISPATCH_SECONDS) and dispatch.reads_queue_of(app, TASK)


class DispatchStep(dispatch.DispatchStep):
    label = "job dispatcher"

    def should_run(self, app) -> bool:
        return should_run(app)

    def dispatcher(self) -> dispatch.Dispatcher:
        return job_dispatcher()
