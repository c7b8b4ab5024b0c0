"""Every allauth page renders in the site's own layout; password reset and change work end to end."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from tests.conftest import PASSWORD

from .conftest import links_in, sent_mail

SITE_MARKERS = ('class="site-header"', 'class="skip-link"', "css/site.css", 'class="site-footer"')

ANONYMOUS_PAGES = [
    "account_login",
    "account_signup",
    "account_reset_password",
    "account_reset_password_done",
    "account_email_verification_sent",
    "account_inactive",
    "socialaccount_login_cancelled",
    "socialaccount_login_error",
]
SIGNED_IN_PAGES = [
    "accounts:profile",
    "account_email",
    "account_change_password",
    "account_logout",
    "account_reauthenticate",
    "socialaccount_connections",
]


def assert_in_site_layout(response, status=200):
    assert response.status_code == status
    for marker in SITE_MARKERS:
        assert marker in response.text, marker
    assert "Menu:" not in response.text  # allauth's bare default layout


@pytest.mark.django_db
@pytest.mark.parametrize("name", ANONYMOUS_PAGES)
def test_anonymous_account_pages_use_the_site_layout(client, name):
    status = 401 if name == "socialaccount_login_error" else 200
    assert_in_site_layout(client.get(reverse(name)), status)


@pytest.mark.django_db
@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_signed_in_account_pages_use_the_site_layout(client, user, name):
    client.force_login(user)
    response = client.get(reverse(name))
    assert_in_site_layout(response)
    assert 'data-testid="header-balance"' in response.text


@pytest.mark.django_db
def test_password_reset_from_email_to_new_login(client, user):
    response = client.post(reverse("account_reset_password"), {"email": user.email.upper()})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")
    assert len(sent_mail()) == 1
    link = next(link for link in links_in(mail.outbox[0]) if "/password/reset/key/" in link)

    # The key link redirects to a key-less URL (the key moves into the session), then the form.
    form_page = client.get(urlsplit(link).path, follow=True)
    assert_in_site_layout(form_page)
    assert "Choose a new password" in form_page.text
    action = form_page.redirect_chain[-1][0] if form_page.redirect_chain else urlsplit(link).path

    weak = client.post(action, {"password1": "short", "password2": "short"})
    assert "This password is too short" in weak.text

    done = client.post(
        action, {"password1": "a-brand-new-passphrase-7", "password2": "a-brand-new-passphrase-7"}
    )
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-brand-new-passphrase-7")

    reused = client.get(urlsplit(link).path, follow=True)
    assert "Link expired" in reused.text


@pytest.mark.django_db
def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing_useful(client, user):
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")
    assert all("/password/reset/key/" not in m.body for m in sent_mail())


@pytest.mark.django_db
def test_changing_the_password_needs_the_current_one(client, user):
    client.force_login(user)
    url = reverse("account_change_password")

    wrong = client.post(
        url,
        {
            "oldpassword": "not-it",
            "password1": "another-passphrase-9",
            "password2": "another-passphrase-9",
        },
    )
    assert "Please type your current password." in wrong.text
    user.refresh_from_db()
    assert user.check_password(PASSWORD)

    ok = client.post(
        url,
        {
            "oldpassword": PASSWORD,
            "password1": "another-passphrase-9",
            "password2": "another-passphrase-9",
        },
    )
    assert ok.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-passphrase-9")


@pytest.mark.django_db
def test_adding_a_second_email_address_sends_a_confirmation(client, user):
    client.force_login(user)

    response = client.post(
        reverse("account_email"), {"action_add": "", "email": "second@example.com"}, follow=True
    )

    assert_in_site_layout(response)
    assert "second@example.com" in response.text
    assert "Unverified" in response.text
    assert not EmailAddress.objects.get(email="second@example.com").verified
    assert sent_mail()[-1].to == ["second@example.com"]


@pytest.mark.django_db
def test_logging_out_takes_a_post(client, user):
    client.force_login(user)
    assert "_auth_user_id" in client.session
    client.get(reverse("account_logout"))
    assert "_auth_user_id" in client.session  # a GET only asks
    client.post(reverse("account_logout"))
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_google_login_is_offered_only_when_its_keys_are_configured(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert "Continue with Google" not in client.get(reverse("account_login")).text
    assert "Continue with Google" not in client.get(reverse("account_signup")).text

    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            "APPS": [
                {
                    "client_id": "test-client-id.apps.googleusercontent.com",
                    "secret": "s3cret",
                    "key": "",
                }
            ],
            "SCOPE": ["profile", "email"],
        }
    }
    page = client.get(reverse("account_login")).text
    assert "Continue with Google" in page
    action = re.search(r'<form method="post" action="([^"]+)" class="social-login">', page).group(1)

    response = client.post(action)

    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.netloc == "accounts.google.com"
    assert parse_qs(target.query)["client_id"] == ["test-client-id.apps.googleusercontent.com"]


@pytest.mark.django_db
def test_the_google_confirmation_page_uses_the_site_layout(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {"APPS": [{"client_id": "id", "secret": "s", "key": ""}]}
    }
    response = client.get(reverse("google_login"))
    assert_in_site_layout(response)
    assert "Google" in response.text
