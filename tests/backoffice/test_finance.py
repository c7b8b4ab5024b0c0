"""The finance report: per category and currency, opening + granted - consumed - expired -
voided = closing, with deferred revenue, recognised revenue and breakage at each lot's cost
basis; it ties out exactly to the lots and to the ledger."""

import csv
import io
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.finance import finance_report, finance_report_between
from credits.ledger_check import ledger_check
from credits.models import CreditLot, LedgerEntry, LotMovement
from credits.references import Source
from credits.services import (
    credits_adjust,
    credits_clawback,
    credits_forfeit,
    credits_grant,
    credits_refund,
    credits_spend,
    lots_expire_due,
)
from payments.ledger import ORDER_SOURCE
from tests.conftest import wait_until

FINANCE = "backoffice.view_finance"

# --- independent reconstructions ----------------------------------------------------------


def lots_held_at(t: datetime) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """Per (category, currency): credits the lots held at ``t`` and their value, replayed forward
    from every lot's original and its movements dated before ``t`` (by their ledger entry, never
    before the lot's grant)."""
    granted_at = dict(CreditLot.objects.values_list("pk", "grant_entry__created_at"))
    moved = defaultdict(int)
    for lot_id, credits, at in LotMovement.objects.values_list(
        "lot_id", "credits", "entry__created_at"
    ):
        if max(at, granted_at[lot_id]) < t:
            moved[lot_id] += credits
    held = defaultdict(lambda: [0, Decimal("0")])
    for lot in CreditLot.objects.all():
        if granted_at[lot.pk] < t:
            credits = lot.original + moved[lot.pk]
            assert 0 <= credits <= lot.original
            held[lot.category, lot.currency][0] += credits
            held[lot.category, lot.currency][1] += credits * lot.cost_basis
    return {key: (c, v) for key, (c, v) in held.items()}


def ledger_by_kind(since: datetime, until: datetime) -> dict[str, int]:
    """The period's ledger entries summed by kind (grants by sign: every credit but a refund)."""
    sums = defaultdict(int)
    rows = (
        LedgerEntry.objects.filter(created_at__gte=since, created_at__lt=until)
        .values_list("kind", "amount")
        .order_by()
    )
    for kind, amount in rows:
        sums["GRANT" if amount > 0 and kind != "REFUND" else kind] += amount
    return sums


def ledger_total_before(t: datetime) -> int:
    return LedgerEntry.objects.filter(created_at__lt=t).aggregate(s=Sum("amount"))["s"] or 0


def assert_ties_out(report, since: datetime, until: datetime) -> None:
    """Every way of summing agrees: the identity per line (credits and money), the lots replayed
    at both ends, and the ledger by kind."""
    opening, closing = lots_held_at(since), lots_held_at(until)
    keys = {(line.category, line.currency) for line in report.lines}
    assert keys >= {k for k, (c, _) in {**opening, **closing}.items() if c}
    for line in report.lines:
        key = (line.category, line.currency)
        assert line.balanced, line
        assert line.money_balanced, line
        assert (line.opening, line.deferred_opening) == opening.get(key, (0, Decimal("0")))
        assert (line.closing, line.deferred_closing) == closing.get(key, (0, Decimal("0")))
        cost = {lot.cost_basis for lot in CreditLot.objects.filter(category=line.category)}
        if line.category == "promotional":
            assert cost <= {Decimal("0")}
            assert line.recognised == line.breakage == line.deferred_closing == 0
    by_kind = ledger_by_kind(since, until)
    totals = report.totals
    assert totals.granted == by_kind["GRANT"]
    assert totals.consumed == -(by_kind["SPEND"] + by_kind["REFUND"])
    assert totals.expired == -by_kind["EXPIRY"]
    assert totals.voided_bonus == -by_kind["VOID"]
    assert totals.clawed_back == -by_kind["CLAWBACK"]
    assert totals.forfeited == -by_kind["FORFEIT"]
    assert totals.removed_by_staff == -by_kind["ADJUSTMENT"]
    assert totals.other == 0
    assert totals.opening == ledger_total_before(since)
    assert totals.closing == ledger_total_before(until)
    assert report.ledger == totals
    assert report.ties_out


