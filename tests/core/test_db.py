"""core.db: statements sent together, and the round trips they cost."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg import pq

import core.db
from core.db import RoundTrips, insert_statement, run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_round_trips_count_the_drivers_transaction_control():
    with RoundTrips() as trips, transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    assert trips.count == 3  # BEGIN, the statement, COMMIT
    sent = [line.split("\t")[2] for line in trips.messages if line.startswith("F")]
    assert sent == ["Query", "Query", "Query"]


def test_statements_run_together_outside_a_transaction_cost_one_round_trip(binding):
    with RoundTrips() as trips:
        results = run_together([("SELECT 1", []), ("SELECT %s", [2]), ("SELECT 3, 4", [])])

    assert results == [[(1,)], [(2,)], [(3, 4)]]
    assert trips.count == 1


def new_user_statement(email: str):
    from accounts.models import User

    return insert_statement(User(email=email, password="!"))


def stored_emails() -> list[str]:
    from accounts.models import User

    return sorted(User.objects.values_list("email", flat=True))


def test_a_failing_statement_of_the_first_message_rolls_the_whole_transaction_back():
    run_together([new_user_statement("taken@example.com")])
    ran = []

    with pytest.raises(IntegrityError), transaction.atomic():
        transaction.on_commit(lambda: ran.append("committed"))
        run_together(
            [new_user_statement("new@example.com"), new_user_statement("taken@example.com")]
        )

    assert stored_emails() == ["taken@example.com"]  # the first insert went with the rollback
    assert ran == []
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE
    assert connection.get_autocommit()
    with transaction.atomic():  # the connection goes on as usual
        run_together([new_user_statement("later@example.com")])
    assert stored_emails() == ["later@example.com", "taken@example.com"]


@pytest.fixture(params=["client-side", "server-side"])
def binding(request, monkeypatch):
    """Both ways the connection may bind parameters (``OPTIONS["server_side_binding"]``)."""
    if request.param == "server-side":
        connection.close()
        options = {**connection.settings_dict["OPTIONS"], "server_side_binding": True}
        monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
        request.addfinalizer(connection.close)
    return request.param


def test_outside_a_transaction_a_failing_statement_keeps_none_of_the_others(binding):
    run_together([new_user_statement("taken@example.com")])

    with pytest.raises(IntegrityError):
        run_together(
            [new_user_statement("first@example.com"), new_user_statement("taken@example.com")]
        )

    assert stored_emails() == ["taken@example.com"]
    run_together([new_user_statement("after@example.com")])  # the connection goes on
    assert stored_emails() == ["after@example.com", "taken@example.com"]


def test_on_commit_callbacks_run_once_after_the_transaction_it_opened_commits():
    ran = []
    with transaction.atomic():
        run_together([new_user_statement("a@example.com")])
        transaction.on_commit(lambda: ran.append(stored_emails()))
        assert ran == []
    assert ran == [["a@example.com"]]


def test_a_savepoint_after_the_first_message_rolls_back_only_its_own_work():
    with transaction.atomic():
        run_together([new_user_statement("kept@example.com")])
        with pytest.raises(IntegrityError), transaction.atomic():
            run_together([new_user_statement("gone@example.com")])
            run_together([new_user_statement("kept@example.com")])
    assert stored_emails() == ["kept@example.com"]


def plain(params) -> list:
    """The parameters compared: a JSON value without its wrapper, the time of an
    ``auto_now`` field (set again by each compilation) as its type."""
    return [
        type(param) if isinstance(param, datetime) else getattr(param, "obj", param)
        for param in params
    ]


def test_an_insert_compiled_once_is_the_one_django_compiles(monkeypatch):
    from generations.models import GenerationJob

    def job(prompt: str) -> GenerationJob:
        return GenerationJob(
            user_id=1, operation="image", model="m", prompt=prompt, parameters={"seed": 4}
        )

    monkeypatch.setattr(core.db, "_PLAIN_INSERTS", {})
    first_sql, _ = insert_statement(job("first"))  # compiled, and kept
    assert list(core.db._PLAIN_INSERTS.values()) == [first_sql]
    second = job("second")
    sql, params = insert_statement(second)  # from the kept statement
    monkeypatch.setattr(core.db, "_PLAIN_INSERTS", {})
    compiled_sql, compiled_params = insert_statement(second)

    assert sql == first_sql == compiled_sql
    assert plain(params) == plain(compiled_params)
    assert "second" in params and {"seed": 4} in plain(params)


def test_a_value_that_is_an_expression_is_compiled_for_its_object():
    from django.db.models.functions import Now

    run_together([new_user_statement("plain@example.com")])
    from accounts.models import User

    with_expression = User(email="now@example.com", password="!", last_login=Now())
    sql, params = insert_statement(with_expression)
    run_together([(sql, params)])
    run_together([new_user_statement("plain-again@example.com")])

    assert "STATEMENT_TIMESTAMP()" in sql
    assert User.objects.get(email="now@example.com").last_login is not None
    assert stored_emails() == ["now@example.com", "plain-again@example.com", "plain@example.com"]


def orders_of(user_id: int, status: str):
    from payments.models import Order

    return Order.objects.select_related("user", "package").filter(user_id=user_id, status=status)


def test_a_select_compiled_once_gives_what_the_queryset_gives(make_user, monkeypatch):
    from payments.models import CreditPackage, Order

    monkeypatch.setattr(core.db, "_SELECTS", {})
    package = CreditPackage.objects.create(name="Basic", credits=100, price=Decimal("9.99"))
    buyer, other = make_user(), make_user()
    for user, status in [(buyer, "PENDING"), (buyer, "COMPLETED"), (other, "PENDING")]:
        Order.objects.create(
            user=user,
            package=package,
            status=status,
            amount=Decimal("9.99"),
            currency="EUR",
            credits=100,
            provider="SANDBOX",
        )

    for user, status in [(buyer, "PENDING"), (buyer, "COMPLETED"), (other, "COMPLETED")]:
        with CaptureQueriesContext(connection) as queries:
            found = core.db.select_compiled(orders_of, user.pk, status)
        expected = list(orders_of(user.pk, status))
        assert [o.pk for o in found] == [o.pk for o in expected]
        for got, want in zip(found, expected, strict=True):
            assert got.amount == want.amount == Decimal("9.99")
            assert got.user.email == user.email  # selected along: no query of its own
            assert got.package.name == package.name
        assert len(queries) == 1
    assert len(core.db._SELECTS) == 1  # compiled once


def test_a_builder_whose_arguments_are_not_its_parameters_is_refused(monkeypatch):
    from payments.models import Order

    def twice(pk: int):
        return Order.objects.filter(pk=pk).exclude(credits=pk)

    def constant(pk: int):
        return Order.objects.filter(pk=5)

    monkeypatch.setattr(core.db, "_SELECTS", {})
    for build in (twice, constant):
        with pytest.raises(ValueError, match="used once"):
            core.db.select_compiled(build, 1)


def test_a_locking_select_compiled_once_needs_a_transaction(monkeypatch):
    from django.db.transaction import TransactionManagementError

    from payments.models import Order

    def locked(pk: int):
        return Order.objects.select_for_update().filter(pk=pk)

    monkeypatch.setattr(core.db, "_SELECTS", {})
    with pytest.raises(TransactionManagementError):
        core.db.select_compiled(locked, 1)
    with transaction.atomic():
        assert core.db.select_compiled(locked, 1) == []


def test_an_update_compiled_once_writes_the_fields_named_and_auto_now(make_user):
    from accounts.models import User

    user = make_user()
    before = User.objects.get(pk=user.pk).updated_at
    user.name, user.email = "Renamed", "not-written@example.com"
    core.db.update_fields(user, ["name", "updated_at"])
    stored = User.objects.get(pk=user.pk)

    assert stored.name == "Renamed" and stored.email != "not-written@example.com"
    assert stored.updated_at > before and stored.updated_at == user.updated_at
    User.objects.filter(pk=user.pk).delete()
    with pytest.raises(DatabaseError):
        core.db.update_fields(user, ["name"])


def test_a_prepared_statement_is_prepared_once_per_connection(settings):
    for _ in range(3):
        with core.db.prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int + 1, '%%'", [1])
            assert cursor.fetchall() == [(2, "%")]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s",
            ["SELECT $1::int + 1, '%'"],
        )
        assert cursor.fetchone() == (1,)

    settings.CREDITS_PREPARED_STATEMENTS = False  # behind an old PgBouncer: never prepared
    with core.db.prepared_cursor() as cursor:
        cursor.execute("SELECT %s::int + 2", [1])
        assert cursor.fetchall() == [(3,)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%+ 2'")
        assert cursor.fetchone() == (0,)


def test_getting_one_object_compiled_once_that_is_not_there_raises_as_get_does(make_user):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = make_user()

    def by_pk(pk: int):
        return User.objects.filter(pk=pk)

    assert core.db.get_compiled(by_pk, user.pk) == user
    with pytest.raises(User.DoesNotExist, match="User matching query does not exist"):
        core.db.get_compiled(by_pk, user.pk + 1000)
