"""The preferences page and the one-click unsubscribe link of optional emails."""

import pytest
from django.urls import reverse

from accounts.models import OutboundEmail
from notices.selectors import notice_wanted
from notices.services import low_balance_email_queue
from notices.tokens import unsubscribe_token

pytestmark = pytest.mark.django_db


def test_the_preferences_page_turns_optional_emails_off_and_on(client, user):
    client.force_login(user)
    page = client.get(reverse("notices:preferences"))
    assert page.status_code == 200
    html = page.content.decode()
    for label in ("Low balance", "Credits about to expire", "Failed generation jobs"):
        assert label in html
    assert 'name="receipt"' not in html  # receipts are always sent

    response = client.post(reverse("notices:preferences"), {"job_failed": "on"})
    assert response.status_code == 302
    assert notice_wanted(user=user, kind="job_failed")
    assert not notice_wanted(user=user, kind="low_balance")
    assert not notice_wanted(user=user, kind="credits_expiring")
    assert notice_wanted(user=user, kind="receipt")


def test_one_click_unsubscribe_from_a_mail_client_needs_no_login_or_csrf(
    client, user, mailbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        low_balance_email_queue(user=user, threshold=50, balance=10, crossing_key="x")
    link = str(mailbox.messages[0]["List-Unsubscribe"]).strip().strip("<>")
    path = link.removeprefix("https://credits.example")

    csrf_client = type(client)(enforce_csrf_checks=True)
    response = csrf_client.post(path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert not notice_wanted(user=user, kind="low_balance")

    with django_capture_on_commit_callbacks(execute=True):
        low_balance_email_queue(user=user, threshold=50, balance=9, crossing_key="y")
    assert len(mailbox.messages) == 1
    assert OutboundEmail.objects.get(event_key="low_balance:y").status == "SKIPPED"


def test_opening_the_link_only_asks_and_a_forged_or_transactional_token_is_refused(client, user):
    url = reverse(
        "notices:unsubscribe", args=[unsubscribe_token(user_id=user.pk, kind="low_balance")]
    )
    page = client.get(url)
    assert page.status_code == 200 and "Unsubscribe" in page.content.decode()
    assert notice_wanted(user=user, kind="low_balance")  # a link scanner changes nothing

    forged = reverse("notices:unsubscribe", args=["eyJ1IjoxLCJrIjoibG93X2JhbGFuY2UifQ:x:y"])
    assert client.post(forged).status_code == 404
    receipt = reverse(
        "notices:unsubscribe", args=[unsubscribe_token(user_id=user.pk, kind="receipt")]
    )
    assert client.post(receipt).status_code == 404
    assert notice_wanted(user=user, kind="low_balance")

    done = client.post(url)
    assert done.status_code == 200 and "You are unsubscribed" in done.content.decode()
    assert not notice_wanted(user=user, kind="low_balance")