# --- a history written row by row, at chosen times ----------------------------------------


class History:
    """Ledger entries, lots and movements written directly at given times (the report reads
    only these rows), keeping each user's balance chain."""

    def __init__(self, make_user):
        self.make_user = make_user
        self.balances = defaultdict(int)
        self.n = 0

    def _entry(self, user, amount: int, kind: str, at: datetime) -> int:
        self.n += 1
        before = self.balances[user.pk]
        self.balances[user.pk] = before + amount
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO credits_ledgerentry (user_id, amount, kind, balance_before,"
                " balance_after, description, metadata, idempotency_key, created_at)"
                " VALUES (%s, %s, %s, %s, %s, '', '{}', %s, %s) RETURNING id",
                [user.pk, amount, kind, before, before + amount, f"history:{self.n}", at],
            )
            return cursor.fetchone()[0]

    def grant(self, user, credits: int, at: datetime, *, kind="PURCHASE", cost="0", currency=""):
        entry = self._entry(user, credits, kind, at)
        category = "paid" if currency else "promotional"
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO credits_creditlot (user_id, category, source, original, remaining,"
                " priority, effective_at, cost_basis, currency, grant_entry_id, created_at)"
                " VALUES (%s, %s, %s, %s, %s, 100, %s, %s, %s, %s, %s) RETURNING id",
                [user.pk, category, "purchase" if currency else "bonus", credits, credits, at]
                + [Decimal(cost), currency, entry, at],
            )
            return cursor.fetchone()[0]

    def move(self, user, kind: str, at: datetime, *parts: tuple[int, int]) -> int:
        """One entry of ``kind`` moving ``credits`` on each (lot, credits) of ``parts``."""
        entry = self._entry(user, sum(c for _, c in parts), kind, at)
        with connection.cursor() as cursor:
            for lot, credits in parts:
                cursor.execute(
                    "INSERT INTO credits_lotmovement (entry_id, lot_id, credits, created_at)"
                    " VALUES (%s, %s, %s, %s)",
                    [entry, lot, credits, at],
                )
                cursor.execute(
                    "UPDATE credits_creditlot SET remaining = remaining + %s WHERE id = %s",
                    [credits, lot],
                )
        return entry


DAY2 = timezone.localdate() - timedelta(days=10)
DAY1 = DAY2 - timedelta(days=1)


def at(day: date, hour: int, minute: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, 0, micro, tzinfo=UTC)


