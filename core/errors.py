"""The one base error, and the one place where errors become responses.

Every app's errors derive from ``ApplicationError``: a refusal raised by a service that
means "nothing was changed". Each carries

- ``message``: what the person asking reads (``str(error)`` is the same text);
- ``code``: a stable machine code (``insufficient_credits``, ``invalid_transition``, ...)
  that the JSON API and the logs use; set on the class, overridable per raise;
- ``status``: the HTTP status a page or the API answers with;
- ``retryable``: whether a task trying the same thing again later may succeed;
- ``extra``: further machine-readable details (shown in JSON answers).

The edges turn them into answers here and nowhere else:

- views: ``ApplicationErrorMiddleware`` (core/middleware.py) answers any error a view lets
  through with ``error_response``: its status and message, as JSON when the client asks for
  JSON, else as a page. A view that re-renders a form puts ``error.message`` on the form
  and answers ``error.status``;
- admin actions: ``admin_error_message`` words the per-object message;
- tasks: ``is_retryable`` decides between a retry and a permanent failure.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A request the application refuses. Nothing was changed."""

    code: str = "error"
    status: int = 400
    retryable: bool = False
    default_message: str = "This request cannot be carried out."

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        extra: dict[str, Any] | None = None,
    ):
        message = message or self.default_message
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.extra = dict(extra or {})

    def as_dict(self) -> dict[str, Any]:
        """The error as the JSON answers carry it."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.extra:
            body["details"] = self.extra
        return {"error": body}


class InvalidTransition(ApplicationError):
    """An object cannot move from its current state to the one asked for.

    The apps raise their own subclass (an order, a job); each carries ``current`` and
    ``target``, and all answer 409.
    """

    code = "invalid_transition"
    status = 409

    def __init__(self, message: str = "", *, current: str = "", target: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.current, self.target = current, target


class PermissionMissing(ApplicationError):
    """The person asking lacks the permission the action needs."""

    code = "permission_denied"
    status = 403


# --- the edges --------------------------------------------------------------------------------


def wants_json(request: HttpRequest) -> bool:
    """Whether the client asked for JSON (an API client, or a script) rather than a page."""
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    """The answer to a request refused with ``error``: its status, its message."""
    if wants_json(request):
        return JsonResponse(error.as_dict(), status=error.status)
    html = render_to_string("error.html", {"error": error}, request=request)
    return HttpResponse(html, status=error.status)


def admin_error_message(error: ApplicationError, *, label: str = "") -> str:
    """The message an admin action shows a staff member for one refused object."""
    return f"{label}: {error.message}" if label else error.message


def is_retryable(error: BaseException, *, unexpected: bool = True) -> bool:
    """Whether a task should try again: the error's own ``retryable``; ``unexpected`` for
    anything outside the hierarchy (a lost connection, a bug): by default it is retried."""
    if isinstance(error, ApplicationError):
        return bool(error.retryable)
    return bool(getattr(error, "retryable", unexpected))


def log_refusal(error: ApplicationError, where: str) -> None:
    logger.info("%s refused (%s, %s): %s", where, error.code, error.status, error.message)
