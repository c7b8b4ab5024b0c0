import pytest

from credits.exceptions import InsufficientCredits
from credits.models import CreditBalance, LedgerEntry
from credits.services import credits_grant, credits_spend


@pytest.mark.django_db
def test_spend_beyond_balance_is_refused_and_changes_nothing(make_user):
    user = make_user(credits=5)

    with pytest.raises(InsufficientCredits) as exc:
        credits_spend(user=user, amount=6, idempotency_key="too-much")

    assert "this needs 6, the balance is 5" in str(exc.value)
    assert CreditBalance.objects.get(user=user).balance == 5
    assert not LedgerEntry.objects.filter(idempotency_key="too-much").exists()


@pytest.mark.django_db
def test_repeated_grant_key_applies_once(make_user):
    user = make_user()

    first = credits_grant(user=user, amount=10, kind="PURCHASE", idempotency_key="order:1:purchase")
    again = credits_grant(user=user, amount=10, kind="PURCHASE", idempotency_key="order:1:purchase")

    assert again.pk == first.pk
    assert CreditBalance.objects.get(user=user).balance == 10
