"""Staff refunds of finished jobs, and the system checks of the generation settings."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from credits.models import CreditBalance, LedgerEntry
from generations.charges import job_ledger_entries
from generations.checks import check_generations_settings
from generations.exceptions import InvalidTransition
from generations.running import job_run
from generations.services import JobRequest, NotAllowed, job_refund_completed, job_submit

pytestmark = pytest.mark.django_db(transaction=True)


def staff_with_permission(make_user):
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="manage_jobs"))
    return staff


def customer_sees(client, user, job) -> str:
    """The customer's credit history and job page, as they read them."""
    client.force_login(user)
    return (
        client.get(reverse("credits:history")).content.decode()
        + client.get(reverse("generations:detail", args=[job.pk])).content.decode()
    )


def test_staff_refund_a_bad_picture_once(client, make_user, price_rules, parked_queue):
    user, staff = make_user(credits=10), staff_with_permission(make_user)
    job = job_submit(
        user=user, request=JobRequest(operation="image", model="procedural-svg", prompt="a cat")
    )
    job_run(job_id=job.pk)
    with pytest.raises(NotAllowed):
        job_refund_completed(
            job_id=job.pk, staff_user=make_user(is_staff=True), reason="no permission"
        )
    refunded = job_refund_completed(
        job_id=job.pk, staff_user=staff, reason="The picture came out blank"
    )
    assert refunded.status == "REFUNDED" and CreditBalance.objects.get(user=user).balance == 10
    refund = job_ledger_entries(job).get(kind="REFUND")
    assert refund.created_by_id == staff.pk and refund.amount == 3
    assert refund.internal_note == "The picture came out blank"
    page = customer_sees(client, user, job)
    assert f"Refund of job #{job.pk}" in page and "came out blank" not in page
    with pytest.raises(InvalidTransition):
        job_refund_completed(job_id=job.pk, staff_user=staff, reason="again")
    assert CreditBalance.objects.get(user=user).balance == 10


def test_staff_refund_of_a_text_job_that_already_returned_its_unused_estimate(
    client, make_user, price_rules, openai_settings, parked_queue
):
    user, staff = make_user(credits=20), staff_with_permission(make_user)
    job = job_submit(
        user=user, request=JobRequest(operation="text", model="test-chat", prompt="A limerick")
    )
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert CreditBalance.objects.get(user=user).balance == 20 - job.credits_charged
    job_refund_completed(job_id=job.pk, staff_user=staff, reason="Off-topic answer")
    assert CreditBalance.objects.get(user=user).balance == 20
    adjustment = LedgerEntry.objects.get(idempotency_key=f"job:{job.pk}:staff-refund")
    assert adjustment.kind == "ADJUSTMENT" and adjustment.amount == job.credits_charged
    page = customer_sees(client, user, job)
    assert f"Refund of job #{job.pk}" in page and "Off-topic" not in page


@pytest.mark.parametrize(
    "name,value,check_id",
    [
        ("GENERATIONS_MAX_RUNNING_JOBS", 0, "generations.E002"),
        ("GENERATIONS_MAX_RETRIES", "lots", "generations.E001"),
        ("GENERATIONS_STUCK_AFTER", 10, "generations.W001"),
        ("GENERATIONS_PENDING_RESEND_AFTER", 0, "generations.E005"),
        ("GENERATIONS_PENDING_RESEND_MAX", 30, "generations.E005"),
    ],
)
def test_bad_settings_are_reported(settings, name, value, check_id):
    setattr(settings, name, value)
    assert check_id in [problem.id for problem in check_generations_settings()]


def test_the_default_settings_pass_the_checks(settings):
    assert check_generations_settings() == []
