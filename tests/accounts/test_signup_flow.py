"""Sign up, confirm the email address, log in, see the account page: through the test client."""

from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from accounts.models import User

from .conftest import confirmation_link, sent_mail

PASSWORD = "a-long-unusual-passphrase-42"


def sign_up(client, email, password=PASSWORD, password2=None, name="Ada Lovelace"):
    return client.post(
        reverse("account_signup"),
        {"name": name, "email": email, "password1": password, "password2": password2 or password},
    )


@pytest.mark.django_db
def test_sign_up_confirm_log_in_and_see_the_account_page(client):
    response = sign_up(client, "Ada@Example.com")

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get()
    assert user.email == "ada@example.com"
    assert user.name == "Ada Lovelace"
    assert user.status == User.Status.TRIAL
    assert not EmailAddress.objects.get(user=user).verified

    # Mandatory verification: not logged in yet, and the page says what to do.
    page = client.get(response["Location"])
    assert "Check your inbox" in page.text
    assert "Confirm your email address" in page.text
    assert client.get(reverse("accounts:profile")).status_code == 302

    assert len(sent_mail()) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@example.com"]
    assert "confirm" in message.subject.lower()

    # The link shows a confirmation page (no state change on GET), the POST confirms.
    path = urlsplit(confirmation_link("ada@example.com")).path
    confirm_page = client.get(path)
    assert confirm_page.status_code == 200
    assert "ada@example.com" in confirm_page.text
    assert not EmailAddress.objects.get(user=user).verified
    confirmed = client.post(path)
    assert confirmed.status_code == 302
    assert confirmed["Location"] == reverse("account_login")
    assert EmailAddress.objects.get(user=user).verified

    logged_in = client.post(
        reverse("account_login"), {"login": "ada@example.com", "password": PASSWORD}
    )
    assert logged_in.status_code == 302
    assert logged_in["Location"] == reverse("accounts:profile")

    account = client.get(reverse("accounts:profile"))
    assert account.status_code == 200
    text = account.text
    assert "ada@example.com" in text
    assert 'value="Ada Lovelace"' in text
    assert "Trial" in text
    assert "127.0.0.1" in text  # the login just recorded
    for name in (
        "credits:history",
        "payments:orders",
        "generations:list",
        "generations:new",
        "payments:pricing",
    ):
        assert f'href="{reverse(name)}"' in text, name


@pytest.mark.django_db
def test_an_expired_or_mangled_confirmation_link_says_so_and_confirms_nothing(client):
    sign_up(client, "late@example.com")
    path = urlsplit(confirmation_link("late@example.com")).path
    broken = path.rstrip("/")[:-4] + "zzzz/"

    page = client.get(broken)
    assert "expired or is not valid" in page.text
    client.post(broken)
    assert not EmailAddress.objects.get(email="late@example.com").verified


@pytest.mark.django_db
def test_the_account_page_needs_a_login(client):
    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
