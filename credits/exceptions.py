"""The errors the money services raise. Edges (views, tasks, admin) turn them into messages.

Every one of them means the same thing to the caller: nothing was changed.
"""

from core.errors import ApplicationError


class CreditsError(ApplicationError):
    """Base class: a request about credits that cannot be carried out. Nothing was changed."""

    code = "credits_error"


class InvalidAmount(CreditsError, ValueError):
    """The amount is not a whole number of credits in the range the operation accepts."""

    code = "invalid_amount"


class InvalidKind(CreditsError, ValueError):
    """The ledger kind is unknown, or not one this operation may write."""

    code = "invalid_kind"


class InvalidIdempotencyKey(CreditsError, ValueError):
    """The idempotency key is empty, not a string, or too long to store."""

    code = "invalid_idempotency_key"


class StaffRequired(CreditsError, PermissionError):
    """Only a staff member may do this (for example a manual adjustment)."""

    code = "staff_required"
    status = 403


class InsufficientCredits(CreditsError):
    code = "insufficient_credits"
    status = 402
    retryable = True  # a purchase or a refund may cover it later

    def __init__(self, *, needed: int, available: int):
        self.needed = needed
        self.available = available
        super().__init__(
            f"Not enough credits: this needs {needed}, the balance is {available}.",
            extra={"needed": needed, "available": available},
        )


class SpendingFrozen(CreditsError):
    code = "spending_frozen"
    status = 402
    retryable = True  # until the dispute is closed

    def __init__(self, *, reason: str = ""):
        self.reason = reason
        super().__init__("Spending is paused on this account while a payment dispute is open.")


class RefundNotAllowed(CreditsError):
    """The entry is not a spend, was already refunded, or the refund is larger than the spend."""

    code = "refund_not_allowed"
    status = 409


class IdempotencyConflict(CreditsError):
    """The idempotency key was used before for a different operation."""

    code = "idempotency_conflict"
    status = 409
