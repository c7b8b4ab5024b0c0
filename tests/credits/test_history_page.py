"""The credits page: balance and totals, keyset pages, filters, and the streaming CSV export."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from credits.models import CreditBalance, LedgerEntry, LedgerKind
from credits.services import credits_grant, credits_spend

pytestmark = pytest.mark.django_db

URL = "/credits/"
EXPORT = "/credits/export.csv"


def make_history(user, count: int) -> None:
    """``count`` entries alternating grants and spends (the first is the seed grant)."""
    for i in range(count - 1):
        if i % 2:
            credits_spend(
                user=user,
                amount=1,
                idempotency_key=f"h-spend-{user.pk}-{i}",
                description=f"Job {i}",
            )
        else:
            credits_grant(
                user=user, amount=2, kind=LedgerKind.BONUS, idempotency_key=f"h-grant-{user.pk}-{i}"
            )


@pytest.fixture
def customer(make_user, client):
    user = make_user(credits=10)
    client.force_login(user)
    return user


def rows_of(response):
    return [
        int(r)
        for r in response.content.decode().split('data-entry-id="')[1:]
        for r in [r.split('"')[0]]
    ]


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_page_shows_balance_totals_and_history(client, customer):
    spend = credits_spend(user=customer, amount=4, idempotency_key="s", description="Poster render")

    response = client.get(URL)

    assert response.status_code == 200
    body = response.content.decode()
    assert response.context["balance"].balance == 6
    assert (
        response.context["balance"].lifetime_earned,
        response.context["balance"].lifetime_spent,
    ) == (10, 4)
    assert "Poster render" in body and ">-4<" in body
    assert rows_of(response)[0] == spend.pk
    assert 'data-testid="credits-balance"' in body


@pytest.mark.django_db(transaction=True)  # as in production: no transaction around the request
@pytest.mark.parametrize("regeneration_due", [False, True])
@pytest.mark.parametrize("entries", [5, 60])
def test_the_page_costs_the_same_queries_for_5_or_60_entries(
    client, customer, django_assert_num_queries, entries, regeneration_due
):
    make_history(customer, entries)
    if regeneration_due:
        CreditBalance.objects.filter(user=customer).update(
            regen_checked_at=timezone.now() - timedelta(hours=1)
        )

    # session, user, the balance (one statement, with any regeneration due), the lots' summary
    # (paid, promotional, soonest expiry: one statement), one history page
    with django_assert_num_queries(5):
        response = client.get(URL)

    assert response.status_code == 200
    assert len(rows_of(response)) == min(entries + regeneration_due, 50)


def test_pages_follow_the_keyset_without_gaps_or_repeats(client, customer, settings):
    settings.CREDITS_HISTORY_PAGE_SIZE = 10
    make_history(customer, 20)
    # Five entries written in one transaction share created_at; the id settles their order.
    with transaction.atomic():
        for i in range(5):
            credits_grant(
                user=customer, amount=1, kind=LedgerKind.BONUS, idempotency_key=f"tie-{i}"
            )
    seen, url = [], URL
    with CaptureQueriesContext(connection) as queries:
        while url:
            response = client.get(url)
            assert response.status_code == 200
            seen.extend(rows_of(response))
            cursor = response.context["page"].next_cursor
            url = f"{URL}?before={cursor.encode()}" if cursor else None

    assert len(seen) == 25 == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
    assert "That is everything." in response.content.decode()


def test_older_entries_link_keeps_the_filters(client, customer, settings):
    settings.CREDITS_HISTORY_PAGE_SIZE = 3
    make_history(customer, 12)

    response = client.get(URL, {"kind": "SPEND"})

    link = response.context["page"].next_cursor.encode()
    assert f"?kind=SPEND&amp;before={link}" in response.content.decode()
    second = client.get(URL, {"kind": "SPEND", "before": link})
    assert {e.kind for e in second.context["page"].entries} == {"SPEND"}


def test_filter_by_kind(client, customer):
    make_history(customer, 9)

    response = client.get(URL, {"kind": "SPEND"})

    entries = response.context["page"].entries
    assert len(entries) == 4 and {e.kind for e in entries} == {"SPEND"}


def test_filter_by_date_range_is_inclusive(client, customer):
    make_history(customer, 3)
    today = timezone.localdate()

    assert len(client.get(URL, {"date_from": today, "date_to": today}).context["page"].entries) == 3
    assert client.get(URL, {"date_to": today - timedelta(days=1)}).context["page"].entries == []
    assert client.get(URL, {"date_from": today + timedelta(days=1)}).context["page"].entries == []


@pytest.mark.parametrize(
    "query, message",
    [
        ({"kind": "FREE_MONEY"}, "Select a valid choice"),
        ({"date_from": "2024-13-45"}, "Enter a valid date"),
        (
            {"date_from": "2025-05-02", "date_to": "2025-05-01"},
            "The start date is after the end date",
        ),
        ({"date_to": "0001-01-01"}, "Pick a date between"),
        ({"before": "not-a-position"}, "That page link is not valid any more"),
        ({"before": "99999999999999999999999.1"}, "That page link is not valid any more"),
    ],
)
def test_bad_filters_get_a_clear_message_not_a_server_error(client, customer, query, message):
    response = client.get(URL, query)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert response.context["page"] is None

    export = client.get(EXPORT, query)
    assert export.status_code == 400
    assert message in export.content.decode()


def parse_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_export_streams_every_entry_oldest_first(client, customer):
    make_history(customer, 7)
    credits_spend(user=customer, amount=1, idempotency_key="formula", description='=HYPERLINK("x")')

    response = client.get(EXPORT)

    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="credits-history-')
    rows = parse_csv(response)
    assert rows[0][:5] == ["entry_id", "created_at", "kind", "description", "amount"]
    body = rows[1:]
    assert len(body) == 8
    assert [int(r[0]) for r in body] == sorted(int(r[0]) for r in body)
    assert (
        sum(int(r[4]) for r in body)
        == int(body[-1][6])
        == CreditBalance.objects.get(user=customer).balance
    )
    assert body[-1][3] == '\'=HYPERLINK("x")'  # a spreadsheet will not run it


def test_the_csv_export_applies_the_filters(client, customer):
    make_history(customer, 9)

    rows = parse_csv(client.get(EXPORT, {"kind": "SPEND"}))

    assert len(rows) == 1 + 4 and {r[2] for r in rows[1:]} == {"SPEND"}


def test_the_csv_export_reads_through_a_server_side_cursor_in_chunks(client, customer, settings):
    settings.CREDITS_EXPORT_CHUNK_SIZE = 10
    make_history(customer, 60)
    response = client.get(EXPORT)
    lines = iter(response.streaming_content)

    first = [next(lines) for _ in range(3)]  # the header and two entries

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
        assert cursor.fetchone()[0] == 1  # rows are still being fetched from the server
    rest = list(lines)
    assert len(first) + len(rest) == 61
    response.close()


def test_other_users_entries_are_never_shown(client, customer, make_user):
    other = make_user(credits=99)

    response = client.get(URL)
    rows = parse_csv(client.get(EXPORT))

    assert response.context["balance"].balance == 10
    assert all(e.user_id == customer.pk for e in response.context["page"].entries)
    assert len(rows) == 2 and int(rows[1][0]) == LedgerEntry.objects.get(user=customer).pk
    assert LedgerEntry.objects.filter(user=other).exists()


def test_staff_reasons_of_adjustments_made_before_notes_were_kept_apart_stay_hidden(
    client, customer, make_user
):
    """Such entries hold the staff reason as their description (and no internal note): the
    customer reads a neutral line, in the page and the export; staff still see the reason."""
    from credits.ledger_sql import Movement, apply_movement

    staff = make_user(is_staff=True)
    for delta, key in ((7, "legacy-add"), (-2, "legacy-take")):
        apply_movement(
            Movement(
                user_id=customer.pk,
                delta=delta,
                kind=LedgerKind.ADJUSTMENT,
                idempotency_key=key,
                action="credits.adjust",
                description="Suspected reseller, see fraud ticket",
                internal_note=None,
                created_by_id=staff.pk,
            )
        )
    assert (
        LedgerEntry.objects.filter(
            user=customer, internal_note__isnull=True, kind="ADJUSTMENT"
        ).count()
        == 2
    )

    page = client.get(URL).content.decode()
    export = b"".join(client.get(EXPORT).streaming_content).decode()

    for text in (page, export):
        assert "fraud" not in text and "reseller" not in text
        assert (
            "Credits added by our support team" in text
            and "Credits removed by our support team" in text
        )


def test_the_account_page_and_the_credits_page_name_the_totals_alike(client, customer):
    credits_spend(user=customer, amount=3, idempotency_key="words", description="Poster")

    for url in (URL, "/account/"):
        body = client.get(url).content.decode()
        assert ">Received<" in body and ">Spent<" in body, url
        assert "Earned" not in body, url


def test_a_refund_shows_its_description_and_keeps_the_staff_note_to_staff(client, customer):
    from credits.services import credits_refund

    spend = credits_spend(
        user=customer, amount=4, idempotency_key="to-refund", description="Poster"
    )
    refund = credits_refund(
        spend=spend,
        idempotency_key="refund-it",
        reason="Refund of a blurry poster",
        internal_note="Customer threatened a chargeback",
    )

    page = client.get(URL).content.decode()
    export = b"".join(client.get(EXPORT).streaming_content).decode()

    assert refund.internal_note == "Customer threatened a chargeback"
    assert "Refund of a blurry poster" in page and "Refund of a blurry poster" in export
    assert "chargeback" not in page and "chargeback" not in export
