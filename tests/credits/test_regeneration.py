"""Free-tier regeneration: lazily on read and on spend, once per catch-up, up to the cap."""

from datetime import timedelta

import pytest
from django.utils import timezone

from credits.exceptions import InsufficientCredits
from credits.ledger_sql import regen_key
from credits.models import CreditBalance, LedgerEntry, LedgerKind
from credits.services import balance_refresh, credits_spend
from tests.credits.helpers import assert_ledger_clean, balance_of, run_concurrently, state_of

INTERVAL = timedelta(minutes=15)


def periods_ago(user, periods: int, *, extra: timedelta = timedelta(seconds=5)):
    """Make it look as if regeneration was last accounted ``periods`` whole periods (+extra) ago."""
    checked = timezone.now() - periods * INTERVAL - extra
    CreditBalance.objects.filter(user=user).update(regen_checked_at=checked)
    return checked


def regenerations(user):
    return list(LedgerEntry.objects.filter(user=user, kind=LedgerKind.REGENERATION).order_by("id"))


@pytest.fixture
def paid_user(make_user):
    from accounts.models import User

    return make_user(
        membership_tier=User.Tier.PRO, membership_expires_at=timezone.now() + timedelta(days=30)
    )


@pytest.mark.django_db
def test_first_read_starts_the_clock_and_grants_nothing(make_user):
    user = make_user()

    snapshot = balance_refresh(user=user)

    assert snapshot.balance == 0 and snapshot.regenerated == 0
    assert CreditBalance.objects.get(user=user).regen_checked_at is not None
    assert regenerations(user) == []


@pytest.mark.django_db
def test_a_read_catches_up_with_one_entry_for_all_periods(make_user):
    user = make_user(credits=4)
    checked = periods_ago(user, 3)

    snapshot = balance_refresh(user=user)

    assert (snapshot.balance, snapshot.regenerated) == (7, 3)
    [entry] = regenerations(user)
    assert (entry.amount, entry.balance_before, entry.balance_after) == (3, 4, 7)
    assert entry.metadata["periods"] == 3
    row = CreditBalance.objects.get(user=user)
    # The clock moves by whole periods: the 5 seconds into the next period are kept.
    assert row.regen_checked_at == checked + 3 * INTERVAL
    assert entry.idempotency_key == regen_key(user_id=user.pk, checked_to=row.regen_checked_at)
    assert (row.lifetime_earned, row.lifetime_spent) == (7, 0)
    assert balance_refresh(user=user).regenerated == 0
    assert_ledger_clean()


@pytest.mark.django_db
def test_nothing_is_due_before_a_whole_period(make_user):
    user = make_user(credits=4)
    periods_ago(user, 0, extra=INTERVAL - timedelta(seconds=30))
    before = state_of(user)

    assert balance_refresh(user=user).balance == 4

    assert state_of(user) == before


@pytest.mark.django_db
def test_regeneration_tops_up_to_the_cap_and_no_further(make_user):
    user = make_user(credits=98)
    periods_ago(user, 10)

    assert balance_refresh(user=user).balance == 100

    [entry] = regenerations(user)
    assert entry.amount == 2


@pytest.mark.django_db
def test_at_or_above_the_cap_nothing_regenerates_and_the_time_is_not_banked(make_user):
    user = make_user(credits=150)
    checked = periods_ago(user, 4)

    assert balance_refresh(user=user).balance == 150

    assert regenerations(user) == []
    assert CreditBalance.objects.get(user=user).regen_checked_at == checked + 4 * INTERVAL
    credits_spend(user=user, amount=100, idempotency_key="big")
    assert balance_of(user) == 50  # the four periods spent at the cap earned nothing


@pytest.mark.django_db
def test_users_with_a_paid_plan_do_not_regenerate(paid_user):
    periods_ago(paid_user, 5)

    assert balance_refresh(user=paid_user).balance == 0

    credits_grant_and_spend = credits_spend
    with pytest.raises(InsufficientCredits):
        credits_grant_and_spend(user=paid_user, amount=1, idempotency_key="s")
    assert regenerations(paid_user) == []


