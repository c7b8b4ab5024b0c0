"""Turns an application error a view lets through into its answer (see core/errors.py)."""

from .errors import ApplicationError, error_response, log_refusal


class ApplicationErrorMiddleware:
    """Answers ``ApplicationError`` with its status and message (a page, or JSON when asked)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, ApplicationError):
            return None
        log_refusal(exception, request.path)
        return error_response(request, exception)
