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


class SpendingCapReached(CreditsError):
    """The spend would take the credits spent in the current day or month past the user's cap."""

    code = "spending_cap"
    status = 429
    retryable = True  # when the window turns, or the cap is raised

    def __init__(self, *, period: str, cap: int, spent: int, needed: int, resets: str):
        self.period, self.cap, self.spent, self.needed = period, cap, spent, needed
        super().__init__(
            f"This needs {needed} credits and would pass your {period} spending cap of {cap} "
            f"({spent} spent so far; it resets {resets}).",
            extra={"period": period, "cap": cap, "spent": spent, "needed": needed},
        )


class RefundNotAllowed(CreditsError):
    """The entry is not a spend, was already refunded, or the refund is larger than the spend."""

    code = "refund_not_allowed"
    status = 409


class IdempotencyConflict(CreditsError):
    """The idempotency key was used before for a different operation."""

    code = "idempotency_conflict"
    status = 409
