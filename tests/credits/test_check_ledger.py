"""manage.py check_ledger recomputes every balance from the ledger and exits 1 on drift."""

import subprocess
import sys

import pytest
from django.db import connection

from credits.models import LedgerKind
from credits.services import credits_grant, credits_refund, credits_spend
from tests.conftest import test_database_url
from tests.credits.helpers import check_ledger

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(make_user):
    user = make_user(credits=20)
    spend = credits_spend(user=user, amount=8, idempotency_key="s1")
    credits_refund(spend=spend, idempotency_key="r1", amount=3)
    credits_grant(user=user, amount=5, kind=LedgerKind.PURCHASE, idempotency_key="p1")
    make_user()  # a user with a balance row and no entries is fine
    return user


def raw(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_a_consistent_ledger_is_clean(history):
    status, output = check_ledger()

    assert status == 0
    assert "Ledger clean: 4 entries" in output


def test_a_balance_changed_below_the_orm_is_drift(history):
    raw(
        "UPDATE credits_creditbalance SET balance = balance + 7, lifetime_earned = lifetime_earned + 7 "
        "WHERE user_id = %s",
        [history.pk],
    )

    status, output = check_ledger()

    assert status == 1
    assert f"user {history.pk}:" in output
    assert "balance 27 but the entries sum to 20" in output
    assert "lifetime_earned 32 but the entries earned 25" in output


def test_totals_that_disagree_with_the_balance_are_drift(history):
    raw("UPDATE credits_creditbalance SET lifetime_spent = 0 WHERE user_id = %s", [history.pk])

    status, output = check_ledger()

    assert status == 1
    assert "lifetime_spent 0 but the entries spent 5" in output
    assert "is not lifetime_earned - lifetime_spent" in output


def test_a_broken_chain_is_drift(history):
    # An entry whose before does not follow the last entry's after (inserts are allowed).
    raw(
        """INSERT INTO credits_ledgerentry (user_id, amount, kind, balance_before, balance_after, description,
                                            metadata, idempotency_key, created_at)
           VALUES (%s, 1, 'BONUS', 99, 100, '', '{}', 'forged', now())""",
        [history.pk],
    )

    status, output = check_ledger()

    assert status == 1
    assert "1 entries whose balance_before does not follow the previous entry" in output
    assert "first broken entry #" in output


def test_a_balance_row_without_entries_must_be_zero(make_user):
    user = make_user()
    raw(
        "UPDATE credits_creditbalance SET balance = 3, lifetime_earned = 3 WHERE user_id = %s",
        [user.pk],
    )

    status, output = check_ledger()

    assert status == 1
    assert f"user {user.pk}: no ledger entries but balance 3" in output


def test_entries_without_a_balance_row_are_drift(history):
    raw("DELETE FROM credits_creditbalance WHERE user_id = %s", [history.pk])

    status, output = check_ledger()

    assert status == 1
    assert "4 ledger entries but no balance row" in output


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_on_drift(make_user):
    user = make_user(credits=5)
    raw(
        "UPDATE credits_creditbalance SET balance = 4, lifetime_earned = 4 WHERE user_id = %s",
        [user.pk],
    )
    env = {
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PATH": "/usr/bin:/bin",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check_ledger"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"user {user.pk}: balance 4 but the entries sum to 5" in result.stdout
    assert "Ledger drift for 1 user(s)" in result.stderr