@pytest.mark.django_db
def test_report_by_category_and_currency_at_the_period_boundaries(make_user):
    """A two-day history, reported for the second day: each figure by hand, and every way of
    summing agrees."""
    h = History(make_user)
    alice, bob = make_user(), make_user()
    before, start = at(DAY1, 12), at(DAY2, 0)
    # Before the period: alice buys 100 credits for $10 and 50 for EUR 6; bob gets 40 free.
    usd = h.grant(alice, 100, before, cost="0.1", currency="USD")
    eur = h.grant(alice, 50, before, cost="0.12", currency="EUR")
    promo = h.grant(bob, 40, before, kind="BONUS")
    spend = h.move(alice, "SPEND", at(DAY1, 13), (usd, -30))
    h.move(bob, "SPEND", at(DAY1, 23, 59, 999_999), (promo, -5))  # the last instant before
    # In the period (the first instant included):
    h.move(alice, "SPEND", start, (usd, -20), (eur, -10))
    h.move(alice, "REFUND", at(DAY2, 1), (usd, 30))  # the refund of the day-1 spend
    bonus = h.grant(alice, 25, at(DAY2, 2), kind="BONUS")
    h.move(alice, "VOID", at(DAY2, 3), (bonus, -25))
    h.move(alice, "CLAWBACK", at(DAY2, 4), (eur, -15))
    h.move(bob, "EXPIRY", at(DAY2, 5), (promo, -10))
    h.move(bob, "ADJUSTMENT", at(DAY2, 6), (promo, -5))
    late = h.grant(bob, 60, at(DAY2, 7), cost="0.05", currency="USD")
    h.move(bob, "SPEND", at(DAY2, 8), (late, -20), (promo, -5))
    h.move(bob, "EXPIRY", at(DAY2, 9), (late, -10))
    h.move(bob, "FORFEIT", at(DAY2, 10), (late, -30), (promo, -15))
    # After the period: the report does not see these.
    h.move(alice, "SPEND", at(DAY2 + timedelta(days=1), 0), (usd, -70), (eur, -25))
    h.grant(alice, 1000, at(DAY2 + timedelta(days=1), 1), cost="1", currency="USD")
    assert spend

    report = finance_report(start=DAY2, end=DAY2)

    lines = {(line.category, line.currency): line for line in report.lines}
    assert list(lines) == [("paid", "EUR"), ("paid", "USD"), ("promotional", "")]
    paid_usd, paid_eur, promotional = (
        lines["paid", "USD"],
        lines["paid", "EUR"],
        lines["promotional", ""],
    )
    # USD: alice 70 at 0.10; bob's 60 at 0.05 granted in the period.
    assert paid_usd.opening == 70 and paid_usd.deferred_opening == Decimal("7")
    assert paid_usd.granted == 60 and paid_usd.granted_value == Decimal("3")
    assert paid_usd.consumed == 20 - 30 + 20  # 20 spent, 30 given back, bob's 20
    assert paid_usd.recognised == Decimal("2") - Decimal("3") + Decimal("1")
    assert paid_usd.expired == 10 and paid_usd.breakage == Decimal("0.5")
    assert (paid_usd.forfeited, paid_usd.voided, paid_usd.voided_value) == (30, 30, Decimal("1.5"))
    assert paid_usd.closing == 80 and paid_usd.deferred_closing == Decimal("8")
    # EUR: 50 at 0.12, 10 spent, 15 clawed back.
    assert (paid_eur.opening, paid_eur.consumed, paid_eur.clawed_back, paid_eur.closing) == (
        50,
        10,
        15,
        25,
    )
    assert paid_eur.recognised == Decimal("1.2") and paid_eur.deferred_closing == Decimal("3")
    # Promotional: bob's 35 left, alice's 25 bonus voided, no value anywhere.
    assert (promotional.opening, promotional.granted, promotional.consumed) == (35, 25, 5)
    assert (promotional.expired, promotional.voided_bonus) == (10, 25)
    assert (promotional.removed_by_staff, promotional.forfeited, promotional.voided) == (5, 15, 45)
    assert promotional.closing == 0
    assert promotional.deferred_closing == promotional.recognised == Decimal("0")
    assert_ties_out(report, at(DAY2, 0), at(DAY2 + timedelta(days=1), 0))
    # Longer and shorter periods tie out too.
    for since, until in [
        (at(DAY1, 0), at(DAY2 + timedelta(days=2), 0)),
        (at(DAY1, 13), at(DAY2, 4)),
        (at(DAY2, 4), at(DAY2, 4)),
    ]:
        assert_ties_out(finance_report_between(since=since, until=until), since, until)


@pytest.mark.django_db
def test_a_movement_dated_before_its_lots_grant_counts_from_the_grant(make_user):
    """Two transactions' clocks can cross (a spend's transaction began before the grant it draws
    from committed): the draw is dated at the grant, so no lot is ever short before it exists."""
    h = History(make_user)
    user = make_user()
    h.grant(user, 10, at(DAY1, 9), kind="BONUS")  # so the spend's balance chain holds
    lot = h.grant(user, 100, at(DAY2, 0, 0, 5), cost="0.1", currency="USD")
    h.move(user, "SPEND", at(DAY1, 23, 59, 999_999), (lot, -40))

    report = finance_report(start=DAY2, end=DAY2)

    paid = next(line for line in report.lines if line.category == "paid")
    assert (paid.opening, paid.granted, paid.consumed, paid.closing) == (0, 100, 40, 60)
    assert paid.balanced and paid.recognised == Decimal("4")
    # The ledger dates the spend on day 1: the report says it does not tie out, and by how much.
    assert report.differences == {"consumed": (40, 0), "opening": (10, -30)}
    assert not report.ties_out


