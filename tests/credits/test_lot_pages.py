"""The balance as customers read it from their lots: the paid and promotional parts and the
soonest expiry in the header and on the credits page, expiry and void entries told in words,
and the lots in the CSV export."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.formats import date_format

from credits.models import CreditLot, LedgerEntry, LedgerKind
from credits.references import Source
from credits.selectors import credit_summary, lot_entry_description
from credits.services import (
    credits_adjust,
    credits_clawback,
    credits_grant,
    credits_grant_trial,
    credits_spend,
)
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db

URL = "/credits/"
EXPORT = "/credits/export.csv"


@pytest.fixture
def staff(make_user):
    return make_user(is_staff=True)


@pytest.fixture
def customer(make_user, client, staff):
    """100 paid credits (no expiry), 10 trial credits (30 days), 12 goodwill credits from
    support expiring in 3 days."""
    user = make_user()
    credits_grant(
        user=user,
        amount=100,
        kind=LedgerKind.PURCHASE,
        idempotency_key="buy",
        cost_basis=Decimal("0.05"),
        currency="EUR",
    )
    credits_grant_trial(user=user)
    credits_adjust(
        user=user,
        amount=12,
        reason="Goodwill after an outage",
        staff_user=staff,
        idempotency_key="goodwill",
        expires_at=timezone.now() + timedelta(days=3),
    )
    client.force_login(user)
    return user


def day(moment, fmt="j F Y") -> str:
    return date_format(timezone.localtime(moment), fmt)


def soonest_expiry(user):
    return (
        CreditLot.objects.filter(user=user, remaining__gt=0, expires_at__isnull=False)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)
        .first()
    )


def test_header_and_credits_page_show_the_paid_and_promotional_parts_and_the_soonest_expiry(
    client, customer
):
    expires = soonest_expiry(customer)

    body = client.get(URL).content.decode()

    pill = body[body.index('class="balance-pill') :].split("</a>")[0]
    assert "122 credits" in pill
    assert "100 paid · 22 promo" in pill
    assert f"12 expire {day(expires, 'j M')}" in pill
    assert f"12 credits expire on {day(expires)}" in pill  # the title says it in full
    assert ">122<" in body  # the balance figure
    assert "100 paid · 22 promotional" in body
    assert "12 credits expire on" in body and day(expires) in body

    # Spends burn the soonest expiry first: 7 of the goodwill credits are left to expire.
    credits_spend(user=customer, amount=5, idempotency_key="poster")
    body = client.get(URL).content.decode()
    assert "100 paid · 17 promotional" in body
    assert "7 credits expire on" in body


def test_only_paid_credits_show_no_promotional_part_and_no_expiry(client, make_user):
    user = make_user()
    credits_grant(user=user, amount=40, kind=LedgerKind.PURCHASE, idempotency_key="buy")
    client.force_login(user)

    body = client.get(URL).content.decode()

    assert "40 credits" in body and "40 paid · 0 promotional" in body
    assert 'data-testid="header-balance-split"' not in body
    assert "expire" not in body.split("<main")[0] and 'data-testid="balance-expiry"' not in body


@pytest.mark.django_db(transaction=True)  # as in production: no transaction around the request
def test_the_page_reads_the_lots_in_one_more_query_however_many(
    client, customer, staff, django_assert_num_queries
):
    for i in range(8):
        credits_adjust(
            user=customer,
            amount=1 + i,
            reason="Goodwill",
            staff_user=staff,
            idempotency_key=f"more-{i}",
            expires_at=timezone.now() + timedelta(days=10 + i),
        )

    # session, user, the balance, the lots' summary (one statement), one history page
    client.get(URL)  # the first view records the free-tier regeneration check

    # session, user, the balance, one history page, the lots' summary (one statement)
    with django_assert_num_queries(5):
        response = client.get(URL)

    assert response.context["summary"].promotional == 22 + sum(range(1, 9))


@pytest.mark.django_db(transaction=True)  # the database clock moves between statements
def test_lapsed_credits_are_not_shown_and_their_expiry_reads_in_words(client, customer, staff):
    lapses = timezone.now() + timedelta(milliseconds=400)
    credits_adjust(
        user=customer,
        amount=9,
        reason="Try the new model today",
        staff_user=staff,
        idempotency_key="today-only",
        expires_at=lapses,
    )
    wait_until(lambda: _db_now() > lapses, timeout=5)

    # Not yet written off: the balance row still holds them, the pages do not.
    summary = credit_summary(user_id=customer.pk, balance=131)
    assert (summary.lapsed, summary.available, summary.promotional) == (9, 122, 22)

    response = client.get(URL)  # catches up: the EXPIRY entry is written

    body = response.content.decode()
    assert response.context["summary"].available == 122
    expiry = LedgerEntry.objects.get(user=customer, kind=LedgerKind.EXPIRY)
    assert expiry.amount == -9
    granted = day(expiry.created_at, "j M")
    assert f"9 credits expired (credits from our support team from {granted})" in body


def test_an_expiry_reads_which_grant_it_came_from():
    lots = [
        {
            "lot": 7,
            "credits": -12,
            "category": "promotional",
            "source": "trial",
            "effective_at": "2025-11-01T10:00:00+00:00",
        }
    ]
    text = lot_entry_description(
        kind=LedgerKind.EXPIRY, amount=-12, moved_lots=lots, default="Credits expired"
    )
    assert text == "12 credits expired (trial credits from 1 Nov 2025)"
    two = lots + [{**lots[0], "lot": 8, "source": "voucher", "credits": -1}]
    assert lot_entry_description(
        kind=LedgerKind.EXPIRY, amount=-13, moved_lots=two, default=""
    ).endswith("(trial credits from 1 Nov 2025 and 1 other grant)")
    assert lot_entry_description(
        kind=LedgerKind.SPEND, amount=-12, moved_lots=lots, default="Poster"
    ) == ("Poster")
    # An expiry written before credits had lots keeps its own words.
    assert (
        lot_entry_description(kind=LedgerKind.EXPIRY, amount=-3, moved_lots=None, default="Old")
        == "Old"
    )


def test_a_voided_bonus_reads_in_words_in_the_history(client, make_user):
    user = make_user()
    order = Source("payments.order", 501)
    credits_grant(
        user=user, amount=50, kind=LedgerKind.PURCHASE, idempotency_key="buy", source=order
    )
    credits_grant(user=user, amount=10, kind=LedgerKind.BONUS, idempotency_key="b", source=order)
    credits_clawback(
        user=user, amount=50, idempotency_key="refund-501", reason="Refunded", source=order
    )
    client.force_login(user)

    body = client.get(URL).content.decode()

    void = LedgerEntry.objects.get(user=user, kind=LedgerKind.VOID)
    granted = day(void.created_at, "j M")
    assert f"10 credits voided (bonus credits from {granted})" in body
    assert "Voided" in body  # the kind's badge


def test_grants_show_their_category_and_expiry_in_the_history(client, customer):
    body = client.get(URL).content.decode()

    trial = CreditLot.objects.get(user=customer, source="trial")
    rows = {
        row.split('"')[0]: row
        for row in body.split('data-entry-id="')[1:]
        for row in [row.split("</tr>")[0]]
    }
    assert (
        f"promotional · until {day(trial.expires_at, 'j M Y')}" in rows[str(trial.grant_entry_id)]
    )
    purchase = CreditLot.objects.get(user=customer, source="purchase")
    assert 'data-testid="entry-lot"' not in rows[str(purchase.grant_entry_id)]


def test_the_export_carries_each_entrys_category_and_lots(client, customer):
    spend = credits_spend(user=customer, amount=20, idempotency_key="big-job")  # 12 + 8 + 0

    rows = list(csv.DictReader(io.StringIO(b"".join(client.get(EXPORT)).decode())))

    by_id = {int(r["entry_id"]): r for r in rows}
    lots = {lot.source: lot for lot in CreditLot.objects.filter(user=customer)}
    purchase = by_id[lots["purchase"].grant_entry_id]
    assert (purchase["category"], purchase["lot"], purchase["lot_expires_at"]) == (
        "paid",
        str(lots["purchase"].pk),
        "",
    )
    trial = by_id[lots["trial"].grant_entry_id]
    assert trial["category"] == "promotional"
    assert trial["lot_expires_at"] == lots["trial"].expires_at.isoformat()
    drawn = by_id[spend.pk]
    assert drawn["category"] == "promotional"
    assert drawn["lot"] == f"{lots['adjustment'].pk};{lots['trial'].pk}"

    mixed = credits_spend(user=customer, amount=5, idempotency_key="mixed")  # 2 trial + 3 paid
    rows = list(csv.DictReader(io.StringIO(b"".join(client.get(EXPORT)).decode())))
    last = rows[-1]
    assert int(last["entry_id"]) == mixed.pk
    assert last["category"] == "paid;promotional"
    assert last["lot"] == f"{lots['trial'].pk};{lots['purchase'].pk}"


def _db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]
