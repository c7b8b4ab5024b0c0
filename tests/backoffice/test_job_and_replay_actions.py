"""Staff actions on generation jobs and webhook events, through the owners' services."""

import pytest
from django.urls import reverse

from credits.models import AuditLog, CreditBalance, LedgerKind
from generations.charges import job_ledger_entries
from generations.models import GenerationJob
from payments.ledger import order_ledger_entries
from payments.models import Order, WebhookEvent

from .conftest import messages_of, post_action


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


@pytest.fixture
def completed_job(make_user, settings, tmp_path):
    """A picture job submitted, charged and run to completion by the generations services."""
    from generations.running import job_run
    from generations.services import JobRequest, job_submit

    settings.MEDIA_ROOT = str(tmp_path)
    customer = make_user(credits=50)
    job = job_submit(
        user=customer,
        request=JobRequest(
            operation="image", model="procedural-svg", prompt="a lighthouse at dusk"
        ),
    )
    assert job_run(job_id=job.pk) == "completed"
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.COMPLETED and job.credits_charged > 0
    return job


@pytest.mark.django_db
def test_staff_refunds_a_completed_job_once(client, make_staff, completed_job):
    job = completed_job
    before = balance(job.user)
    staff = make_staff("generations.view_generationjob", "generations.manage_jobs")
    client.force_login(staff)

    response = post_action(
        client,
        "generations_generationjob",
        "refund",
        [job.pk],
        follow=True,
        reason="The picture came out blank",
    )
    again = post_action(
        client, "generations_generationjob", "refund", [job.pk], follow=True, reason="Clicked twice"
    )

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.REFUNDED
    assert balance(job.user) == before + job.credits_charged
    assert any(
        f"Job #{job.pk}: {job.credits_charged} credits given back" in m
        for m in messages_of(response)
    )
    assert any("cannot become refunded" in m for m in messages_of(again))
    rows = list(
        AuditLog.objects.filter(action="staff.job_refund")
        .order_by("id")
        .values_list("success", "actor")
    )
    assert rows == [(True, staff.pk), (False, staff.pk)]


@pytest.mark.django_db
def test_staff_without_manage_jobs_cannot_refund(client, make_staff, completed_job):
    before = balance(completed_job.user)
    client.force_login(make_staff("generations.view_generationjob"))
    changelist = client.get(reverse("admin:generations_generationjob_changelist")).content.decode()
    assert 'value="refund"' not in changelist
    post_action(client, "generations_generationjob", "refund", [completed_job.pk], reason="x")
    completed_job.refresh_from_db()
    assert (
        completed_job.status == GenerationJob.Status.COMPLETED
        and balance(completed_job.user) == before
    )


REPLAY = ("payments.view_webhookevent", "payments.change_webhookevent")


@pytest.fixture
def failed_payment_event(stripe_checkout, fake_stripe):
    """A checkout paid on Stripe whose webhook failed to process (the order is still pending)."""
    from payments.providers import get_provider
    from payments.webhooks import event_to_json

    order = stripe_checkout(credits=100, price="20.00")
    session = fake_stripe.pay(order.provider_order_id)
    payload = fake_stripe.event("checkout.session.completed", session)
    event = get_provider("STRIPE").parse_webhook(
        body=payload.encode(), headers={"Stripe-Signature": fake_stripe.sign(payload)}
    )
    row = WebhookEvent.objects.create(
        provider="STRIPE",
        event_id=event.event_id,
        type=event.type,
        raw_body=payload,
        signature_valid=True,
        normalized=event_to_json(event),
        status=WebhookEvent.Status.FAILED,
        attempts=8,
        last_error="ProviderError: Stripe: Stripe is down",
    )
    return order, row


