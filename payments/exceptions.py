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
