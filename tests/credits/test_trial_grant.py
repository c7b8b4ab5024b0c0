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


def test_sign_up_grants_nothing_and_confirming_the_email_grants_the_trial_once(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(
        execute=True
    ):  # the confirmation email goes after commit
        response = client.post(
            "/accounts/signup/",
            {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
        )
    assert response.status_code == 302
    assert CreditBalance.objects.get(user__email="new@example.com").balance == 0
    assert not trial_entries("new@example.com").exists()
    [message] = mail.outbox
    confirm_url = re.search(
        r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body
    ).group(1)

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


# --- whichever way the address was verified, once per canonical address -----------------------

from tests.accounts.fake_google import fake_google, google_login  # noqa: E402,F401


def balance_of(email):
    return CreditBalance.objects.get(user__email=email).balance


def test_a_google_sign_up_with_a_verified_address_gets_the_trial(client, fake_google):
    response = google_login(
        client, fake_google, sub="1001", email="ada.lovelace@gmail.com", name="Ada"
    )

    assert response.status_code == 302, response.content
    assert fake_google.token_requests[0]["code"] == "4/fake-code"
    [entry] = trial_entries("ada.lovelace@gmail.com")
    assert entry.amount == 10
    assert balance_of("ada.lovelace@gmail.com") == 10
    # Logging in again with Google grants nothing more.
    client.logout()
    google_login(client, fake_google, sub="1001", email="ada.lovelace@gmail.com")
    assert trial_entries("ada.lovelace@gmail.com").count() == 1


def test_an_address_google_has_not_verified_earns_nothing(client, fake_google):
    google_login(
        client, fake_google, sub="1002", email="unverified@gmail.com", email_verified=False
    )

    assert not LedgerEntry.objects.filter(kind=LedgerKind.TRIAL_GRANT).exists()


def test_a_google_user_from_before_gets_the_trial_at_their_next_google_login(
    client, fake_google, make_user
):
    from allauth.socialaccount.models import SocialAccount

    user = make_user("early@example.com")
    SocialAccount.objects.create(user=user, provider="google", uid="1003", extra_data={})
    assert not trial_entries("early@example.com").exists()

    google_login(client, fake_google, sub="1003", email="early@example.com")

    assert balance_of("early@example.com") == 10


@pytest.mark.parametrize(
    "variant",
    [
        "AdaLovelace@gmail.com",
        "adalovelace+trial2@gmail.com",
        "a.d.a.l.o.v.e.l.a.c.e@googlemail.com",
        "ADA.lovelace+x@GoogleMail.com",
    ],
)
def test_a_gmail_address_spelled_differently_gets_no_second_trial(client, fake_google, variant):
    google_login(client, fake_google, sub="2001", email="ada.lovelace@gmail.com")
    client.logout()

    response = google_login(client, fake_google, sub="2002", email=variant)

    assert response.status_code == 302
    assert balance_of(variant.lower()) == 0
    assert LedgerEntry.objects.filter(kind=LedgerKind.TRIAL_GRANT).count() == 1


def test_plus_tags_and_case_count_as_one_address_but_dots_do_not_outside_gmail(client, make_user):
    from allauth.account.models import EmailAddress
    from allauth.account.signals import email_confirmed

    def verify(address):
        user = make_user(address, verified=False)
        email_confirmed.send(
            sender=EmailAddress, request=None, email_address=EmailAddress.objects.get(user=user)
        )
        return CreditBalance.objects.get(user=user).balance

    assert verify("bob@example.com") == 10
    assert verify("bob+again@example.com") == 0
    assert verify("BOB+x@Example.COM".lower().replace("bob+x", "b.o.b+x")) == 10  # dots matter here
    assert verify("Bob@EXAMPLE.com".lower().replace("bob", "bob+3")) == 0


def test_the_claim_outlives_the_account_and_is_enforced_by_the_database(make_user):
    from django.db import IntegrityError, transaction

    from accounts.services import account_delete
    from credits.models import TrialClaim
    from credits.trials import address_digest, trial_grant_for_address

    first = make_user("carol@gmail.com")
    assert trial_grant_for_address(user=first, email="carol@gmail.com").amount == 10
    account_delete(user=first, actor=first)

    second = make_user("c.a.r.o.l@gmail.com")
    assert trial_grant_for_address(user=second, email="c.a.r.o.l@gmail.com") is None
    assert TrialClaim.objects.get().address_digest == address_digest("carol@gmail.com")
    assert "carol" not in TrialClaim.objects.get().address_digest
    with pytest.raises(IntegrityError), transaction.atomic():
        TrialClaim.objects.create(
            address_digest=address_digest("CAROL+1@googlemail.com"), user=second
        )


def test_staff_ticking_verified_in_the_admin_grants_the_trial(client, staff_user, make_user):
    from allauth.account.models import EmailAddress

    user = make_user("dave@example.com", verified=False)
    address = EmailAddress.objects.get(user=user)
    client.force_login(staff_user)

    response = client.post(
        f"/admin/account/emailaddress/{address.pk}/change/",
        {"user": user.pk, "email": "dave@example.com", "verified": "on", "primary": "on"},
    )

    assert response.status_code == 302, response.content
    assert balance_of("dave@example.com") == 10


def test_staff_marking_addresses_verified_in_bulk_grants_each_trial_once(
    client, staff_user, make_user
):
    from allauth.account.models import EmailAddress

    users = [make_user(f"erin{i}@example.com", verified=False) for i in range(2)]
    twin = make_user("erin0+twin@example.com", verified=False)
    client.force_login(staff_user)

    client.post(
        "/admin/account/emailaddress/",
        {
            "action": "make_verified",
            "_selected_action": [
                a.pk for a in EmailAddress.objects.filter(user__in=users + [twin])
            ],
        },
    )

    balances = {u.email: CreditBalance.objects.get(user=u).balance for u in users + [twin]}
    assert balances["erin1@example.com"] == 10
    # erin0 and erin0+twin are one mailbox: whichever was verified first got the trial.
    assert sorted([balances["erin0@example.com"], balances["erin0+twin@example.com"]]) == [0, 10]


def test_staff_find_a_claim_by_any_spelling_of_the_address(client, staff_user, make_user):
    from credits.trials import trial_grant_for_address

    trial_grant_for_address(user=make_user("frank.n@gmail.com"), email="frank.n@gmail.com")
    client.force_login(staff_user)

    found = client.get("/admin/credits/trialclaim/", {"q": "Frank.N+promo@googlemail.com"})
    missed = client.get("/admin/credits/trialclaim/", {"q": "frank.m@gmail.com"})

    assert found.context["cl"].result_count == 1
    assert missed.context["cl"].result_count == 0
