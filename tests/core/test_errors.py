"""One base error: every app's refusals carry a code, a message and a status, and the
middleware answers them in one place (a page, or JSON when asked)."""

import pytest
from django.test import override_settings

from accounts import exceptions as accounts_errors
from backoffice import exceptions as backoffice_errors
from core import errors
from credits import exceptions as credits_errors
from generations import exceptions as generations_errors
from generations.backends.base import BackendError, PermanentBackendError, RetryableBackendError
from payments import exceptions as payments_errors

APP_ERRORS = [
    accounts_errors.AccountsError,
    backoffice_errors.BackofficeError,
    credits_errors.CreditsError,
    generations_errors.GenerationsError,
    payments_errors.PaymentsError,
    BackendError,
]


@pytest.mark.parametrize("root", APP_ERRORS, ids=lambda cls: cls.__module__)
def test_every_app_error_derives_from_the_one_base(root):
    assert issubclass(root, errors.ApplicationError)


def test_both_invalid_transitions_are_one_kind_of_error():
    order = payments_errors.InvalidTransition(order_id=7, current="PENDING", target="REFUNDED")
    job = generations_errors.InvalidTransition(job_id=8, current="COMPLETED", target="CANCELLED")
    for error in (order, job):
        assert isinstance(error, errors.InvalidTransition)
        assert (error.code, error.status) == ("invalid_transition", 409)
    assert (order.current, order.target) == ("PENDING", "REFUNDED")
    assert str(job) == "Job #8 is completed and cannot become cancelled."


def test_an_error_carries_code_message_status_and_details():
    error = credits_errors.InsufficientCredits(needed=5, available=2)
    assert (error.code, error.status) == ("insufficient_credits", 402)
    assert error.message == str(error) == "Not enough credits: this needs 5, the balance is 2."
    assert error.as_dict() == {
        "error": {
            "code": "insufficient_credits",
            "message": str(error),
            "details": {"needed": 5, "available": 2},
        }
    }
    assert generations_errors.TooManyRunningJobs(limit=3).status == 429
    assert credits_errors.StaffRequired("no").status == 403


def test_tasks_retry_by_the_errors_own_word():
    assert errors.is_retryable(RetryableBackendError("timeout"))
    assert not errors.is_retryable(PermanentBackendError("refused"))
    assert not errors.is_retryable(payments_errors.PaymentMismatch("amount differs"))
    assert errors.is_retryable(payments_errors.OrderNotReady("later"))
    assert errors.is_retryable(payments_errors.ProviderError("503", retryable=True))
    assert not errors.is_retryable(
        payments_errors.ProviderError("declined", code="INSTRUMENT_DECLINED")
    )
    assert errors.is_retryable(ConnectionError("lost"))  # unexpected: tried again


@override_settings(ROOT_URLCONF="tests.core.error_urls")
def test_a_refusal_a_view_lets_through_is_answered_with_its_status_and_message(client):
    page = client.get("/test-refusal/", HTTP_ACCEPT="text/html")
    assert page.status_code == 402
    assert "Not enough credits: this needs 5, the balance is 2." in page.content.decode()

    api = client.get("/test-refusal/", HTTP_ACCEPT="application/json")
    assert api.status_code == 402
    assert api.json()["error"]["code"] == "insufficient_credits"
    assert api.json()["error"]["details"] == {"needed": 5, "available": 2}