@pytest.mark.django_db(transaction=True)
def test_replaying_a_failed_event_processes_it(client, make_staff, failed_payment_event):
    order, event = failed_payment_event
    staff = make_staff(*REPLAY)
    client.force_login(staff)

    response = post_action(
        client,
        "payments_webhookevent",
        "replay",
        [event.pk],
        follow=True,
        reason="Stripe was down last night",
    )

    event.refresh_from_db()
    order.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and event.attempts == 1
    assert order.status == Order.Status.COMPLETED and balance(order.user) == 100
    assert order_ledger_entries(order).filter(kind=LedgerKind.PURCHASE).count() == 1
    assert any("queued for processing again" in m for m in messages_of(response))
    audit = AuditLog.objects.get(action="staff.webhook_replay")
    assert audit.actor_id == staff.pk and audit.metadata["previous_status"] == "FAILED"
    assert audit.metadata["reason"] == "Stripe was down last night"

    # Replaying it again is refused: it is processed, and processing it twice would change nothing.
    again = post_action(
        client, "payments_webhookevent", "replay", [event.pk], follow=True, reason="again"
    )
    assert any("already processed" in m for m in messages_of(again))
    assert order_ledger_entries(order).filter(kind=LedgerKind.PURCHASE).count() == 1
    assert AuditLog.objects.filter(action="staff.webhook_replay", success=False).count() == 1


@pytest.mark.django_db
def test_replay_needs_its_permission(client, make_staff):
    event = WebhookEvent.objects.create(
        provider="STRIPE",
        event_id="evt_x",
        type="charge.refunded",
        raw_body="{}",
        signature_valid=True,
        status=WebhookEvent.Status.FAILED,
    )
    client.force_login(make_staff("payments.view_webhookevent"))
    assert (
        'value="replay"'
        not in client.get(reverse("admin:payments_webhookevent_changelist")).content.decode()
    )
    post_action(client, "payments_webhookevent", "replay", [event.pk], reason="x")
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED


@pytest.fixture
def failed_job(make_user, settings, tmp_path):
    """A picture job charged, claimed, and failed for good (so refunded in full) by the services."""
    from generations.backends.base import BackendError
    from generations.running import job_attempt_failed, job_claim
    from generations.services import JobRequest, job_submit

    settings.MEDIA_ROOT = str(tmp_path)
    customer = make_user(credits=20)
    job = job_submit(
        user=customer,
        request=JobRequest(
            operation="image",
            model="procedural-svg",
            prompt="two green triangles in a forest",
            seed=7,
        ),
    )
    assert (
        job_attempt_failed(claim=job_claim(job_id=job.pk), error=BackendError("The drawing broke."))
        == "failed"
    )
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED and balance(customer) == 20
    return job


@pytest.mark.django_db
def test_staff_retries_a_failed_job_once_as_a_new_charged_job(client, make_staff, failed_job):
    staff = make_staff("generations.view_generationjob", "generations.manage_jobs")
    client.force_login(staff)

    response = post_action(
        client,
        "generations_generationjob",
        "retry",
        [failed_job.pk],
        follow=True,
        reason="The drawing service is back",
    )
    again = post_action(
        client,
        "generations_generationjob",
        "retry",
        [failed_job.pk],
        follow=True,
        reason="Clicked twice",
    )

    retry = GenerationJob.objects.get(retry_of=failed_job)
    assert (retry.user_id, retry.prompt, retry.parameters["seed"]) == (
        failed_job.user_id,
        failed_job.prompt,
        7,
    )
    # The retry waits for its task with its estimate reserved, charged once.
    assert retry.status == GenerationJob.Status.PENDING
    assert balance(failed_job.user) == 20 - retry.estimated_credits
    assert job_ledger_entries(retry).filter(kind=LedgerKind.SPEND).count() == 1
    assert any(
        f"Job #{failed_job.pk}: running again as job #{retry.pk}" in m
        for m in messages_of(response)
    )
    assert any("already retried" in m for m in messages_of(again))
    assert GenerationJob.objects.filter(retry_of=failed_job).count() == 1
    rows = list(
        AuditLog.objects.filter(action="staff.job_retry")
        .order_by("id")
        .values_list("success", flat=True)
    )
    assert rows == [True, False]


@pytest.mark.django_db
def test_only_failed_jobs_are_retried_and_only_with_the_permission(
    client, make_staff, completed_job, failed_job
):
    client.force_login(make_staff("generations.view_generationjob"))
    post_action(client, "generations_generationjob", "retry", [failed_job.pk], reason="x")
    assert not GenerationJob.objects.filter(retry_of=failed_job).exists()

    client.force_login(make_staff("generations.view_generationjob", "generations.manage_jobs"))
    response = post_action(
        client,
        "generations_generationjob",
        "retry",
        [completed_job.pk],
        follow=True,
        reason="Looks fine to me",
    )
    assert any("is completed and cannot become retried" in m for m in messages_of(response))
    assert not GenerationJob.objects.filter(retry_of=completed_job).exists()
