"""Credit lots for staff: a user's lots on their page and a lot list, read-only, searched by
user; the adjustment action grants promotional credits that may expire at the end of a day."""

import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdjustmentRequest
from backoffice.services import adjustment_approve, adjustment_submit
from credits.exceptions import InvalidAmount
from credits.models import AuditLog, CreditBalance, CreditLot, LedgerEntry, LedgerKind
from credits.services import credits_grant, credits_spend

from .conftest import messages_of, new_key, post_action
from .test_query_counts import queries_for

ADJUST = "credits.adjust_credits"
APPROVE = "credits.approve_adjustment"
VIEW_USER = "accounts.view_user"
VIEW_LOT = "credits.view_creditlot"
VIEW_REQUESTS = "backoffice.view_adjustmentrequest"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def threshold(settings):
    settings.BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD = 500


def end_of(day) -> datetime:
    """The moment a lot set to expire "after ``day``" expires: the next local midnight."""
    return timezone.make_aware(
        datetime.combine(day + timedelta(days=1), datetime.min.time()),
        timezone.get_current_timezone(),
    )


@pytest.fixture
def customer(make_user):
    """A paid lot (40 credits at 0.05 EUR, 15 spent) and a trial lot (10, expiring in 30 days)."""
    user = make_user("lots@example.com")
    credits_grant(
        user=user,
        amount=40,
        kind=LedgerKind.PURCHASE,
        idempotency_key="buy",
        cost_basis=Decimal("0.05"),
        currency="EUR",
    )
    credits_grant(user=user, amount=10, kind=LedgerKind.TRIAL_GRANT, idempotency_key="trial")
    credits_spend(user=user, amount=25, idempotency_key="job")  # 10 trial, then 15 paid
    return user


def test_the_user_page_lists_the_lots_read_only(client, make_staff, customer):
    client.force_login(make_staff(VIEW_USER, VIEW_LOT))

    body = client.get(reverse("admin:accounts_user_change", args=[customer.pk])).content.decode()

    assert "Newest credit lots (up to 20)" in body
    section = body[body.index("Newest credit lots") :]
    section = section[: section.index("</fieldset>")]
    for text in ("Purchase", "Trial", "Paid", "Promotional", "0.050000 EUR", "Cost basis"):
        assert text in section, text
    trial = CreditLot.objects.get(user=customer, source="trial")
    assert (trial.original, trial.remaining) == (10, 0)
    assert 'name="credit_lots-0-remaining"' not in body  # shown, never editable
    assert reverse("admin:credits_creditlot_change", args=[trial.pk]) in section


def test_the_lot_list_finds_a_users_lots_by_id_or_email(client, make_staff, customer, make_user):
    other = make_user(credits=5)
    client.force_login(make_staff(VIEW_LOT))
    url = reverse("admin:credits_creditlot_changelist")

    by_id = client.get(url, {"q": str(customer.pk)}).context["cl"].result_list
    by_email = client.get(url, {"q": "LOTS@example.com"}).context["cl"].result_list

    mine = set(CreditLot.objects.filter(user=customer).values_list("pk", flat=True))
    assert {lot.pk for lot in by_email} == mine
    assert mine <= {lot.pk for lot in by_id}  # a number also matches a lot id
    assert not {lot.pk for lot in by_email} & set(
        CreditLot.objects.filter(user=other).values_list("pk", flat=True)
    )
    lot = CreditLot.objects.get(user=customer, source="purchase")
    page = client.get(reverse("admin:credits_creditlot_change", args=[lot.pk])).content.decode()
    assert "Newest movements" in page and "0.050000 EUR" in page and 'name="_save"' not in page
    move = lot.movements.get()
    assert f">{move.credits}<" in page  # the 15 credits the job took from it


def test_the_lot_list_costs_the_same_queries_for_few_or_many_lots(client, superuser, make_user):
    client.force_login(superuser)
    url = reverse("admin:credits_creditlot_changelist")
    make_user(credits=3)
    queries_for(client, url)  # the first view records the staff member's regeneration check
    few = queries_for(client, url)
    for i in range(60):
        make_user(credits=1 + i)
    many = queries_for(client, url)
    assert len(many) == len(few), "\n\n".join(few) + "\n-------\n" + "\n\n".join(many)


