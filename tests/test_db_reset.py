"""The quick teardown of transactional tests leaves the database as Django's flush would."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.test import TransactionTestCase

from credits.models import CreditLot, LedgerEntry, LotMovement
from credits.services import credits_spend
from tests import db_reset


class _Case(TransactionTestCase):
    __test__ = False  # a handle on the teardown, not a test
    databases = {"default"}

    def runTest(self):  # a test case instance needs a test method
        pass


def _rows_per_table() -> dict[str, int]:
    tables, _, _ = db_reset._schema_of(connection)
    counts = {}
    with connection.cursor() as cursor:
        for name in db_reset._tables_with_rows(connection, tables):
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")
            counts[name] = cursor.fetchone()[0]
    return counts


@pytest.mark.django_db(transaction=True)
def test_the_quick_teardown_empties_what_the_test_wrote_and_keeps_what_flush_recreates(
    make_user,
):
    make_user(credits=5)
    _Case()._fixture_teardown()  # the run's first teardown is a flush (the baseline)

    user = make_user(credits=5)  # a user, a balance, ledger entries, a lot
    credits_spend(user=user, amount=2, idempotency_key="reset-check")  # a lot movement
    assert LedgerEntry.objects.exists() and CreditLot.objects.exists()
    assert LotMovement.objects.exists()
    content_type_ids = sorted(ContentType.objects.values_list("pk", flat=True))

    _Case()._fixture_teardown()

    quick = _rows_per_table()
    # Not flushed (a flush recreates the content types under new ids), yet emptied as flush would.
    assert sorted(ContentType.objects.values_list("pk", flat=True)) == content_type_ids
    call_command("flush", verbosity=0, interactive=False)
    assert quick == _rows_per_table()
    assert not LedgerEntry.objects.exists() and not LotMovement.objects.exists()
