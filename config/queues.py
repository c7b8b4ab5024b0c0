"""The Celery queues, one per kind of work, and which tasks go to which.

Each queue has a worker service of its own (docker-compose.yml), with its own concurrency and
time limits, so a five-minute generation job can never hold up a payment:

  webhooks     payment provider events and the payment work they lead to (seconds)
  generations  generation jobs (minutes, bounded by the job time limit)
  emails       outgoing email (seconds; an SMTP server can be slow)
  maintenance  periodic sweeps, reconciliation, lot expiry, purges (beat's tasks)

Tasks are routed by name with glob patterns, first match wins, so a task added later lands in
the right queue by naming it after what it does (``*.tasks.send_*email*`` goes to emails). A
task that no pattern matches goes to the default queue (``CELERY_DEFAULT_QUEUE``), which the
maintenance worker also reads.
"""

WEBHOOKS = "webhooks"
GENERATIONS = "generations"
EMAILS = "emails"
MAINTENANCE = "maintenance"
QUEUES = (WEBHOOKS, GENERATIONS, EMAILS, MAINTENANCE)

#: (task name pattern, queue), first match wins. The sweeps come first: a sweep that looks
#: for due emails or webhook events is maintenance, not the work it finds.
ROUTES: tuple[tuple[str, str], ...] = (
    ("*.tasks.requeue_*", MAINTENANCE),
    ("*.tasks.reap_*", MAINTENANCE),
    ("*.tasks.reconcile_*", MAINTENANCE),
    ("*.tasks.expire_*", MAINTENANCE),
    ("*.tasks.purge_*", MAINTENANCE),
    ("*.tasks.send_due_*", MAINTENANCE),
    ("*.tasks.*_sweep*", MAINTENANCE),
    ("payments.tasks.*", WEBHOOKS),
    ("generations.tasks.*", GENERATIONS),
    ("emails.*", EMAILS),
    ("*.tasks.send_*email*", EMAILS),
    ("*.tasks.*_email*", EMAILS),
    ("*.tasks.*mail*", EMAILS),
)


def task_routes(prefix: str = "") -> dict[str, dict]:
    """``CELERY_TASK_ROUTES``: Celery's glob routes, in order. ``prefix`` goes before every
    queue name (``CELERY_QUEUE_PREFIX``: environments or benchmark runs sharing one Redis)."""
    return {pattern: {"queue": prefix + queue} for pattern, queue in ROUTES}


def queue_for(task_name: str) -> str | None:
    """The queue ``task_name`` is routed to, or None for the default queue (as Celery does)."""
    from fnmatch import fnmatchcase

    for pattern, queue in ROUTES:
        if fnmatchcase(task_name, pattern):
            return queue
    return None
