"""Errors of the generations app. Views turn them into a message; tasks into a retry or a failure."""

from core import errors


class GenerationsError(errors.ApplicationError):
    """A request about a generation job that cannot be carried out. Nothing was changed."""

    code = "generations_error"


class InvalidRequest(GenerationsError, ValueError):
    """The job request itself is wrong (unknown operation, empty prompt, bad parameter)."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, extra={"field": field} if field else None)
        self.field = field


class NoPriceRule(GenerationsError):
    """No active price rule covers the request, so it cannot be priced or run."""

    code = "no_price_rule"


class TooManyRunningJobs(GenerationsError):
    code = "too_many_running_jobs"
    status = 429
    retryable = True

    def __init__(self, *, limit: int):
        self.limit = limit
        super().__init__(
            f"You already have {limit} job{'s' if limit != 1 else ''} waiting or running. "
            "Wait for one to finish, or cancel one, then try again."
        )


class InvalidTransition(GenerationsError, errors.InvalidTransition):
    """A job cannot move from its status to the one asked for (409)."""

    code = "invalid_transition"
    status = 409

    def __init__(self, *, job_id, current: str, target: str):
        super().__init__(
            f"Job #{job_id} is {current.lower()} and cannot become {target.lower()}.",
            current=current,
            target=target,
        )


class AlreadyRetried(InvalidTransition):
    """A failed job runs again at most once."""

    code = "already_retried"

    def __init__(self, *, job_id, retry_id):
        self.retry_id = retry_id
        errors.InvalidTransition.__init__(
            self,
            f"Job #{job_id} was already retried as job #{retry_id}: a failed job runs again only once.",
            current="retried",
            target="retried again",
            extra={"retry_id": retry_id},
        )


class NotAllowed(GenerationsError, errors.PermissionMissing):
    """The person asking lacks the permission the action needs."""

    code = "permission_denied"
    status = 403


class ApiKeyUnavailable(GenerationsError):
    """The user's stored API key is missing or can no longer be decrypted."""

    code = "api_key_unavailable"
