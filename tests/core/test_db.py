"""core.db: statements sent together, and the round trips they cost."""

import pytest
from django.db import connection, transaction

from core.db import RoundTrips, run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_round_trips_count_the_drivers_transaction_control():
    with RoundTrips() as trips, transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    assert trips.count == 3  # BEGIN, the statement, COMMIT
    sent = [line.split("\t")[2] for line in trips.messages if line.startswith("F")]
    assert sent == ["Query", "Query", "Query"]


def test_statements_run_together_outside_a_transaction_cost_one_round_trip():
    with RoundTrips() as trips:
        results = run_together([("SELECT 1", []), ("SELECT %s", [2]), ("SELECT 3, 4", [])])

    assert results == [[(1,)], [(2,)], [(3, 4)]]
    assert trips.count == 1
