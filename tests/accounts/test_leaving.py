"""Leaving: a user downloads everything held about them, and deletes their account.

Deletion erases what identifies the person and keeps the financial records (orders,
invoices, ledger), linked to the anonymised account; the ledger stays consistent.
"""

import json
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.mail import EmailMessage
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import OutboundEmail, User
from accounts.outbox import outbound_email_queue
from accounts.tasks import send_due_outbound_emails, send_outbound_email
from credits.models import AuditLog, CreditBalance, LedgerEntry
from credits.services import credits_clawback, credits_forfeit, spending_hold, spending_release
from generations.api_keys import encrypt
from generations.models import ApiCredential, GenerationJob
from generations.services import JobRequest, job_submit
from payments.models import Invoice, Order
from tests.conftest import PASSWORD
from tests.payments.conftest import packages, sandbox_only  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def price_rules(db):
    from generations.demo import install
    from generations.models import PriceRule

    install(PriceRule)


@pytest.fixture
def customer(
    make_user, client, packages, sandbox_only, price_rules, django_capture_on_commit_callbacks
):
    """A customer with a bonus, a paid order, a finished job, a stored key, Google connected."""
    user = make_user("leaver@example.com", name="Lee Ver", credits=25, last_login_ip="203.0.113.9")
    SocialAccount.objects.create(
        user=user, provider="google", uid="g-42", extra_data={"email": user.email}
    )
    ApiCredential.objects.create(
        user=user, encrypted_key=encrypt("sk-own-key-123456"), key_hint="3456"
    )
    client.force_login(user)
    response = client.post("/billing/buy/", {"package": packages["Basic"].pk})
    with django_capture_on_commit_callbacks(execute=True):
        client.post(response["Location"], {"action": "pay"})
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(
            user=user,
            request=JobRequest(
                operation="image",
                model="procedural-svg",
                prompt="my secret garden",
                seed=1,
                use_own_key=False,
            ),
        )
    job.refresh_from_db()
    assert job.status == "COMPLETED" and job.result_file
    return user


def download(client) -> dict:
    response = client.get(reverse("accounts:export"))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="account-')
    return json.loads(b"".join(response.streaming_content))


def test_the_account_page_offers_a_download_of_everything_held_about_you(
    client, customer, make_user
):
    other = make_user("someone-else@example.com", credits=7)
    page = client.get(reverse("accounts:profile")).text
    assert (
        f'href="{reverse("accounts:export")}"' in page
        and f'href="{reverse("accounts:delete")}"' in page
    )

    data = download(client)

    assert data["profile"]["email"] == "leaver@example.com" and data["profile"]["name"] == "Lee Ver"
    assert data["profile"]["status"] == "ACTIVE"
    assert [a["provider"] for a in data["profile"]["social_accounts"]] == ["google"]
    assert data["balance"] == [
        {"balance": 72, "lifetime_earned": 75, "lifetime_spent": 3, "spend_holds": 0}
    ]
    assert [row["kind"] for row in data["ledger"]] == ["BONUS", "PURCHASE", "SPEND"]
    assert [row["balance_after"] for row in data["ledger"]] == [25, 75, 72]
    [order] = data["orders"]
    assert (order["status"], order["amount"], order["credits"]) == ("COMPLETED", "9.99", 50)
    assert order["invoice"]["number"] == Invoice.objects.get().number
    [job] = data["jobs"]
    assert job["prompt"] == "my secret garden" and job["status"] == "COMPLETED"
    assert data["api_key"][0]["key_ends_with"] == "3456"
    assert "sk-own-key" not in json.dumps(data)
    assert other.email not in json.dumps(data) and len(data["ledger"]) == 3


def test_deleting_asks_for_the_password_and_a_wrong_one_changes_nothing(client, customer):
    page = client.get(reverse("accounts:delete"))
    assert page.status_code == 200 and "72 credits" in page.text and 'name="password"' in page.text

    response = client.post(reverse("accounts:delete"), {"password": "not-my-password"})

    assert response.status_code == 400
    assert "The password is not correct." in response.text
    customer.refresh_from_db()
    assert customer.is_active and customer.email == "leaver@example.com"


def test_deleting_needs_the_csrf_token(customer):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(customer)

    response = browser.post(reverse("accounts:delete"), {"password": PASSWORD})

    assert response.status_code == 403
    assert User.objects.get(pk=customer.pk).is_active


