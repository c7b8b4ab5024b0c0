"""Credits about to expire are announced once per lot, a week ahead, from the lots' rows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import OutboundEmail
from credits.expiry_notices import lots_expiring_notify
from credits.services import credits_grant
from notices.services import notice_preferences_set

from .conftest import text_part

pytestmark = pytest.mark.django_db


def grant(user, amount, *, days, key):
    return credits_grant(
        user=user,
        amount=amount,
        kind="BONUS",
        idempotency_key=key,
        expires_at=timezone.now() + timedelta(days=days),
    )


def test_each_lot_expiring_within_a_week_is_announced_once(
    make_user, mailbox, django_capture_on_commit_callbacks
):
    user = make_user("lin@example.com")
    grant(user, 30, days=3, key="soon")
    grant(user, 20, days=6, key="later-this-week")
    grant(user, 99, days=30, key="next-month")
    credits_grant(user=user, amount=5, kind="BONUS", idempotency_key="never")

    with django_capture_on_commit_callbacks(execute=True):
        assert lots_expiring_notify() == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert lots_expiring_notify() == 0  # the next run: each lot was announced already

    subjects = sorted(m["Subject"] for m in mailbox.messages)
    assert [s.split(" expire on ")[0] for s in subjects] == ["20 credits", "30 credits"]
    assert "cannot be brought back" in text_part(mailbox.messages[0])

    # A week later the month-away lot's turn comes, once.
    with django_capture_on_commit_callbacks(execute=True):
        assert lots_expiring_notify(now=timezone.now() + timedelta(days=24)) == 1
    assert len(mailbox.messages) == 3


def test_a_user_who_turned_expiry_notices_off_is_skipped_and_not_asked_again(make_user, mailbox):
    user = make_user()
    notice_preferences_set(user=user, wanted={"credits_expiring": False})
    grant(user, 10, days=2, key="soon")
    assert lots_expiring_notify() == 1
    assert lots_expiring_notify() == 0
    assert OutboundEmail.objects.get().status == "SKIPPED"
    assert mailbox.messages == []