@pytest.mark.django_db
def test_an_expired_plan_regenerates_again(make_user):
    from accounts.models import User

    user = make_user(
        membership_tier=User.Tier.PRO, membership_expires_at=timezone.now() - timedelta(days=1)
    )
    periods_ago(user, 2)

    assert balance_refresh(user=user).balance == 2


@pytest.mark.django_db
def test_a_clock_behind_the_last_check_regenerates_nothing_and_keeps_the_mark(make_user):
    user = make_user(credits=1)
    ahead = timezone.now() + timedelta(hours=2)
    CreditBalance.objects.filter(user=user).update(regen_checked_at=ahead)

    assert balance_refresh(user=user).balance == 1
    credits_spend(user=user, amount=1, idempotency_key="s")

    assert CreditBalance.objects.get(user=user).regen_checked_at == ahead
    assert regenerations(user) == []


@pytest.mark.django_db
def test_a_spend_regenerates_first_in_the_same_statement(make_user):
    user = make_user(credits=1)
    periods_ago(user, 2)

    spend = credits_spend(user=user, amount=3, idempotency_key="needs-regen")

    [regen] = regenerations(user)
    assert regen.pk < spend.pk
    assert (regen.balance_before, regen.balance_after) == (1, 3)
    assert (spend.balance_before, spend.balance_after) == (3, 0)
    assert_ledger_clean()


@pytest.mark.django_db
def test_a_refused_spend_reports_the_regenerated_balance_and_writes_nothing(make_user):
    user = make_user(credits=1)
    periods_ago(user, 2)
    before = state_of(user)

    with pytest.raises(InsufficientCredits) as exc:
        credits_spend(user=user, amount=5, idempotency_key="too-much")

    assert exc.value.available == 3
    assert state_of(user) == before


@pytest.mark.django_db
def test_the_header_shows_the_regenerated_balance(client, make_user):
    user = make_user(credits=2)
    periods_ago(user, 3)
    client.force_login(user)

    response = client.get("/credits/")

    assert response.context["credit_balance"] == 5
    assert len(regenerations(user)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_reads_at_once_regenerate_once(make_user):
    for _ in range(3):
        user = make_user(credits=10)
        periods_ago(user, 4)

        outcomes = run_concurrently([lambda u=user: balance_refresh(user=u)] * 2)

        assert [o.error for o in outcomes if o.error] == []
        assert sorted(o.value.regenerated for o in outcomes) == [0, 4]
        assert {o.value.balance for o in outcomes} == {14}
        assert len(regenerations(user)) == 1
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_reads_and_spends_at_once_regenerate_once(make_user):
    user = make_user(credits=0)
    periods_ago(user, 6)
    calls = [lambda: balance_refresh(user=user)] * 4 + [
        lambda i=i: credits_spend(user=user, amount=1, idempotency_key=f"s{i}") for i in range(4)
    ]

    outcomes = run_concurrently(calls)

    assert [o.error for o in outcomes if o.error] == []
    assert [e.amount for e in regenerations(user)] == [6]
    assert balance_of(user) == 2
    assert_ledger_clean()


@pytest.mark.django_db
def test_a_mark_moved_back_by_hand_never_grants_a_period_twice(make_user):
    user = make_user(credits=4)
    checked = periods_ago(user, 3)
    assert balance_refresh(user=user).regenerated == 3

    CreditBalance.objects.filter(user=user).update(regen_checked_at=checked)  # back to before
    again = balance_refresh(user=user)
    CreditBalance.objects.filter(user=user).update(regen_checked_at=checked)
    spend = credits_spend(user=user, amount=1, idempotency_key="after-tampering")

    assert again.regenerated == 0 and again.balance == 7
    assert spend.balance_before == 7
    assert len(regenerations(user)) == 1
    assert_ledger_clean()


@pytest.mark.django_db
def test_reading_the_balance_inside_a_transaction_is_one_statement(
    make_user, django_assert_num_queries
):
    user = make_user(credits=4)
    periods_ago(user, 2)

    with django_assert_num_queries(1):
        assert balance_refresh(user=user).balance == 6
    with django_assert_num_queries(1):
        assert balance_refresh(user=user).balance == 6
