"""The ledger and orders changelists cost a constant number of queries however many rows they
show, and a big table is never counted in full."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from credits.services import credits_grant, credits_spend


def fill_ledger(user, entries: int) -> None:
    credits_grant(user=user, amount=10 * entries, kind="BONUS", idempotency_key=f"fill:{user.pk}")
    for i in range(entries - 1):
        credits_spend(user=user, amount=1, idempotency_key=f"fill:{user.pk}:{i}")


def queries_for(client, url, **params) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params)
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


@pytest.mark.django_db
def test_ledger_changelist_queries_do_not_grow_with_rows(client, superuser, make_user):
    client.force_login(superuser)
    url = reverse("admin:credits_ledgerentry_changelist")
    fill_ledger(make_user(), 3)
    few = queries_for(client, url)
    filtered_few = queries_for(client, url, kind="SPEND")
    for _ in range(4):
        fill_ledger(make_user(), 15)  # 63 rows: more than a page, from several users
    many = queries_for(client, url)
    filtered_many = queries_for(client, url, kind="SPEND")
    assert len(many) == len(few), "\n".join(many)
    assert len(filtered_many) == len(filtered_few), "\n".join(filtered_many)


@pytest.mark.django_db
def test_orders_changelist_queries_do_not_grow_with_rows(client, superuser, make_user, make_order):
    client.force_login(superuser)
    url = reverse("admin:payments_order_changelist")
    make_order(make_user())
    few = queries_for(client, url)
    customers = [make_user() for _ in range(5)]
    for i in range(60):
        make_order(customers[i % 5], credits=10 + i)
    many = queries_for(client, url)
    assert len(many) == len(few), "\n".join(many)


@pytest.mark.django_db
def test_django_assert_num_queries_holds_for_both_sizes(
    client, superuser, make_user, django_assert_num_queries
):
    client.force_login(superuser)
    url = reverse("admin:credits_ledgerentry_changelist")
    fill_ledger(make_user(), 2)
    expected = len(queries_for(client, url))
    for _ in range(3):
        fill_ledger(make_user(), 25)
    with django_assert_num_queries(expected):
        assert client.get(url).status_code == 200


def full_counts(sql_list, table):
    return [
        q
        for q in sql_list
        if "COUNT(" in q.upper() and f'FROM "{table}"' in q and "WHERE" not in q.upper()
    ]


@pytest.mark.django_db
def test_big_unfiltered_ledger_is_not_counted_in_full(client, superuser, make_user, settings):
    """Above the threshold the planner's estimate stands in for COUNT(*)."""
    fill_ledger(make_user(), 5)
    client.force_login(superuser)
    url = reverse("admin:credits_ledgerentry_changelist")

    settings.BACKOFFICE_ESTIMATED_COUNT_THRESHOLD = 10**9  # small table: counted exactly
    small = queries_for(client, url)
    assert full_counts(small, "credits_ledgerentry")

    settings.BACKOFFICE_ESTIMATED_COUNT_THRESHOLD = 0  # as a big table: estimated
    big = queries_for(client, url)
    assert not full_counts(big, "credits_ledgerentry"), big
    assert any("reltuples" in q for q in big)
    assert len(big) == len(small) - 1  # the estimate replaces the exact count


@pytest.mark.django_db
def test_filtered_count_is_capped(client, superuser, make_user, settings):
    settings.BACKOFFICE_FILTERED_COUNT_CAP = 5
    fill_ledger(make_user(), 12)
    client.force_login(superuser)
    response = client.get(reverse("admin:credits_ledgerentry_changelist"), {"kind": "SPEND"})
    html = response.content.decode()
    assert "More than 5" in html
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("admin:credits_ledgerentry_changelist"), {"kind": "SPEND"})
    assert any("LIMIT 6" in q["sql"] and "COUNT(" in q["sql"].upper() for q in ctx.captured_queries)
