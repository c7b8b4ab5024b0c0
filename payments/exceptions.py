"""Errors of the payments app. Edges turn them into a message, a 4xx, or a retry."""


class PaymentsError(Exception):
    pass


class ProviderError(PaymentsError):
    """The provider refused or failed a call. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False, provider: str = "", code: str = ""):
        super().__init__(message)
        self.retryable = retryable
        self.provider = provider
        self.code = code


class ProviderNotConfigured(PaymentsError):
    pass


class WebhookRejected(PaymentsError):
    """A webhook whose signature is missing, invalid or stale, or whose body is not parseable.

    The view answers 400 with ``reason`` and stores nothing as processed.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidTransition(PaymentsError):
    def __init__(self, *, order_id, current: str, target: str):
        super().__init__(f"Order #{order_id} cannot go from {current} to {target}.")
        self.current, self.target = current, target


class PaymentNotConfirmed(PaymentsError):
    """The provider does not (yet) say the order is paid: nothing is granted."""


class PaymentMismatch(PaymentsError):
    """The provider reports a payment that does not match the order (amount, currency, id).

    Never granted; logged for staff. Retrying does not help.
    """


class OrderNotFound(PaymentsError):
    """A provider event names no order of ours (yet)."""


class OrderNotReady(PaymentsError):
    """The event needs a state the order has not reached yet (for example a dispute on an
    order whose payment we have not seen): try again later."""


class RefundNotAllowed(PaymentsError):
    """A staff refund that cannot be made (amount, order state, permission). Nothing changed."""


class UnknownProviderStatus(ProviderError):
    """The provider reported a status (or outcome) we have no rule for.

    Nothing is changed and nothing is guessed: the webhook event is left FAILED with this
    message (a reconciliation run flags it) for staff to read. Retrying does not help.
    """

    def __init__(self, message: str, *, provider: str = "", code: str = ""):
        super().__init__(message, retryable=False, provider=provider, code=code or "UNKNOWN_STATUS")


class DisputeOutcomeChanged(UnknownProviderStatus):
    """A dispute we recorded as decided is reported with another outcome (an appeal won
    after a loss, for example). Nothing is changed automatically: staff decide."""

    def __init__(self, message: str, *, provider: str = ""):
        super().__init__(message, provider=provider, code="DISPUTE_OUTCOME_CHANGED")
