"""The errors the money services raise. Edges (views, tasks, admin) turn them into messages."""


class CreditsError(Exception):
    """Base class: a request about credits that cannot be carried out. Nothing was changed."""


class InvalidAmount(CreditsError, ValueError):
    pass


class InvalidKind(CreditsError, ValueError):
    pass


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
    pass


class IdempotencyConflict(CreditsError):
    """The idempotency key was used before for a different operation."""