# --- a history made through the services -------------------------------------------------


def db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def wait_past(moment: datetime) -> None:
    """Until the database clock has passed ``moment`` (a few hundred milliseconds at most)."""
    wait_until(lambda: db_now() > moment, timeout=5, interval=0.05, message="the lot to lapse")


@pytest.mark.django_db(transaction=True)  # each movement its own transaction and clock
def test_mixed_history_ties_out_per_category_and_to_the_ledger(make_user, make_order):
    """Purchases with a cost basis in three currencies, bonus, trial, voucher and staff lots;
    spends, refunds (one into a lapsed lot), expiries, a void, a clawback, a staff removal and a
    forfeit, before, during and after the period: every figure ties out three ways."""
    alice, bob, carol, dave, eve = (make_user() for _ in range(5))
    order = {
        name: make_order(user, credits=1)
        for name, user in [
            ("alice", alice),
            ("alice_eur", alice),
            ("carol", carol),
            ("dave", dave),
            ("eve", eve),
        ]
    }

    def purchase(user, name, credits, cost, currency):
        return credits_grant(
            user=user,
            amount=credits,
            kind="PURCHASE",
            idempotency_key=f"buy:{name}",
            source=Source(ORDER_SOURCE, order[name].pk),
            cost_basis=Decimal(cost),
            currency=currency,
        )

    def bonus(user, name, credits):
        return credits_grant(
            user=user,
            amount=credits,
            kind="BONUS",
            idempotency_key=f"bonus:{name}",
            source=Source(ORDER_SOURCE, order[name].pk),
        )

    def spend(user, credits, key):
        return credits_spend(user=user, amount=credits, idempotency_key=key)

    staff = make_user(is_staff=True)
    start = db_now()
    # Before the period.
    purchase(alice, "alice", 100, "0.10", "USD")
    bonus(alice, "alice", 20)
    purchase(alice, "alice_eur", 50, "0.12", "EUR")
    alice_spend = spend(alice, 30, "a1")  # the bonus's 20, then 10 USD
    credits_grant(user=bob, amount=40, kind="TRIAL_GRANT", idempotency_key="trial:bob")
    lapses = db_now() + timedelta(milliseconds=600)
    credits_adjust(
        user=bob,
        amount=15,
        reason="goodwill",
        staff_user=staff,
        idempotency_key="adj:bob",
        expires_at=lapses,
    )
    bob_spend = spend(bob, 20, "b1")  # the soonest to lapse first: 15 staff credits, 5 trial
    purchase(carol, "carol", 60, "0.05", "USD")
    spend(carol, 10, "c1")
    credits_grant(
        user=carol, amount=8, kind="VOUCHER", idempotency_key="voucher:carol", expires_at=lapses
    )
    purchase(dave, "dave", 80, "0.25", "GBP")
    bonus(dave, "dave", 10)
    credits_grant(user=dave, amount=10, kind="VOUCHER", idempotency_key="voucher:dave")
    spend(dave, 5, "d1")
    since = db_now()
    wait_past(lapses)
    # In the period.
    assert lots_expire_due() >= 1  # carol's voucher: its credits left lapse (an EXPIRY entry)
    credits_refund(spend=alice_spend, amount=25, idempotency_key="a1:refund")  # 10 USD, 15 bonus
    spend(alice, 40, "a2")
    credits_adjust(
        user=alice,
        amount=-5,
        reason="duplicate grant",
        staff_user=staff,
        idempotency_key="adj:alice",
    )
    credits_refund(
        spend=bob_spend, idempotency_key="b1:refund"
    )  # its 15 staff credits lapse at once
    spend(bob, 10, "b2")
    clawed = credits_clawback(
        user=dave,
        amount=100,
        idempotency_key="claw:dave",
        reason="payment refunded",
        source=Source(ORDER_SOURCE, order["dave"].pk),
    )
    credits_forfeit(user=carol, idempotency_key="forfeit:carol", description="account deleted")
    purchase(eve, "eve", 200, "0.02", "USD")
    eve_spend = spend(eve, 50, "e1")
    until = db_now()
    # After the period.
    credits_refund(spend=eve_spend, idempotency_key="e1:refund")
    spend(alice, 10, "a3")
    end = db_now()

    assert ledger_check().clean
    # The purchase's own 80 GBP, then the voucher's 10; the bonus's 5 left are voided.
    assert (clawed.recovered, clawed.unrecovered) == (90, 10)
    for a, b in [(since, until), (start, since), (until, end), (start, end), (since, end)]:
        assert_ties_out(finance_report_between(since=a, until=b), a, b)

    report = finance_report_between(since=since, until=until)
    lines = {(line.category, line.currency): line for line in report.lines}
    usd, eur, gbp, promo = (
        lines["paid", "USD"],
        lines["paid", "EUR"],
        lines["paid", "GBP"],
        lines["promotional", ""],
    )
    assert usd.opening == 90 + 50 and usd.granted == 200
    assert usd.consumed == -10 + 25 + 50  # alice's refund, alice's 25 after 15 bonus, eve's 50
    assert usd.removed_by_staff == 5 and usd.forfeited == 50
    assert usd.recognised == Decimal("-1.0") + Decimal("2.5") + Decimal("1.0")
    assert usd.voided_value == Decimal("0.5") + 50 * Decimal("0.05")
    assert usd.closing == 70 + 150
    assert usd.deferred_closing == 70 * Decimal("0.10") + 150 * Decimal("0.02")
    assert (eur.opening, eur.closing, eur.deferred_closing) == (50, 50, Decimal("6.00"))
    assert (gbp.opening, gbp.clawed_back, gbp.closing) == (80, 80, 0)
    assert gbp.voided_value == Decimal("20.00") and gbp.deferred_closing == 0
    assert promo.voided_bonus == 5 and promo.clawed_back == 10
    assert (
        promo.expired == 15 + 8
    )  # bob's staff credits given back after they lapsed, carol's voucher
    assert lines.keys() == {("paid", "USD"), ("paid", "EUR"), ("paid", "GBP"), ("promotional", "")}


