"""The trial grant arrives once, when the email address is verified, and not at sign-up."""

import re

import pytest
from django.core import mail

from credits.models import CreditBalance, LedgerEntry, LedgerKind
from credits.services import credits_grant_trial

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase-1"


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.ACCOUNT_RATE_LIMITS = False


def trial_entries(email):
    return LedgerEntry.objects.filter(user__email=email, kind=LedgerKind.TRIAL_GRANT)


def test_sign_up_grants_nothing_and_confirming_the_email_grants_the_trial_once(client):
    response = client.post("/accounts/signup/", {"email": "new@example.com", "password1": PASSWORD,
                                                 "password2": PASSWORD})
    assert response.status_code == 302
    assert CreditBalance.objects.get(user__email="new@example.com").balance == 0
    assert not trial_entries("new@example.com").exists()
    [message] = mail.outbox
    confirm_url = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body).group(1)

    client.post(confirm_url)
    client.post(confirm_url)

    [entry] = trial_entries("new@example.com")
    assert (entry.amount, entry.idempotency_key) == (10, f"trial:{entry.user_id}")
    assert CreditBalance.objects.get(user__email="new@example.com").balance == 10


def test_verifying_a_second_address_grants_nothing_more(make_user):
    from allauth.account.models import EmailAddress
    from allauth.account.signals import email_confirmed

    user = make_user()
    for address in ("one@example.com", "two@example.com"):
        email_address = EmailAddress.objects.create(user=user, email=address, verified=True)
        email_confirmed.send(sender=EmailAddress, request=None, email_address=email_address)

    assert trial_entries(user.email).count() == 1
    assert CreditBalance.objects.get(user=user).balance == 10


def test_trial_size_comes_from_settings_and_zero_turns_it_off(make_user, settings):
    settings.CREDITS_TRIAL_GRANT = 25
    assert credits_grant_trial(user=(user := make_user())).amount == 25
    settings.CREDITS_TRIAL_GRANT = 40
    assert credits_grant_trial(user=user).amount == 25  # still the first grant, not a conflict

    settings.CREDITS_TRIAL_GRANT = 0
    assert credits_grant_trial(user=make_user()) is None
