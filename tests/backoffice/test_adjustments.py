"""Credit adjustments from the admin: small ones apply at once, large ones wait for a second
staff member, and every step is in the audit log."""

import pytest
from django.urls import reverse

from backoffice.models import AdjustmentRequest
from credits.models import AuditLog, CreditBalance, LedgerEntry, LedgerKind

from .conftest import messages_of, new_key, post_action

SECRET_NOTE = "Chargeback risk flagged by fraud team (ticket 4411)"

ADJUST = "credits.adjust_credits"
APPROVE = "credits.approve_adjustment"
VIEW_USER = "accounts.view_user"
VIEW_REQUESTS = "backoffice.view_adjustmentrequest"


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


@pytest.fixture(autouse=True)
def threshold(settings):
    settings.BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD = 500


@pytest.mark.django_db
def test_small_adjustment_from_the_user_page_applies_once_and_is_audited(
    client, make_user, make_staff
):
    customer = make_user(credits=40)
    staff = make_staff(ADJUST, VIEW_USER)
    client.force_login(staff)
    url = reverse("admin:accounts_user_adjust_credits", args=[customer.pk])

    page = client.get(url)
    assert page.status_code == 200
    assert "Adjust credits" in page.content.decode() and customer.email in page.content.decode()

    key = new_key()
    form = {
        "confirm": "yes",
        "submission_key": key,
        "amount": "-15",
        "reason": "Duplicate trial grant",
    }
    response = client.post(url, form)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:accounts_user_change", args=[customer.pk])
    again = client.post(url, form)  # the same confirmation submitted twice
    assert again.status_code == 302

    assert balance(customer) == 25
    entry = LedgerEntry.objects.get(user=customer, kind=LedgerKind.ADJUSTMENT)
    assert (
        entry.amount == -15
        and entry.created_by_id == staff.pk
        and entry.internal_note == "Duplicate trial grant"
    )
    assert entry.description == "Credits removed by our support team"
    staff_rows = AuditLog.objects.filter(action="staff.credits_adjust")
    assert staff_rows.count() == 1
    row = staff_rows.get()
    assert (row.actor_id, row.user_id, row.success) == (staff.pk, customer.pk, True)
    assert (
        row.metadata["reason"] == "Duplicate trial grant"
        and row.metadata["ledger_entry_id"] == entry.pk
    )
    assert any("adjusted by -15 credits, balance now 25" in m for m in messages_of(again))


@pytest.mark.django_db
def test_adjustment_needs_a_reason_and_a_non_zero_amount(client, make_user, make_staff):
    customer = make_user(credits=10)
    client.force_login(make_staff(ADJUST, VIEW_USER))
    url = reverse("admin:accounts_user_adjust_credits", args=[customer.pk])

    no_reason = client.post(
        url, {"confirm": "yes", "submission_key": new_key(), "amount": "5", "reason": "  "}
    )
    zero = client.post(
        url, {"confirm": "yes", "submission_key": new_key(), "amount": "0", "reason": "why not"}
    )

    assert no_reason.status_code == 200 and "This field is required" in no_reason.content.decode()
    assert zero.status_code == 200 and "An adjustment cannot be zero." in zero.content.decode()
    assert balance(customer) == 10
    assert not LedgerEntry.objects.filter(user=customer, kind=LedgerKind.ADJUSTMENT).exists()


@pytest.mark.django_db
def test_adjustment_that_would_go_below_zero_is_refused_per_user(client, make_user, make_staff):
    rich, poor = make_user(credits=100), make_user(credits=5)
    staff = make_staff(ADJUST, VIEW_USER)
    client.force_login(staff)

    response = post_action(
        client,
        "accounts_user",
        "adjust_credits",
        [rich.pk, poor.pk],
        follow=True,
        amount="-20",
        reason="Chargeback fee",
    )

    assert balance(rich) == 80 and balance(poor) == 5
    msgs = messages_of(response)
    assert any(rich.email in m and "balance now 80" in m for m in msgs)
    assert any(poor.email in m and "Not enough credits" in m for m in msgs)
    refused = AuditLog.objects.get(action="staff.credits_adjust", success=False)
    assert (
        refused.user_id == poor.pk
        and refused.actor_id == staff.pk
        and "InsufficientCredits" in refused.error_message
    )


