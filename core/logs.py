"""Log lines that can be followed across web and workers: request, webhook event, order, job.

Each log record carries ``request_id``, ``webhook_event_id``, ``order_id`` and ``job_id``
(empty when not known) from context variables:

- ``RequestIdMiddleware`` takes the request's id from ``X-Request-ID`` (set by the proxy in
  front; a value that is not a short token is replaced) or makes one, and answers with it;
- a task sent while an id is known carries it in its message headers, and the worker puts it
  back in context while the task runs (``connect_celery``, called from config/celery_app.py);
- services add what they learn with ``log_context(order_id=...)``.

In production the lines are JSON (``LOG_FORMAT=json``, python-json-logger), one object a
line with these fields, so one payment is found by its order id in every process's logs.
"""

import contextvars
import logging
import re
import uuid
from contextlib import contextmanager

FIELDS = ("request_id", "webhook_event_id", "order_id", "job_id")
_vars = {name: contextvars.ContextVar(name, default="") for name in FIELDS}
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
HEADER = "request_id"


def current(name: str) -> str:
    return _vars[name].get()


@contextmanager
def log_context(**fields):
    """Log records inside the block carry ``fields`` (names from FIELDS)."""
    tokens = [(_vars[k], _vars[k].set(str(v) if v is not None else "")) for k, v in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_context(**fields) -> None:
    """Set fields for the rest of this context (a task or a request sets them once)."""
    for k, v in fields.items():
        _vars[k].set(str(v) if v is not None else "")


class ContextFilter(logging.Filter):
    """Adds the context fields to every record (on the handler, so every logger has them)."""

    def filter(self, record):
        for name, var in _vars.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        request.request_id = request_id
        token = _vars["request_id"].set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _vars["request_id"].reset(token)
        response["X-Request-ID"] = request_id
        return response


def connect_celery() -> None:
    """Carry the context in task messages and restore it in the worker running the task."""
    from celery.signals import before_task_publish, task_postrun, task_prerun

    def add_headers(headers=None, **_):
        if headers is None:
            return
        for name in FIELDS:
            value = _vars[name].get()
            if value:
                headers[name] = value

    def restore(task=None, **_):
        request = getattr(task, "request", None)
        for name in FIELDS:
            value = getattr(request, name, None) or ""
            if not value and request is not None:
                value = (getattr(request, "headers", None) or {}).get(name, "")
            _vars[name].set(str(value or ""))

    def clear(**_):
        for var in _vars.values():
            var.set("")

    before_task_publish.connect(add_headers, weak=False)
    task_prerun.connect(restore, weak=False)
    task_postrun.connect(clear, weak=False)
