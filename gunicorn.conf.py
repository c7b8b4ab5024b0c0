"""gunicorn's settings for the web service, read by every gunicorn started in the project's
folder (the image's CMD, compose's web): options on the command line still win.

Threaded workers (gthread): each process serves ``WEB_THREADS`` requests at once (default 8),
so a request waiting on a payment provider's API or on the database does not hold up the
others of its process, and the webhook deliveries a process receives together are stored with
one commit (``payments.webhooks``). ``WEB_CONCURRENCY`` processes (gunicorn's own variable;
compose sets 3). Each thread keeps its own database connection: processes x threads of them
per web container, which PgBouncer pools.
"""

import os

worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