def test_deleting_erases_personal_data_and_keeps_the_financial_records(
    client, customer, settings, django_capture_on_commit_callbacks
):
    other_session = Client()
    other_session.force_login(customer)
    job = GenerationJob.objects.get(user=customer)
    result_path = Path(settings.MEDIA_ROOT) / job.result_file.name
    assert result_path.exists()
    ledger_before = list(
        LedgerEntry.objects.filter(user=customer)
        .order_by("pk")
        .values_list("pk", "amount", "balance_after")
    )

    with django_capture_on_commit_callbacks(execute=True):  # result files are deleted after commit
        response = client.post(reverse("accounts:delete"), {"password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == "/"
    assert "Your account is deleted" in response.text
    user = User.objects.get(pk=customer.pk)
    assert user.email == f"deleted-{user.pk}@deleted.invalid" and user.name == ""
    assert (user.last_login_ip, user.last_login_at, user.is_active) == (None, None, False)
    assert user.deleted_at is not None and not user.has_usable_password()
    assert not EmailAddress.objects.filter(user=user).exists()
    assert not SocialAccount.objects.filter(user=user).exists()
    assert not ApiCredential.objects.filter(user=user).exists()
    job.refresh_from_db()
    assert job.prompt == "" and "chain" not in job.parameters and not job.result_file
    assert not result_path.exists()
    # Financial records stay, linked to the anonymised account; the remaining balance is
    # forfeited by a ledger entry, so the ledger no longer says the account holds credits.
    assert (
        Order.objects.get(user=user).status == "COMPLETED"
        and Invoice.objects.filter(order__user=user).exists()
    )
    entries = list(LedgerEntry.objects.filter(user=user).order_by("pk"))
    assert [(e.pk, e.amount, e.balance_after) for e in entries[:-1]] == ledger_before
    forfeit = entries[-1]
    assert (forfeit.kind, forfeit.amount, forfeit.balance_before, forfeit.balance_after) == (
        "FORFEIT",
        -72,
        72,
        0,
    )
    assert forfeit.description == "Balance forfeited when the account was deleted"
    assert forfeit.idempotency_key == f"account:{user.pk}:forfeit"
    balance = CreditBalance.objects.get(user=user)
    assert (balance.balance, balance.lifetime_earned, balance.lifetime_spent) == (0, 3, 3)
    call_command("check_ledger")
    audit = AuditLog.objects.get(action="accounts.delete")
    assert (audit.user_id, audit.actor_id, audit.metadata["by"]) == (user.pk, user.pk, "self")
    assert audit.metadata["balance_forfeited"] == 72
    assert AuditLog.objects.get(action="credits.forfeit").metadata["ledger_entry_id"] == forfeit.pk
    # Signed out everywhere; the old password no longer works; the address is free again.
    assert other_session.get(reverse("accounts:profile")).status_code == 302
    assert not Client().login(username="leaver@example.com", password=PASSWORD)
    assert "leaver@example.com" not in json.dumps(list(AuditLog.objects.values("metadata")))


def test_an_order_awaiting_payment_or_a_running_job_blocks_deletion(
    client, customer, packages, price_rules
):
    client.post("/billing/buy/", {"package": packages["Basic"].pk})  # checkout started, not paid
    running = job_submit(
        user=customer,
        request=JobRequest(
            operation="image",
            model="procedural-svg",
            prompt="still drawing",
            seed=2,
            use_own_key=False,
        ),
    )
    pending = Order.objects.get(user=customer, status="PENDING")

    page = client.get(reverse("accounts:delete")).text
    response = client.post(reverse("accounts:delete"), {"password": PASSWORD})

    assert f"Order #{pending.pk} is still waiting for its payment" in page
    assert response.status_code == 409
    assert f"Job #{running.pk} is still running" in response.text
    assert User.objects.get(pk=customer.pk).email == "leaver@example.com"
    assert not AuditLog.objects.filter(action="accounts.delete").exists()


def test_an_account_without_a_password_confirms_with_its_address(client, make_user):
    user = make_user("google-only@example.com")
    user.set_unusable_password()
    user.save()
    client.force_login(user)

    assert (
        client.post(reverse("accounts:delete"), {"email": "someone@example.com"}).status_code == 400
    )
    response = client.post(reverse("accounts:delete"), {"email": "Google-Only@example.com"})

    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).deleted_at is not None
    assert not LedgerEntry.objects.filter(user=user).exists()  # nothing to forfeit, nothing written


# --- what deletion does to emails and to the balance ----------------------------------------


def test_deleting_cancels_unsent_emails_to_the_account_and_erases_every_email_it_had(
    client, make_user, django_capture_on_commit_callbacks
):
    user = make_user("mailer@example.com", name="Mai Ler")
    other = make_user("stays@example.com")
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):  # sent at once: a reset link, now spent
        client.post(reverse("account_reset_password"), {"email": "Mailer@Example.com"})
    assert [m.to for m in mail.outbox] == [["mailer@example.com"]]
    # Waiting to be sent, their tasks already queued: a link to confirm a second address, a
    # message to the account in another spelling of its address, and one to someone else.
    with django_capture_on_commit_callbacks() as queued:
        client.post(reverse("account_email"), {"action_add": "", "email": "second@example.com"})
        outbound_email_queue(
            message=EmailMessage("Low balance, Mai", "Top up soon", to=["MAILER@example.com"])
        )
        outbound_email_queue(message=EmailMessage("Hello", "For someone else", to=[other.email]))
    mine = list(OutboundEmail.objects.exclude(to=[other.email]).order_by("pk"))
    assert [e.status for e in mine] == ["SENT", "PENDING", "PENDING"]
    assert "/confirm-email/" in mine[1].body

    client.post(reverse("accounts:delete"), {"password": PASSWORD})

    deleted = User.objects.get(pk=user.pk)
    assert deleted.deleted_at is not None
    # The tasks queued before the deletion run now, the sweep runs: only the other user's email goes.
    for callback in queued:
        callback()
    send_due_outbound_emails()
    assert [m.to for m in mail.outbox] == [["mailer@example.com"], ["stays@example.com"]]
    assert send_outbound_email(mine[1].pk) == "skipped"
    # The rows stay as a record that an email existed, with nothing that identifies the person.
    rows = list(OutboundEmail.objects.filter(pk__in=[e.pk for e in mine]).order_by("pk"))
    assert [e.status for e in rows] == ["SENT", "FAILED", "FAILED"]
    assert [e.kind for e in rows] == [e.kind for e in mine]
    for row in rows:
        assert (row.to, row.subject, row.body, row.html_body, row.headers) == (
            [deleted.email],
            "",
            "",
            "",
            {},
        )
    assert all("account was deleted" in row.last_error for row in rows[1:])
    stored = json.dumps(
        list(OutboundEmail.objects.filter(pk__in=[e.pk for e in mine]).values()), default=str
    )
    assert "mailer@" not in stored.lower() and "second@" not in stored and "Mai" not in stored
    assert OutboundEmail.objects.get(to=[other.email]).status == "SENT"


