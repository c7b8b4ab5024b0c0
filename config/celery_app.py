"""The Celery application, configured from Django settings (the CELERY_ namespace).

JSON only, acks_late with reject-on-worker-lost, prefetch 1 and time limits are set in
config/settings/base.py. Without a broker configured, tasks run in-process (eager). A
``redis://`` broker goes through config/redis_transport.py (kombu's transport with the fault
that ended a busy worker when Redis went away fixed). The periodic tasks and their intervals
are in config/settings/base.py (``CELERY_BEAT_SCHEDULE``, intervals from the environment).
A worker that reads the webhooks queue also runs the webhook dispatcher, and one that reads
the generations queue the job dispatcher (bootsteps, core/dispatch.py).
"""

import os

from celery import Celery

# config/__init__.py imports this module, so this default also applies to gunicorn and
# anything else that imports `config` without DJANGO_SETTINGS_MODULE: production, which
# refuses to start without its secrets, rather than DEBUG settings. manage.py sets the
# development settings first; a local worker is started with
# DJANGO_SETTINGS_MODULE=config.settings.dev celery -A config worker.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker that reads the webhooks queue queues due webhook events (payments/dispatch.py),
# and every worker that reads the generations queue queues due jobs (generations/dispatch.py).
app.steps["worker"].add("payments.dispatch:DispatchStep")
app.steps["worker"].add("generations.dispatch:DispatchStep")


def _kept_connections() -> None:
    """A worker keeps its database connections from task to task, as a web process keeps them
    from request to request.

    Celery's Django fix-up closes every connection before and after each task unless
    ``CELERY_DB_REUSE_MAX`` is set, so each task paid for a new server session: connecting,
    authenticating, a cold backend and the ledger's statements prepared again. It is set
    (config/settings/base.py), so the fix-up closes them only every that many tasks, and
    otherwise a connection goes when Django's request cycle would let it go: before and after
    each task ``close_old_connections`` closes it once it is older than ``CONN_MAX_AGE``,
    after an error that left it unusable, or when the task did not restore autocommit; the
    first query of each task checks it (``CONN_HEALTH_CHECKS``, without a round trip:
    core/postgresql), so one the server closed meanwhile is replaced. A forked pool child
    still drops the connections it inherited (the fix-up does that whatever the setting)."""
    from celery.signals import task_postrun, task_prerun
    from django.db import close_old_connections

    def between_tasks(sender=None, **_):
        # A task run in place (no broker, or apply()) is part of its caller's request or
        # transaction: its connection is the caller's to keep.
        if not getattr(sender.request, "is_eager", False):
            close_old_connections()

    task_prerun.connect(between_tasks, weak=False)
    task_postrun.connect(between_tasks, weak=False)


_kept_connections()


def _observability() -> None:
    """Log lines of a task carry the ids of the request that sent it (core/logs.py); a worker
    serves its metrics on WORKER_METRICS_PORT when that is set (core/metrics.py)."""
    from celery.signals import worker_ready

    from core.logs import connect_celery

    connect_celery()

    @worker_ready.connect(weak=False)
    def serve_metrics(**_):
        port = os.environ.get("WORKER_METRICS_PORT")
        if not port:
            return
        from prometheus_client import start_http_server

        from core.metrics import registry

        start_http_server(int(port), registry=registry())


_observability()


def _frozen_heap() -> None:
    """Once a worker is ready, everything it has loaded (modules, classes, Django's app
    registry, compiled statements) leaves the garbage collector's sight (``gc.freeze``).

    Those objects live as long as the process, yet every full collection walked them all
    again: with the tasks' own short-lived objects triggering collections all the time, a
    busy worker spent a noticeable part of each task there. A pool child forked later starts
    from the frozen heap (and shares its pages with the parent for longer); it freezes what
    it builds on its own start too."""
    import gc

    from celery.signals import worker_process_init, worker_ready

    def freeze(**_):
        gc.collect()
        gc.freeze()

    worker_ready.connect(freeze, weak=False)
    worker_process_init.connect(freeze, weak=False)


_frozen_heap()
