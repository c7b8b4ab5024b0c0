"""A connection kept from an earlier request is checked before its first use, without a round
trip, and replaced when the server has closed it (a restart, a failover, an ended session)."""

import psycopg
import pytest
from django.db import close_old_connections, connection

from core.db import RoundTrips
from tests.conftest import test_database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kept_connection(monkeypatch):
    """This thread's connection, kept between requests as production keeps it."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    connection.ensure_connection()
    assert connection.health_check_enabled
    return connection


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_connection_the_server_ended_between_requests_is_replaced(kept_connection):
    before = backend_pid()
    with psycopg.connect(test_database_url(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [before]).fetchone()[0]

    close_old_connections()  # a request ends, the next one starts

    assert backend_pid() != before  # the first statement of the request ran on a new one


def test_a_healthy_kept_connection_is_used_without_a_round_trip_of_its_own(kept_connection):
    before = backend_pid()
    close_old_connections()

    with RoundTrips() as trips:
        assert backend_pid() == before

    sent = [message for message in trips.messages if message.startswith("F")]
    assert trips.count == 1 and len(sent) == 1 and "pg_backend_pid" in sent[0]  # no SELECT 1


def test_a_connection_left_in_a_failed_state_is_replaced(kept_connection):
    before = backend_pid()
    kept_connection.connection.pgconn.finish()  # the driver's connection is gone

    close_old_connections()

    assert backend_pid() != before
