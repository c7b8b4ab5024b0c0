"""Account emails go through the outbox: a mail server that is down never fails a request,
and the email is sent later, once, by the task's retry or the beat sweep."""

import socket
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import OutboundEmail, User
from accounts.tasks import send_due_outbound_emails
from tests.conftest import wait_until

from .conftest import confirmation_link

PASSWORD = "a-long-unusual-passphrase-42"


def sign_up(client, email):
    return client.post(
        reverse("account_signup"),
        {"name": "Grace Hopper", "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def closed_port() -> int:
    """A local port where nothing listens (a connection is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def refusing_smtp(settings):
    """Django's real SMTP backend, pointed at a port where no mail server listens."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    return settings


def make_due(email: OutboundEmail) -> None:
    """Let the wait before the next attempt pass."""
    OutboundEmail.objects.filter(pk=email.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.django_db
def test_sign_up_succeeds_while_the_mail_server_refuses_and_the_sweep_sends_the_email_once(
    client, refusing_smtp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = sign_up(client, "grace@example.com")

    # The request answers as usual; the account and its email are both on record.
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email="grace@example.com")
    email = OutboundEmail.objects.get()
    assert email.to == [user.email] and email.kind == "account/email/email_confirmation_signup"
    # The send after commit was tried, failed, and is due again later.
    assert (email.status, email.attempts) == (OutboundEmail.Status.PENDING, 1)
    assert "refused" in email.last_error.lower()
    assert email.next_attempt_at > timezone.now()
    assert mail.outbox == []

    send_due_outbound_emails()  # not due yet: nothing happens
    email.refresh_from_db()
    assert email.attempts == 1

    make_due(email)
    send_due_outbound_emails()  # retried, still refused
    email.refresh_from_db()
    assert (email.status, email.attempts) == (OutboundEmail.Status.PENDING, 2)
    assert email.next_attempt_at > timezone.now()

    # The mail server works again: the next sweep sends it, and later sweeps never again.
    refusing_smtp.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_due(email)
    send_due_outbound_emails()
    send_due_outbound_emails()
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (OutboundEmail.Status.SENT, 3, "")
    assert email.body == ""  # the one-time link is not kept once sent
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["grace@example.com"]

    # The link in it confirms the address.
    confirmed = client.post(urlsplit(confirmation_link("grace@example.com")).path)
    assert confirmed.status_code == 302
    assert user.emailaddress_set.get().verified


@pytest.mark.django_db
def test_a_password_reset_request_succeeds_while_the_mail_server_refuses(
    client, make_user, refusing_smtp, django_capture_on_commit_callbacks
):
    user = make_user("ada@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("account_reset_password"), {"email": user.email})

    assert response.status_code == 302
    email = OutboundEmail.objects.get()
    assert email.kind == "account/email/password_reset_key" and email.to == [user.email]
    assert email.status == OutboundEmail.Status.PENDING and email.attempts == 1


@pytest.mark.django_db
def test_an_email_that_never_goes_is_marked_failed_after_the_last_attempt(
    client, refusing_smtp, django_capture_on_commit_callbacks
):
    refusing_smtp.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 2
    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "linus@example.com")
    email = OutboundEmail.objects.get()

    make_due(email)
    send_due_outbound_emails()
    make_due(email)
    send_due_outbound_emails()

    email.refresh_from_db()
    assert (email.status, email.attempts) == (OutboundEmail.Status.FAILED, 2)
    assert "refused" in email.last_error.lower()


@pytest.mark.django_db
def test_staff_see_the_outbox_read_only(
    client, make_user, refusing_smtp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "ken@example.com")
    email = OutboundEmail.objects.get()
    client.force_login(make_user(is_staff=True, is_superuser=True))

    listing = client.get(reverse("admin:accounts_outboundemail_changelist"))
    detail = client.get(reverse("admin:accounts_outboundemail_change", args=[email.pk]))

    assert (
        listing.status_code == 200
        and "ken@example.com" in listing.text
        and "Pending" in listing.text
    )
    assert detail.status_code == 200 and "refused" in detail.text.lower()
    assert client.get(reverse("admin:accounts_outboundemail_add")).status_code == 403


def test_the_outbox_settings_are_checked(settings):
    settings.ACCOUNTS_EMAIL_SEND_LEASE_SECONDS = 5
    settings.EMAIL_TIMEOUT = 10
    settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 0
    with pytest.raises(Exception) as failed:
        call_command("check")
    assert "ACCOUNTS_EMAIL_MAX_ATTEMPTS" in str(failed.value)
    settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 3
    with pytest.raises(Exception) as failed:
        call_command("check")
    assert "EMAIL_TIMEOUT" in str(failed.value)


def test_sign_up_email_is_sent_after_commit_by_a_real_worker(client, celery_worker_process):
    response = sign_up(client, "barbara@example.com")

    assert response.status_code == 302
    email = OutboundEmail.objects.get(to=["barbara@example.com"])
    wait_until(
        lambda: OutboundEmail.objects.filter(
            pk=email.pk, status=OutboundEmail.Status.SENT
        ).exists(),
        message="the worker to send the confirmation email",
    )
    email.refresh_from_db()
    assert email.attempts == 1 and email.sent_at is not None