@pytest.mark.django_db
def test_large_adjustment_waits_for_a_different_staff_member(client, make_user, make_staff):
    customer = make_user(credits=10)
    asker = make_staff(ADJUST, APPROVE, VIEW_USER, VIEW_REQUESTS, email="asker@example.com")
    approver = make_staff(APPROVE, VIEW_REQUESTS, email="approver@example.com")

    client.force_login(asker)
    response = post_action(
        client,
        "accounts_user",
        "adjust_credits",
        [customer.pk],
        follow=True,
        amount="750",
        reason="Goodwill after the outage",
    )
    request = AdjustmentRequest.objects.get(user=customer)
    assert request.status == AdjustmentRequest.Status.PENDING and request.amount == 750
    assert balance(customer) == 10
    assert any("needs a second staff member" in m for m in messages_of(response))

    # The staff member who asked cannot approve it, even holding the approval permission.
    response = post_action(
        client,
        "backoffice_adjustmentrequest",
        "approve",
        [request.pk],
        follow=True,
        reason="Looks right to me",
    )
    assert any("different staff member" in m for m in messages_of(response))
    request.refresh_from_db()
    assert request.status == AdjustmentRequest.Status.PENDING and balance(customer) == 10
    assert AuditLog.objects.filter(
        action="staff.adjustment_approve", success=False, actor=asker
    ).exists()

    client.force_login(approver)
    response = post_action(
        client,
        "backoffice_adjustmentrequest",
        "approve",
        [request.pk],
        follow=True,
        reason="Checked the outage ticket",
    )
    request.refresh_from_db()
    assert (
        request.status == AdjustmentRequest.Status.APPLIED and request.decided_by_id == approver.pk
    )
    assert balance(customer) == 760
    entry = LedgerEntry.objects.get(idempotency_key=f"adjustment-request:{request.pk}")
    assert (
        entry.amount == 750
        and entry.created_by_id == approver.pk
        and request.ledger_entry_id == entry.pk
    )
    assert any("approved" in m and "balance now 760" in m for m in messages_of(response))

    # Approving again changes nothing.
    response = post_action(
        client,
        "backoffice_adjustmentrequest",
        "approve",
        [request.pk],
        follow=True,
        reason="Once more",
    )
    assert any("already approved and applied" in m for m in messages_of(response))
    assert balance(customer) == 760
    actions = list(
        AuditLog.objects.filter(action__startswith="staff.adjustment").values_list(
            "action", "actor__email", "success"
        )
    )
    assert ("staff.adjustment_request", "asker@example.com", True) in actions
    assert ("staff.adjustment_approve", "approver@example.com", True) in actions


@pytest.mark.django_db
def test_large_adjustment_can_be_rejected_and_then_never_applies(client, make_user, make_staff):
    customer = make_user(credits=10)
    asker = make_staff(ADJUST, VIEW_USER, email="asker@example.com")
    approver = make_staff(APPROVE, VIEW_REQUESTS, email="approver@example.com")
    client.force_login(asker)
    post_action(
        client, "accounts_user", "adjust_credits", [customer.pk], amount="-501", reason="Fraud"
    )
    request = AdjustmentRequest.objects.get(user=customer)

    client.force_login(approver)
    post_action(
        client, "backoffice_adjustmentrequest", "reject", [request.pk], reason="Not fraud after all"
    )
    response = post_action(
        client,
        "backoffice_adjustmentrequest",
        "approve",
        [request.pk],
        follow=True,
        reason="Changed my mind",
    )

    request.refresh_from_db()
    assert (
        request.status == AdjustmentRequest.Status.REJECTED
        and request.decision_note == "Not fraud after all"
    )
    assert balance(customer) == 10
    assert any("already rejected" in m for m in messages_of(response))


@pytest.mark.django_db
def test_threshold_is_configurable(client, make_user, make_staff, settings):
    settings.BACKOFFICE_ADJUSTMENT_APPROVAL_THRESHOLD = 20
    customer = make_user(credits=0)
    client.force_login(make_staff(ADJUST, VIEW_USER))

    post_action(
        client, "accounts_user", "adjust_credits", [customer.pk], amount="20", reason="At the limit"
    )
    post_action(
        client,
        "accounts_user",
        "adjust_credits",
        [customer.pk],
        amount="21",
        reason="Over the limit",
    )

    assert balance(customer) == 20
    assert AdjustmentRequest.objects.get(user=customer).amount == 21


# --- the internal note stays with staff; the customer reads the description ---------------


