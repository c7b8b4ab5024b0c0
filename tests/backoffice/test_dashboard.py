"""The staff dashboard: the period's figures, drawn as SVG on the server, and the CSV exports."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from credits.services import credits_grant, credits_spend
from generations.models import GenerationJob
from payments.models import Order, ReconciliationRun

FINANCE = "backoffice.view_finance"


@pytest.fixture
def business(make_user, make_order, make_job):
    now = timezone.now()
    alice, bob = make_user("alice@example.com"), make_user("bob@example.com")
    make_order(alice, amount="20.00", credits=100)
    make_order(
        bob, amount="5.00", credits=20, dispute_status=Order.DisputeStatus.OPEN, dispute_id="dp_123"
    )
    make_order(
        bob, amount="99.00", credits=500, completed_at=now - timedelta(days=40)
    )  # outside 30 days
    credits_grant(user=alice, amount=100, kind="PURCHASE", idempotency_key="dash:purchase")
    credits_spend(
        user=alice,
        amount=30,
        idempotency_key="dash:spend",
        description='=HYPERLINK("http://evil.example","click")',
    )
    for status in (
        GenerationJob.Status.COMPLETED,
        GenerationJob.Status.COMPLETED,
        GenerationJob.Status.FAILED,
    ):
        make_job(
            alice,
            status=status,
            charged=6 if status == GenerationJob.Status.COMPLETED else 0,
            operation="image",
            model="svg-procedural",
        )
    make_job(
        bob,
        status=GenerationJob.Status.COMPLETED,
        charged=12,
        estimated=20,
        operation="text",
        model="gpt-x",
    )
    ReconciliationRun.objects.create(
        since=now - timedelta(hours=1),
        status=ReconciliationRun.Status.DISCREPANCIES,
        discrepancies=[
            {
                "kind": "unknown_payment",
                "provider": "STRIPE",
                "order_id": None,
                "reference": "pi_1",
                "detail": "paid at provider, not here",
                "action": "flagged",
            }
        ],
    )
    return {"alice": alice, "bob": bob}


@pytest.mark.django_db
def test_dashboard_shows_the_period_figures_as_svg(client, make_staff, business):
    client.force_login(make_staff(FINANCE))
    response = client.get(reverse("backoffice:dashboard"))
    html = response.content.decode()

    assert response.status_code == 200
    assert html.count('<svg class="bo-chart"') == 3  # revenue (USD), credits, jobs
    assert "Revenue USD" in html and "25.00" in html  # 20 + 5 this month; the 99 is older
    assert "99.00" not in html
    board = response.context["board"]
    assert [r.total for r in board.revenue] == [25]
    assert board.credits.totals() == {
        "purchased": 100,
        "spent": 30,
        "refunded": 0,
        "clawed_back": 0,
    }
    image = next(j for j in board.jobs if j.operation == "image")
    assert (image.completed, image.failed, image.mean_cost) == (2, 1, 6.0)
    assert 'data-testid="open-disputes">1<' in html and "dp_123" in html
    assert "Reconciliation discrepancies" in html
    assert "STRIPE unknown_payment: paid at provider, not here" in html and ">flagged<" in html


@pytest.mark.django_db
def test_period_choice_and_date_range(client, make_staff, business):
    client.force_login(make_staff(FINANCE))
    week = client.get(reverse("backoffice:dashboard"), {"period": "7"})
    assert len(week.context["board"].period.days) == 7

    today = timezone.localdate()
    start = today - timedelta(days=45)
    ranged = client.get(
        reverse("backoffice:dashboard"), {"start": start.isoformat(), "end": today.isoformat()}
    )
    assert ranged.context["board"].period.start == start
    assert [r.total for r in ranged.context["board"].revenue] == [
        124
    ]  # the older order is in range now


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, error",
    [
        (
            {"start": "2026-03-10", "end": "2026-03-01"},
            "The start date must be on or before the end date.",
        ),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "Pick at most 366 days."),
        ({"start": "2026-03-10"}, "Give both a start and an end date"),
        ({"start": "yesterday", "end": "today"}, "Enter a valid date."),
        ({"period": "12"}, "Select a valid choice."),
    ],
)
def test_invalid_period_is_explained_and_falls_back_to_30_days(client, make_staff, params, error):
    client.force_login(make_staff(FINANCE))
    response = client.get(reverse("backoffice:dashboard"), params)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert len(response.context["board"].period.days) == 30


@pytest.mark.django_db
def test_admin_index_links_to_the_dashboard(client, superuser):
    client.force_login(superuser)
    html = client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("backoffice:dashboard")}"' in html


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.django_db
def test_ledger_export_streams_the_period_and_defuses_formulas(client, make_staff, business):
    client.force_login(make_staff(FINANCE, "credits.view_ledgerentry"))
    response = client.get(reverse("backoffice:export_ledger"), {"period": "7"})

    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0][:6] == ["id", "created_at", "user_id", "user_email", "kind", "amount"]
    kinds = [(r[3], r[4], r[5]) for r in rows[1:]]
    assert ("alice@example.com", "PURCHASE", "100") in kinds
    assert ("alice@example.com", "SPEND", "-30") in kinds
    spend = next(r for r in rows[1:] if r[4] == "SPEND")
    assert spend[rows[0].index("description")].startswith("'=HYPERLINK")


@pytest.mark.django_db
def test_orders_export_lists_the_period_orders(client, make_staff, business):
    client.force_login(make_staff(FINANCE, "payments.view_order"))
    rows = read_csv(client.get(reverse("backoffice:export_orders")))
    assert rows[0][:5] == ["id", "created_at", "completed_at", "user_id", "user_email"]
    assert sorted(r[7] for r in rows[1:]) == ["20.00", "5.00", "99.00"]  # created today, all three
    assert client.get(reverse("backoffice:export_ledger")).status_code == 403


@pytest.mark.django_db
def test_dashboard_shows_mrr_subscribers_new_and_churned(client, make_staff, make_user):
    from datetime import timedelta

    from django.utils import timezone

    from payments.demo import seed_plans
    from payments.models import PlanPrice, Subscription, SubscriptionPlan

    seed_plans(plan_model=SubscriptionPlan, price_model=PlanPrice)
    pro, basic = (
        SubscriptionPlan.objects.get(code="pro"),
        SubscriptionPlan.objects.get(code="basic"),
    )
    now = timezone.now()

    def sub(plan, amount, status, **extra):
        return Subscription.objects.create(
            user=make_user(), plan=plan, provider="SANDBOX", currency="USD", amount=amount,
            status=status, started_at=now, **extra,
        )  # fmt: skip

    sub(pro, "24.00", "ACTIVE")
    sub(basic, "9.00", "ACTIVE")
    sub(pro, "24.00", "PAST_DUE")
    sub(basic, "9.00", "ENDED", ended_at=now)
    sub(basic, "9.00", "ENDED", ended_at=now - timedelta(days=90))
    client.force_login(make_staff(FINANCE))

    html = client.get(reverse("backoffice:dashboard")).content.decode()

    assert 'data-testid="mrr">33.00 USD<' in html
    assert 'data-testid="active-subscribers">2 (and 1 past due)<' in html
    assert 'data-testid="new-subscribers">5<' in html
    assert 'data-testid="churned-subscribers">1<' in html
