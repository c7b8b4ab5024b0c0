"""The errors the account services raise. Edges (views, admin) turn them into messages.

Every one of them means the same thing to the caller: nothing was changed.
"""

from core.errors import ApplicationError


class AccountsError(ApplicationError):
    """Base class: a request about an account that cannot be carried out. Nothing was changed."""

    code = "account_error"


class AccountNotDeletable(AccountsError):
    """The account cannot be deleted now (for example a payment or a job is still under way)."""

    code = "account_not_deletable"
    status = 409

    def __init__(self, reasons: list[str]):
        self.reasons = list(reasons)
        super().__init__(" ".join(self.reasons), extra={"reasons": self.reasons})


class ConfirmationFailed(AccountsError):
    """The password (or address) typed to confirm does not match."""

    code = "confirmation_failed"
