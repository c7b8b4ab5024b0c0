"""Errors of the payments app. Edges turn them into a message, a 4xx, or a retry.

A webhook attempt that fails with a payments error is tried again unless the error says it
is not ``retryable`` (a payment that does not match, a transition the order cannot make, a
provider that refused for good): the event may simply have arrived before what it needs.
"""

from core import errors


class PaymentsError(errors.ApplicationError):
    code = "payments_error"
    retryable = True


class ProviderError(PaymentsError):
    """The provider refused or failed a call. ``retryable`` says whether trying again may help.

    ``code`` is the provider's own error code when it gave one (``INSTRUMENT_DECLINED``),
    else ``provider_error``.
    """

    code = "provider_error"
    status = 502

    def __init__(
        self, message: str, *, retryable: bool = False, provider: str = "", code: str = ""
    ):
        super().__init__(message, retryable=retryable, code=code or None)
        self.provider = provider


class ProviderNotConfigured(PaymentsError):
    code = "provider_not_configured"
    status = 503
    retryable = False


class WebhookRejected(PaymentsError):
    """A webhook whose signature is missing, invalid or stale, or whose body is not parseable.

    The view answers 400 with ``reason`` and stores nothing as processed.
    """

    code = "webhook_rejected"
    retryable = False

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IngestBusy(PaymentsError):
    """A webhook delivery could not be stored in time (the database is slow or away): the
    view answers 503 and the provider delivers it again."""

    code = "webhook_busy"
    status = 503


class InvalidTransition(PaymentsError, errors.InvalidTransition):
    """An order cannot move from its status to the one asked for (409, never retried)."""

    code = "invalid_transition"
    status = 409
    retryable = False

    def __init__(self, *, order_id, current: str, target: str):
        super().__init__(
            f"Order #{order_id} cannot go from {current} to {target}.",
            current=current,
            target=target,
        )


class PaymentNotConfirmed(PaymentsError):
    """The provider does not (yet) say the order is paid: nothing is granted."""

    code = "payment_not_confirmed"
    status = 409


class PaymentMismatch(PaymentsError):
    """The provider reports a payment that does not match the order (amount, currency, id).

    Never granted; logged for staff. Retrying does not help.
    """

    code = "payment_mismatch"
    status = 409
    retryable = False


class OrderNotFound(PaymentsError):
    """A provider event names no order of ours (yet)."""

    code = "order_not_found"
    status = 404


class OrderNotReady(PaymentsError):
    """The event needs a state the order has not reached yet (for example a dispute on an
    order whose payment we have not seen): try again later."""

    code = "order_not_ready"
    status = 409


class RefundNotAllowed(PaymentsError):
    """A staff refund that cannot be made (amount, order state, permission). Nothing changed."""

    code = "refund_not_allowed"
    status = 409
    retryable = False


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