def test_a_frozen_balance_is_forfeited_too_and_a_later_dispute_outcome_still_adds_up(
    client, make_user
):
    user = make_user("disputed@example.com", credits=40)
    spending_hold(user=user, reason="dispute opened", idempotency_key="dispute:1:hold")
    client.force_login(user)

    assert client.post(reverse("accounts:delete"), {"password": PASSWORD}).status_code == 302

    balance = CreditBalance.objects.get(user=user)
    assert (balance.balance, balance.spend_holds) == (
        0,
        1,
    )  # the hold stays for the dispute to release
    assert LedgerEntry.objects.get(user=user, kind="FORFEIT").amount == -40
    # The dispute is lost afterwards: nothing left to take back, and the ledger says so.
    lost = credits_clawback(
        user=user, amount=40, idempotency_key="dispute:1:lost", reason="Dispute lost"
    )
    assert (lost.recovered, lost.unrecovered) == (0, 40)
    assert spending_release(user=user, reason="dispute closed", idempotency_key="dispute:1:release")
    assert CreditBalance.objects.get(user=user).balance == 0
    call_command("check_ledger")


def test_the_forfeiture_is_written_once_whatever_repeats_it(make_user):
    user = make_user("twice@example.com", credits=9)

    first = credits_forfeit(
        user=user, idempotency_key=f"account:{user.pk}:forfeit", description="Forfeited"
    )
    again = credits_forfeit(
        user=user, idempotency_key=f"account:{user.pk}:forfeit", description="Forfeited"
    )

    assert first is not None and again.pk == first.pk and first.amount == -9
    assert LedgerEntry.objects.filter(user=user, kind="FORFEIT").count() == 1
    assert CreditBalance.objects.get(user=user).balance == 0
    assert (
        credits_forfeit(user=user, idempotency_key="nothing-left", description="Forfeited") is None
    )
    call_command("check_ledger")