# --- the dashboard section and the CSV ------------------------------------------------------


@pytest.fixture
def two_days(make_user):
    """Paid USD and promotional credits moving on DAY2, with history before it."""
    h = History(make_user)
    alice = make_user()
    usd = h.grant(alice, 100, at(DAY1, 12), cost="0.125", currency="USD")
    promo = h.grant(alice, 40, at(DAY1, 12), kind="TRIAL_GRANT")
    h.move(alice, "SPEND", at(DAY2, 9), (promo, -40), (usd, -10))
    h.move(alice, "EXPIRY", at(DAY2, 10), (usd, -6))
    return h


def period_params(start: date, end: date) -> dict:
    return {"start": start.isoformat(), "end": end.isoformat()}


@pytest.mark.django_db
def test_dashboard_shows_the_finance_section(client, make_staff, two_days):
    client.force_login(make_staff(FINANCE))

    page = client.get(reverse("backoffice:dashboard"), period_params(DAY2, DAY2))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="finance-credits"' in html
    report = page.context["finance"]
    assert [(line.category, line.currency) for line in report.lines] == [
        ("paid", "USD"),
        ("promotional", ""),
    ]
    paid = report.lines[0]
    assert (paid.opening, paid.consumed, paid.expired, paid.closing) == (100, 10, 6, 84)
    assert "$1.25" in html  # revenue recognised: 10 x 0.125
    assert "$0.75" in html  # breakage: 6 x 0.125
    assert "$10.50" in html  # deferred revenue at the end: 84 x 0.125
    assert 'data-testid="finance-ties-out"' in html
    csv_link = f"{reverse('backoffice:export_finance')}?start={DAY2}&amp;end={DAY2}"
    assert csv_link in html


