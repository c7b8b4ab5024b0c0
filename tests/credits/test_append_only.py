"""Ledger rows are never changed or removed: not through the model, not by raw SQL."""

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from credits.models import LedgerEntry, LedgerKind
from credits.services import credits_spend
from tests.credits.helpers import assert_ledger_clean

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(make_user):
    user = make_user(credits=10)
    return credits_spend(user=user, amount=3, idempotency_key="s")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE credits_ledgerentry SET amount = -1 WHERE id = %s",
        "UPDATE credits_ledgerentry SET description = 'edited' WHERE id = %s",
        "UPDATE credits_ledgerentry SET internal_note = 'edited' WHERE id = %s",
        "UPDATE credits_ledgerentry SET internal_note = NULL WHERE id = %s",
        "UPDATE credits_ledgerentry SET idempotency_key = 'other' WHERE id = %s",
        "DELETE FROM credits_ledgerentry WHERE id = %s",
    ],
)
def test_raw_sql_update_or_delete_of_a_ledger_row_fails(entry, sql):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])

    stored = LedgerEntry.objects.get(pk=entry.pk)
    assert (stored.amount, stored.description, stored.idempotency_key) == (-3, "", "s")


def test_the_model_refuses_save_and_delete(entry):
    stored = LedgerEntry.objects.get(pk=entry.pk)
    stored.amount = -1

    with pytest.raises(TypeError, match="append-only"):
        stored.save()
    with pytest.raises(TypeError, match="append-only"):
        stored.delete()
    with pytest.raises(TypeError, match="only by credits.services"):
        LedgerEntry(
            user_id=entry.user_id,
            amount=5,
            kind=LedgerKind.BONUS,
            balance_before=0,
            balance_after=5,
            idempotency_key="new",
        ).save()
    with pytest.raises(TypeError, match="append-only"):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=-1)
    with pytest.raises(TypeError, match="append-only"):
        LedgerEntry.objects.filter(pk=entry.pk).delete()

    assert LedgerEntry.objects.get(pk=entry.pk).amount == -3
    assert_ledger_clean()


def test_deleting_an_order_keeps_the_entry_and_the_order_it_names(make_user):
    """The ledger holds no foreign key to orders: deleting one changes no entry, which still
    names the order that caused it; the pair itself can never be changed."""
    from decimal import Decimal

    from credits.services import credits_grant
    from payments.ledger import order_source
    from payments.models import CreditPackage, Order

    user = make_user()
    package = CreditPackage.objects.create(name="Small", credits=5, price=Decimal("5.00"))
    order = Order.objects.create(
        user=user,
        package=package,
        amount=Decimal("5.00"),
        currency="USD",
        credits=5,
        provider=Order.Provider.SANDBOX,
    )
    grant = credits_grant(
        user=user,
        amount=5,
        kind=LedgerKind.PURCHASE,
        idempotency_key="o",
        source=order_source(order),
    )
    source = order_source(order)

    order.delete()

    stored = LedgerEntry.objects.get(pk=grant.pk)
    assert (stored.source, stored.amount, stored.balance_after) == (source, 5, 5)
    for sql in (
        "UPDATE credits_ledgerentry SET source_id = NULL, source_type = NULL WHERE id = %s",
        "UPDATE credits_ledgerentry SET source_id = source_id + 1 WHERE id = %s",
        "UPDATE credits_ledgerentry SET source_type = 'generations.job' WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [grant.pk])
    assert LedgerEntry.objects.get(pk=grant.pk).source == source


def test_raw_sql_cannot_relink_an_entry(make_user):
    from credits.services import credits_grant

    grant = credits_grant(user=make_user(), amount=5, kind=LedgerKind.BONUS, idempotency_key="g")

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE credits_ledgerentry SET created_by_id = user_id WHERE id = %s", [grant.pk]
            )