# --- staff ---------------------------------------------------------------------------------


@pytest.fixture
def support(make_user):
    staff = make_user("support@example.com", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "change_user"])
    )
    return staff


def grant(staff, codename):
    staff.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=staff.pk)


def test_staff_need_a_permission_to_export_or_delete(client, customer, support):
    client.force_login(support)

    change = client.get(reverse("admin:accounts_user_change", args=[customer.pk])).text
    assert (
        'data-testid="delete-account"' not in change
        and 'data-testid="export-user-data"' not in change
    )
    assert (
        client.get(reverse("admin:accounts_user_export_data", args=[customer.pk])).status_code
        == 403
    )
    assert (
        client.get(reverse("admin:accounts_user_delete_account", args=[customer.pk])).status_code
        == 403
    )
    response = client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_accounts", "_selected_action": [customer.pk]},
    )
    assert User.objects.get(pk=customer.pk).is_active
    assert response.status_code in (200, 302)


def test_staff_download_a_users_data_with_an_audit_row(client, customer, support):
    client.force_login(grant(support, "export_user_data"))

    response = client.get(reverse("admin:accounts_user_export_data", args=[customer.pk]))

    data = json.loads(b"".join(response.streaming_content))
    assert data["profile"]["email"] == "leaver@example.com"
    row = AuditLog.objects.get(action="staff.account_export")
    assert (row.user_id, row.actor_id) == (customer.pk, support.pk)


def test_staff_delete_an_account_after_a_confirmation_with_a_reason(client, customer, support):
    mail.outbox.clear()  # the receipt of the customer's purchase, sent before this test
    queued = outbound_email_queue(
        message=EmailMessage("Your receipt", "Thanks, Lee", to=[customer.email])
    )
    client.force_login(grant(support, "erase_user"))
    url = reverse("admin:accounts_user_delete_account", args=[customer.pk])

    confirmation = client.get(url)
    assert confirmation.status_code == 200 and "Delete accounts" in confirmation.text
    assert User.objects.get(pk=customer.pk).is_active
    key = confirmation.context["form"].initial["submission_key"]
    response = client.post(
        url,
        {"confirm": "yes", "reason": "Erasure request by email, ticket 81", "submission_key": key},
        follow=True,
    )

    assert "account deleted" in response.text
    user = User.objects.get(pk=customer.pk)
    assert user.deleted_at is not None and user.email.endswith("@deleted.invalid")
    staff_row = AuditLog.objects.get(action="staff.account_delete")
    assert (staff_row.actor_id, staff_row.user_id, staff_row.success) == (support.pk, user.pk, True)
    assert staff_row.metadata["reason"] == "Erasure request by email, ticket 81"
    done = AuditLog.objects.get(action="accounts.delete")
    assert (done.actor_id, done.metadata["by"]) == (support.pk, "staff")
    forfeit = LedgerEntry.objects.get(user=user, kind="FORFEIT")
    assert (forfeit.amount, forfeit.created_by_id) == (-72, support.pk)
    assert forfeit.internal_note == "Erasure request by email, ticket 81"
    assert CreditBalance.objects.get(user=user).balance == 0
    call_command("check_ledger")
    # The email queued for the account before the deletion is never sent, and keeps no address.
    email = OutboundEmail.objects.get(pk=queued.pk)
    assert (email.status, email.to, email.subject, email.body) == ("FAILED", [user.email], "", "")
    assert send_due_outbound_emails() == 0 and mail.outbox == []


def test_staff_deleting_a_staff_account_is_refused_and_recorded(client, support, make_user):
    colleague = make_user("colleague@example.com", is_staff=True)
    client.force_login(grant(support, "erase_user"))
    url = reverse("admin:accounts_user_delete_account", args=[colleague.pk])
    key = client.get(url).context["form"].initial["submission_key"]

    response = client.post(
        url, {"confirm": "yes", "reason": "Left the company", "submission_key": key}, follow=True
    )

    assert "Staff accounts are not deleted" in response.text
    assert User.objects.get(pk=colleague.pk).is_active
    row = AuditLog.objects.get(action="staff.account_delete")
    assert row.success is False and "Staff accounts" in row.error_message
