"""Bad input on the way in: each gets a clear message and changes nothing."""

import threading

import pytest
from allauth.core.internal.ratelimit import parse_rates
from django.conf import settings
from django.core import mail
from django.db import connection
from django.db.models.signals import pre_save
from django.urls import reverse

from accounts.models import User
from tests.conftest import PASSWORD

from .conftest import sent_mail


def rate(action: str, per: str):
    """The configured limit for ``action`` counted per ``per`` (ip or key)."""
    return next(r for r in parse_rates(settings.ACCOUNT_RATE_LIMITS[action]) if r.per == per)


def sign_up(client, email, password="a-long-unusual-passphrase-42", password2=None, **extra):
    data = {"email": email, "password1": password, "password2": password2 or password, **extra}
    return client.post(reverse("account_signup"), data)


def log_in(client, email, password):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_signing_up_with_a_taken_address_creates_nothing_and_tells_the_owner(client, make_user):
    owner = make_user("taken@example.com")
    password_before = owner.password

    response = sign_up(client, "Taken@Example.com")

    # The page answers exactly as for a new address (no way to probe who is a customer),
    # and says what happens when the address already has an account ...
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    page = client.get(response["Location"]).content.decode()
    assert "Already have an account with this address? Then no new" in page
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1
    owner.refresh_from_db()
    assert owner.password == password_before
    # ... and the owner of the address learns what happened and how to get in.
    assert len(sent_mail()) == 1
    assert mail.outbox[0].to == ["taken@example.com"]
    assert "already have an account" in mail.outbox[0].subject
    assert "no new account was created" in mail.outbox[0].body
    assert "/accounts/password/reset/" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_a_sign_up_that_loses_the_race_for_an_address_gets_the_same_answer(client):
    """Two sign-ups for one address pass the form check together; the second insert must not 500."""
    email = "race@example.com"
    raced = []

    def create_elsewhere():
        try:
            User.objects.create_user(email, "someone-elses-password")
        finally:
            connection.close()

    def other_sign_up_wins(sender, instance, **kwargs):
        # Just before our INSERT, another request (its own connection, committed) takes the address.
        if instance.email == email and not raced:
            raced.append(True)
            thread = threading.Thread(target=create_elsewhere)
            thread.start()
            thread.join()

    pre_save.connect(other_sign_up_wins, sender=User, dispatch_uid="race")
    try:
        response = sign_up(client, email)
    finally:
        pre_save.disconnect(dispatch_uid="race", sender=User)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert User.objects.filter(email=email).count() == 1
    assert raced
    assert User.objects.get(email=email).check_password("someone-elses-password")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password, password2, expected",
    [
        ("password123", None, "This password is too common."),
        ("short", None, "This password is too short. It must contain at least 10 characters."),
        ("83749283749283", None, "This password is entirely numeric."),
        (
            "a-long-unusual-passphrase-42",
            "a-different-passphrase-42",
            "You must type the same password each time.",
        ),
    ],
)
def test_a_weak_or_mistyped_password_is_refused_with_the_reason(
    client, password, password2, expected
):
    response = sign_up(client, "weak@example.com", password, password2)

    assert response.status_code == 200
    assert expected in response.text
    assert "Please correct the" in response.text
    assert not User.objects.exists()
    assert sent_mail() == []


@pytest.mark.django_db
def test_a_malformed_email_address_is_refused(client):
    response = sign_up(client, "not-an-address")
    assert response.status_code == 200
    assert "Enter a valid email address." in response.text
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_wrong_password_is_refused_then_the_account_is_locked_for_a_while(client, make_user):
    make_user("victim@example.com")
    limit = rate("login_failed", "key")

    for attempt in range(limit.amount):
        response = log_in(client, "victim@example.com", f"guess-{attempt}")
        assert response.status_code == 200
        assert "The email address or password is not correct." in response.text
        assert not logged_in(client)

    # Past the limit even the right password is refused, with a message that says why.
    response = log_in(client, "victim@example.com", PASSWORD)
    assert response.status_code == 200
    assert "Too many failed log-in attempts" in response.text
    assert "reset your password" in response.text
    assert not logged_in(client)

    # The lock is per account: another customer on the same network still gets in.
    make_user("neighbour@example.com")
    assert log_in(client, "neighbour@example.com", PASSWORD).status_code == 302
    assert logged_in(client)


@pytest.mark.django_db
def test_too_many_log_in_requests_from_one_address_get_a_429_page(client, make_user):
    make_user("busy@example.com")
    limit = rate("login", "ip")
    for _ in range(limit.amount):
        assert log_in(client, "busy@example.com", PASSWORD).status_code in (200, 302)
        client.logout()

    response = log_in(client, "busy@example.com", PASSWORD)
    assert response.status_code == 429
    assert "Too many attempts" in response.text
    assert "wait a few minutes" in response.text
    assert not logged_in(client)


@pytest.mark.django_db
def test_sign_ups_from_one_address_are_rate_limited_with_a_clear_page(client):
    limit = rate("signup", "ip")
    for n in range(limit.amount):
        assert sign_up(client, f"bulk{n}@example.com").status_code == 302

    response = sign_up(client, "one-too-many@example.com")

    assert response.status_code == 429
    assert "Too many attempts" in response.text
    assert not User.objects.filter(email="one-too-many@example.com").exists()
    assert User.objects.count() == limit.amount


@pytest.mark.django_db
def test_an_unverified_address_cannot_log_in_and_is_told_why(client, make_user):
    make_user("unverified@example.com", verified=False)

    response = log_in(client, "unverified@example.com", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not logged_in(client)
    page = client.get(response["Location"])
    assert "You need to confirm your email address before you can log in" in page.text
    assert "Check your inbox" in page.text
    # A fresh link is on its way.
    assert [m.to for m in sent_mail()] == [["unverified@example.com"]]
    assert "/confirm-email/" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_suspended_account_cannot_log_in(client, make_user):
    make_user("suspended@example.com", status=User.Status.SUSPENDED)

    response = log_in(client, "suspended@example.com", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_inactive")
    assert not logged_in(client)
    assert "This account is suspended or closed" in client.get(response["Location"]).text
