"""The errors the money services raise. Edges (views, tasks, admin) turn them into messages.

Every one of them means the same thing to the caller: nothing was changed.
"""


class CreditsError(Exception):
    """Base class: a request about credits that cannot be carried out. Nothing was changed."""


class InvalidAmount(CreditsError, ValueError):
    """The amount is not a whole number of credits in the range the operation accepts."""


class InvalidKind(CreditsError, ValueError):
    """The ledger kind is unknown, or not one this operation may write."""


class InvalidIdempotencyKey(CreditsError, ValueError):
    """The idempotency key is empty, not a string, or too long to store."""


class StaffRequired(CreditsError, PermissionError):
    """Only a staff member may do this (for example a manual adjustment)."""


class InsufficientCredits(CreditsError):
    def __init__(self, *, needed: int, available: int):
        self.needed = needed
        self.available = available
        super().__init__(f"Not enough credits: this needs {needed}, the balance is {available}.")


class SpendingFrozen(CreditsError):
    def __init__(self, *, reason: str = ""):
        self.reason = reason
        super().__init__("Spending is paused on this account while a payment dispute is open.")


class RefundNotAllowed(CreditsError):
    """The entry is not a spend, was already refunded, or the refund is larger than the spend."""


class IdempotencyConflict(CreditsError):
    """The idempotency key was used before for a different operation."""