@pytest.mark.django_db
def test_finance_csv_for_the_period(client, make_staff, two_days):
    client.force_login(make_staff(FINANCE))

    response = client.get(reverse("backoffice:export_finance"), period_params(DAY2, DAY2))

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="finance-{DAY2}-{DAY2}.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["source"], r["category"], r["currency"]) for r in rows] == [
        ("lots", "paid", "USD"),
        ("lots", "promotional", ""),
        ("ledger", "all", ""),
    ]
    paid, promotional, ledger = rows
    assert paid["period_start"] == paid["period_end"] == DAY2.isoformat()
    assert {
        k: paid[k] for k in ("opening", "granted", "consumed", "expired", "voided", "closing")
    } == {
        "opening": "100",
        "granted": "0",
        "consumed": "10",
        "expired": "6",
        "voided": "0",
        "closing": "84",
    }
    assert paid["deferred_revenue_opening"] == "12.500000"
    assert paid["revenue_recognised"] == "1.250000"
    assert paid["breakage"] == "0.750000"
    assert paid["deferred_revenue_closing"] == "10.500000"
    assert (promotional["opening"], promotional["consumed"], promotional["closing"]) == (
        "40",
        "40",
        "0",
    )
    assert promotional["revenue_recognised"] == "0.000000"
    assert (ledger["opening"], ledger["consumed"], ledger["expired"], ledger["closing"]) == (
        "140",
        "50",
        "6",
        "84",
    )
    assert ledger["revenue_recognised"] == ""
    # The day before: only the grants, nothing moved yet.
    before = client.get(reverse("backoffice:export_finance"), period_params(DAY1, DAY1))
    rows = list(csv.DictReader(io.StringIO(b"".join(before.streaming_content).decode())))
    assert [(r["granted"], r["closing"], r["granted_value"]) for r in rows] == [
        ("100", "100", "12.500000"),
        ("40", "40", "0.000000"),
        ("140", "140", ""),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["backoffice:dashboard", "backoffice:export_finance"])
def test_finance_needs_view_finance(client, make_user, make_staff, two_days, url_name):
    url = reverse(url_name)
    assert client.get(url)["Location"].startswith(reverse("admin:login"))
    client.force_login(make_user())
    assert client.get(url)["Location"].startswith(reverse("admin:login"))
    # Staff who may read the whole ledger still do not see the finance figures.
    client.force_login(make_staff("credits.view_ledgerentry", "credits.view_creditlot"))
    response = client.get(url, period_params(DAY2, DAY2))
    assert response.status_code == 403
    assert b"deferred" not in response.content.lower()
    client.force_login(make_staff(FINANCE))
    assert client.get(url, period_params(DAY2, DAY2)).status_code == 200


@pytest.mark.django_db
def test_dashboard_queries_do_not_grow_with_lots_users_or_currencies(client, make_staff, make_user):
    """The finance section is one statement, whatever the history holds."""
    h = History(make_user)
    client.force_login(make_staff(FINANCE))
    url = reverse("backoffice:dashboard")
    user = make_user()
    lot = h.grant(user, 10, at(DAY2, 1), cost="0.1", currency="USD")
    h.move(user, "SPEND", at(DAY2, 2), (lot, -1))

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url, period_params(DAY1, DAY2)).status_code == 200
        return [q["sql"] for q in ctx.captured_queries]

    queries()  # the first page view may do first-time work (the staff member's own balance)
    few = queries()
    for i, currency in enumerate(["USD", "EUR", "GBP", "CAD", "", "JPY"] * 3):
        customer = make_user()
        lots = [
            h.grant(
                customer, 50, at(DAY1, 1 + i), cost="0.2" if currency else "0", currency=currency
            ),
            h.grant(customer, 30, at(DAY2, 1 + i), kind="BONUS"),
        ]
        h.move(customer, "SPEND", at(DAY2, 3 + i), (lots[1], -30), (lots[0], -5))
        h.move(customer, "EXPIRY", at(DAY2, 4 + i), (lots[0], -5))
    many = queries()

    assert len(many) == len(few), "\n".join(many)
    assert len([q for q in many if "SELECT 'ledger'" in q]) == 1
    assert len(client.get(url, period_params(DAY1, DAY2)).context["finance"].lines) == 6
