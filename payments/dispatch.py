"""The webhook dispatcher: a thread in every worker that reads the webhooks queue.

A stored webhook event is due at once (``webhook_ingest`` sends no message); this thread
calls ``webhook_dispatch`` every ``PAYMENTS_WEBHOOK_DISPATCH_SECONDS`` (0.2 by default) and
at once again after a full batch, so an event waits a fraction of a second before its
message is queued. Each poll is one statement on the partial index of due events
(``payments_webhook_due``); claims never overlap, so any number of workers may run one.

It is a Celery worker bootstep (registered in config/celery_app.py; the loop is
``core.dispatch``): every worker whose queues include the one
``payments.tasks.process_webhook_event`` is routed to starts it. With the setting at 0 the
beat sweep alone queues due events, every ``BEAT_REQUEUE_STUCK_WEBHOOK_EVENTS_SECONDS``.
"""

from core import dispatch

from . import app_settings

TASK = "payments.tasks.process_webhook_event"


def webhook_dispatcher() -> dispatch.Dispatcher:
    """The webhook dispatcher, not started yet."""
    from .webhooks import webhook_dispatch

    return dispatch.Dispatcher(
        what="webhook",
        poll=webhook_dispatch,
        interval=app_settings.webhook_dispatch_seconds,
        batch=app_settings.webhook_dispatch_batch,
    )


def should_run(app) -> bool:
    """Whether a worker of ``app`` runs the dispatcher: a broker, the setting above 0, and
    the webhook task's queue among those the worker reads."""
    return bool(app_settings.webhook_dispatch_seconds()) and dispatch.reads_queue_of(app, TASK)


class DispatchStep(dispatch.DispatchStep):
    label = "webhook dispatcher"

    def should_run(self, app) -> bool:
        return should_run(app)

    def dispatcher(self) -> dispatch.Dispatcher:
        return webhook_dispatcher()
