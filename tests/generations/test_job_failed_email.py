"""A job that fails and is refunded emails its owner once, unless they turned that off."""

import pytest

from accounts.models import OutboundEmail
from accounts.outbox import outbound_email_send, outbound_emails_due
from generations.running import job_run
from generations.services import JobRequest, job_submit
from notices.services import notice_preferences_set
from tests.notices.conftest import mailbox, smtp_server, text_part  # noqa: F401 (fixtures)

from .fake_openai import Answer

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = JobRequest(
    operation="text", model="test-chat", prompt="A two-line poem about rain", max_output_tokens=1000
)


@pytest.fixture
def endpoint(openai_settings, price_rules, parked_queue):
    return openai_settings


def send_due() -> None:
    """The sweep's work, in this process (tasks sent here wait in a queue nobody reads)."""
    for email_id in outbound_emails_due():
        outbound_email_send(email_id=email_id)


def test_a_failed_job_emails_its_owner_once_with_the_refund(make_user, endpoint, mailbox):
    endpoint.script(Answer(status=400, body={"error": {"message": "Your prompt was refused."}}))
    user = make_user("kay@example.com", credits=20)
    job = job_submit(user=user, request=TEXT)
    assert job_run(job_id=job.pk) == "failed"
    assert job_run(job_id=job.pk) == "skipped"
    send_due()
    send_due()

    (message,) = mailbox.messages
    assert message["Subject"] == (
        f"Generation job #{job.pk} failed: {job.estimated_credits} credits refunded"
    )
    assert "Your prompt was refused" in text_part(message)
    assert f"/generate/{job.pk}/" in text_part(message)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_an_owner_who_turned_it_off_gets_no_email(make_user, endpoint, mailbox):
    endpoint.script(Answer(status=400, body={"error": {"message": "Refused."}}))
    user = make_user(credits=20)
    notice_preferences_set(user=user, wanted={"job_failed": False})
    job = job_submit(user=user, request=TEXT)
    assert job_run(job_id=job.pk) == "failed"
    send_due()
    assert mailbox.messages == []
    assert OutboundEmail.objects.get().status == "SKIPPED"