def test_an_adjustment_grants_a_promotional_lot_that_expires_at_the_end_of_the_chosen_day(
    client, make_staff, customer
):
    client.force_login(make_staff(ADJUST, VIEW_USER))
    url = reverse("admin:accounts_user_adjust_credits", args=[customer.pk])
    day = timezone.localdate() + timedelta(days=14)

    form = client.get(url).content.decode()
    assert 'name="expires_on"' in form and 'type="date"' in form
    response = client.post(
        url,
        {
            "confirm": "yes",
            "submission_key": new_key(),
            "amount": "30",
            "expires_on": day.isoformat(),
            "reason": "Conference goodwill",
        },
    )

    assert response.status_code == 302
    lot = CreditLot.objects.get(user=customer, source="adjustment")
    assert (lot.category, lot.original, lot.expires_at, lot.cost_basis) == (
        "promotional",
        30,
        end_of(day),
        Decimal(0),
    )
    assert any(
        f"adjusted by +30 credits expiring at the end of {day.day} " in m
        for m in messages_of(response)
    ), messages_of(response)
    row = AuditLog.objects.get(action="staff.credits_adjust")
    assert row.metadata["lot_expires_at"] == end_of(day).isoformat()


def test_an_adjustment_without_a_day_never_expires(client, make_staff, customer):
    client.force_login(make_staff(ADJUST, VIEW_USER))
    post_action(client, "accounts_user", "adjust_credits", [customer.pk], amount="5", reason="Oops")

    lot = CreditLot.objects.get(user=customer, source="adjustment")
    assert (lot.category, lot.expires_at) == ("promotional", None)


@pytest.mark.parametrize(
    ("amount", "days", "error"),
    [
        ("20", -1, "must expire in the future"),
        ("-5", 10, "Only added credits can expire"),
    ],
)
def test_an_expiry_in_the_past_or_on_a_negative_adjustment_is_a_form_error(
    client, make_staff, customer, amount, days, error
):
    client.force_login(make_staff(ADJUST, VIEW_USER))
    url = reverse("admin:accounts_user_adjust_credits", args=[customer.pk])
    entries = LedgerEntry.objects.count()

    response = client.post(
        url,
        {
            "confirm": "yes",
            "submission_key": new_key(),
            "amount": amount,
            "expires_on": (timezone.localdate() + timedelta(days=days)).isoformat(),
            "reason": "Goodwill",
        },
    )

    assert response.status_code == 200 and error in response.content.decode()
    assert LedgerEntry.objects.count() == entries
    assert not AuditLog.objects.filter(action="staff.credits_adjust").exists()


def test_a_large_adjustment_carries_its_expiry_through_approval(client, make_staff, customer):
    asker = make_staff(ADJUST, VIEW_USER, email="asker@example.com")
    approver = make_staff(APPROVE, VIEW_REQUESTS, email="approver@example.com")
    day = timezone.localdate() + timedelta(days=30)
    client.force_login(asker)
    post_action(
        client,
        "accounts_user",
        "adjust_credits",
        [customer.pk],
        amount="900",
        expires_on=day.isoformat(),
        reason="Partner campaign",
    )
    request = AdjustmentRequest.objects.get(user=customer)
    assert not CreditLot.objects.filter(user=customer, source="adjustment").exists()

    client.force_login(approver)
    confirm_page = client.post(
        reverse("admin:backoffice_adjustmentrequest_changelist"),
        {"action": "approve", "_selected_action": [request.pk]},
    ).content.decode()
    assert "Credits expire" in confirm_page
    post_action(client, "backoffice_adjustmentrequest", "approve", [request.pk], reason="Checked")

    lot = CreditLot.objects.get(user=customer, source="adjustment")
    assert (lot.original, lot.category, lot.expires_at) == (900, "promotional", end_of(day))


def test_an_approval_after_the_requested_expiry_has_passed_is_refused(make_staff, customer):
    asker = make_staff(ADJUST, email="asker@example.com")
    approver = make_staff(APPROVE, email="approver@example.com")
    soon = timezone.now() + timedelta(milliseconds=300)
    outcome = adjustment_submit(
        user=customer,
        amount=800,
        reason="Flash offer",
        staff_user=asker,
        idempotency_key=new_key(),
        lot_expires_at=soon,
    )
    time.sleep(0.35)  # the expiry is checked against the application's clock

    with pytest.raises(InvalidAmount, match="not in the future"):
        adjustment_approve(adjustment_request=outcome.request, staff_user=approver, note="ok")

    request = AdjustmentRequest.objects.get(pk=outcome.request.pk)
    assert request.status == AdjustmentRequest.Status.PENDING and "not in the future" in (
        request.last_error
    )
    assert CreditBalance.objects.get(user=customer).balance == 25


def test_the_service_refuses_an_expiry_on_a_negative_adjustment(make_staff, customer):
    with pytest.raises(InvalidAmount, match="cannot carry an expiry"):
        adjustment_submit(
            user=customer,
            amount=-5,
            reason="Duplicate",
            staff_user=make_staff(ADJUST),
            idempotency_key=new_key(),
            lot_expires_at=timezone.now() + timedelta(days=1),
        )
    assert not LedgerEntry.objects.filter(kind=LedgerKind.ADJUSTMENT).exists()
