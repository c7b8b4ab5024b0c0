import io

import pytest

from credits.demo import DEMO_EMAIL, seed
from credits.models import CreditBalance, LedgerEntry
from tests.credits.helpers import assert_ledger_clean

pytestmark = pytest.mark.django_db


def test_seed_gives_the_demo_customer_a_history_once(make_user):
    user = make_user(DEMO_EMAIL)
    out = io.StringIO()

    seed(stdout=out)
    entries = LedgerEntry.objects.filter(user=user).count()
    balance = CreditBalance.objects.get(user=user).balance
    seed(stdout=out)

    assert entries == 7  # trial, bonus, four spends, one refund
    assert set(LedgerEntry.objects.filter(user=user).values_list("kind", flat=True)) == {
        "TRIAL_GRANT",
        "BONUS",
        "SPEND",
        "REFUND",
    }
    assert LedgerEntry.objects.filter(user=user).count() == entries
    assert CreditBalance.objects.get(user=user).balance == balance == 10 + 40 - 19 + 5
    assert "(0 new ledger entries)" in out.getvalue()
    assert_ledger_clean()


def test_seed_without_the_demo_customer_does_nothing():
    out = io.StringIO()

    seed(stdout=out)

    assert LedgerEntry.objects.count() == 0
    assert "nothing to seed" in out.getvalue()