def customer_history(client, customer) -> tuple[str, str]:
    """The customer's history page and CSV export, as the customer sees them."""
    client.force_login(customer)
    page = client.get("/credits/").content.decode()
    export = b"".join(client.get("/credits/export.csv").streaming_content).decode()
    return page, export


@pytest.mark.django_db
def test_the_customer_reads_the_description_and_never_the_internal_note(
    client, make_user, make_staff
):
    customer = make_user(credits=10)
    staff = make_staff(ADJUST, VIEW_USER, "credits.view_ledgerentry")
    client.force_login(staff)
    url = reverse("admin:accounts_user_adjust_credits", args=[customer.pk])

    form_page = client.get(url).content.decode()
    assert "Internal note (staff only)" in form_page and "the customer never sees it" in form_page
    assert "Description shown to the customer" in form_page

    response = client.post(
        url,
        {
            "confirm": "yes",
            "submission_key": new_key(),
            "amount": "5",
            "reason": SECRET_NOTE,
            "description": "Sorry about the failed render",
        },
    )
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(user=customer, kind=LedgerKind.ADJUSTMENT)
    assert (entry.description, entry.internal_note) == (
        "Sorry about the failed render",
        SECRET_NOTE,
    )
    # Staff still read the note: in the ledger admin and in the audit log.
    assert (
        SECRET_NOTE
        in client.get(reverse("admin:credits_ledgerentry_change", args=[entry.pk])).content.decode()
    )
    assert AuditLog.objects.get(action="staff.credits_adjust").metadata["reason"] == SECRET_NOTE

    page, export = customer_history(client, customer)
    assert "Sorry about the failed render" in page and "Sorry about the failed render" in export
    assert "fraud" not in page.lower() and "fraud" not in export.lower()


@pytest.mark.django_db
def test_an_adjustment_without_a_description_reads_as_a_neutral_line(client, make_user, make_staff):
    customer = make_user(credits=10)
    client.force_login(make_staff(ADJUST, VIEW_USER))

    post_action(
        client, "accounts_user", "adjust_credits", [customer.pk], amount="-3", reason=SECRET_NOTE
    )

    page, export = customer_history(client, customer)
    assert (
        "Credits removed by our support team" in page
        and "Credits removed by our support team" in export
    )
    assert "fraud" not in page.lower() and "fraud" not in export.lower()


@pytest.mark.django_db
def test_a_large_adjustment_request_carries_both_texts_to_the_approver(
    client, make_user, make_staff
):
    customer = make_user(credits=10)
    asker = make_staff(ADJUST, VIEW_USER, email="asker@example.com")
    approver = make_staff(APPROVE, VIEW_REQUESTS, email="approver@example.com")
    client.force_login(asker)
    post_action(
        client,
        "accounts_user",
        "adjust_credits",
        [customer.pk],
        amount="900",
        reason=SECRET_NOTE,
        description="Credits for the conference demo",
    )
    request = AdjustmentRequest.objects.get(user=customer)

    client.force_login(approver)
    confirm_page = client.post(
        reverse("admin:backoffice_adjustmentrequest_changelist"),
        {"action": "approve", "_selected_action": [request.pk]},
    ).content.decode()
    assert SECRET_NOTE in confirm_page and "Credits for the conference demo" in confirm_page
    post_action(client, "backoffice_adjustmentrequest", "approve", [request.pk], reason="Checked")

    entry = LedgerEntry.objects.get(idempotency_key=f"adjustment-request:{request.pk}")
    assert (entry.amount, entry.description, entry.internal_note) == (
        900,
        "Credits for the conference demo",
        SECRET_NOTE,
    )
    page, export = customer_history(client, customer)
    assert (
        "Credits for the conference demo" in page and "fraud" not in page.lower() + export.lower()
    )


@pytest.mark.django_db
def test_a_description_longer_than_the_ledger_keeps_is_a_form_error(client, make_user, make_staff):
    customer = make_user(credits=10)
    client.force_login(make_staff(ADJUST, VIEW_USER))
    url = reverse("admin:accounts_user_adjust_credits", args=[customer.pk])

    response = client.post(
        url,
        {
            "confirm": "yes",
            "submission_key": new_key(),
            "amount": "5",
            "reason": "Goodwill",
            "description": "x" * 256,
        },
    )

    assert response.status_code == 200 and "at most 255 characters" in response.content.decode()
    assert not LedgerEntry.objects.filter(user=customer, kind=LedgerKind.ADJUSTMENT).exists()
