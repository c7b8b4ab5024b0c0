"""Characters PostgreSQL cannot store (NUL, lone surrogates) are refused with a 400 and the
reason before any view runs, wherever they come in: address, query, form, body, headers."""

import json

import pytest

from accounts.models import User
from payments.models import Order, SandboxPayment, WebhookEvent
from payments.providers.sandbox import event_body, sign
from tests.payments.conftest import packages, sandbox_only  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def refused(response, where: str, char: str = "U+0000") -> bool:
    text = response.content.decode()
    return response.status_code == 400 and where in text and char in text


@pytest.mark.parametrize(
    "url, where",
    [
        ("/billing/invoices/%00/", "the address"),
        ("/billing/paypal/return/?token=%00", "the query string"),
        ("/billing/orders/?page=1%00", "the query string"),
        ("/credits/?kind=%00", "the query string"),
    ],
)
def test_a_nul_in_the_address_or_query_of_a_signed_in_page_is_a_400(client, user, url, where):
    client.force_login(user)
    assert refused(client.get(url), where)


def test_a_nul_in_an_address_is_a_400_even_without_logging_in(client):
    assert refused(client.get("/billing/sandbox/checkout/%00/"), "the address")
    assert refused(client.get("/?next=%00"), "the query string")


def test_a_nul_in_a_form_field_is_a_400_and_nothing_is_written(client):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "nul\x00@example.com",
            "password1": "a-long-passphrase-42",
            "password2": "a-long-passphrase-42",
        },
    )
    assert refused(response, "a form field")
    assert not User.objects.exists()


def test_a_nul_in_a_header_is_a_400(client):
    assert refused(client.get("/", HTTP_USER_AGENT="curl\x00"), "a header")


@pytest.fixture
def sandbox_paid_body(client, user, packages, sandbox_only):
    """A genuine sandbox 'paid' event body for an open order (as the sandbox would send it)."""
    client.force_login(user)
    client.post("/billing/buy/", {"package": packages["Basic"].pk})
    SandboxPayment.objects.update(status="paid")
    return json.loads(event_body(SandboxPayment.objects.get(), "checkout.paid"))


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_a_validly_signed_webhook_carrying_an_unstorable_character_is_refused_and_not_stored(
    client, sandbox_paid_body, django_capture_on_commit_callbacks, bad
):
    sandbox_paid_body["data"]["description"] = f"pay{bad}load"
    body = json.dumps(sandbox_paid_body).encode()  # ensure_ascii: \u0000 and \ud800 escapes
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhooks/sandbox/",
            data=body,
            content_type="application/json",
            HTTP_SANDBOX_SIGNATURE=sign(body),
        )

    assert refused(response, "the request body", f"U+{ord(bad):04X}")
    assert not WebhookEvent.objects.exists()
    assert Order.objects.get().status == "PENDING"


def test_a_webhook_body_with_a_raw_nul_byte_is_refused(client, sandbox_paid_body):
    body = json.dumps(sandbox_paid_body).encode() + b"\x00"
    response = client.post(
        "/webhooks/sandbox/",
        data=body,
        content_type="application/json",
        HTTP_SANDBOX_SIGNATURE=sign(body),
    )
    assert refused(response, "the request body")
    assert not WebhookEvent.objects.exists()


def test_ordinary_escapes_and_emoji_pass(
    client, sandbox_paid_body, django_capture_on_commit_callbacks
):
    sandbox_paid_body["data"]["description"] = "caf\u00e9 \U0001f600 back\\u0000slash"
    body = json.dumps(sandbox_paid_body).encode()  # a surrogate pair and an escaped backslash
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhooks/sandbox/",
            data=body,
            content_type="application/json",
            HTTP_SANDBOX_SIGNATURE=sign(body),
        )
    assert response.status_code == 200
    assert Order.objects.get().status == "COMPLETED"
