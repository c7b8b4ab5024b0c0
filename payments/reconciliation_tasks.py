"""The periodic reconciliation task (beat: hourly). Thin: it calls one service.

Registered under the name the beat schedule uses, ``payments.tasks.reconcile_payments``;
``payments/tasks.py`` imports this module so Celery's autodiscovery finds it.
"""

from celery import shared_task
from django.utils import timezone

from .reconciliation import default_window
from .reconciliation import reconcile_payments as reconcile


@shared_task(name="payments.tasks.reconcile_payments", acks_late=True)
def reconcile_payments() -> dict:
    """Compare the last window (``PAYMENTS_RECONCILE_WINDOW_HOURS``, default 24) with the providers."""
    run = reconcile(since=timezone.now() - default_window())
    return {
        "run": run.pk,
        "status": run.status,
        "discrepancies": len(run.discrepancies),
        "fixed": len(run.fixed),
        "errors": len(run.errors),
    }
