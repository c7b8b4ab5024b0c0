"""Errors of the generations app. Views turn them into a message; tasks into a retry or a failure."""


class GenerationsError(Exception):
    """A request about a generation job that cannot be carried out. Nothing was changed."""


class InvalidRequest(GenerationsError, ValueError):
    """The job request itself is wrong (unknown operation, empty prompt, bad parameter)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NoPriceRule(GenerationsError):
    """No active price rule covers the request, so it cannot be priced or run."""


class TooManyRunningJobs(GenerationsError):
    def __init__(self, *, limit: int):
        self.limit = limit
        super().__init__(
            f"You already have {limit} job{'s' if limit != 1 else ''} waiting or running. "
            "Wait for one to finish, or cancel one, then try again."
        )


class InvalidTransition(GenerationsError):
    def __init__(self, *, job_id, current: str, target: str):
        self.current, self.target = current, target
        super().__init__(f"Job #{job_id} is {current.lower()} and cannot become {target.lower()}.")


class AlreadyRetried(InvalidTransition):
    """A failed job runs again at most once."""

    def __init__(self, *, job_id, retry_id):
        self.retry_id = retry_id
        GenerationsError.__init__(
            self, f"Job #{job_id} was already retried as job #{retry_id}: a failed job runs again only once."
        )
        self.current, self.target = "retried", "retried again"


class NotAllowed(GenerationsError):
    """The person asking lacks the permission the action needs."""


class ApiKeyUnavailable(GenerationsError):
    """The user's stored API key is missing or can no longer be decrypted."""
