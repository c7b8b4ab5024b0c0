"""Celery tasks of the accounts app: sending the outbox's emails. Thin: each calls the service."""

from celery import shared_task

from .outbox import outbound_email_send, outbound_emails_due


@shared_task(
    name="accounts.tasks.send_outbound_email", bind=True, ignore_result=True, max_retries=None
)
def send_outbound_email(self, email_id: int) -> str:
    """Send one outbox email if it is due; after a failure, retry when the row says it is due.

    The row bounds the attempts (ACCOUNTS_EMAIL_MAX_ATTEMPTS); the sweep sends it too if
    this retry is lost. Run in place (no broker), a failure waits for the sweep.
    """
    outcome = outbound_email_send(email_id=email_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=outcome.retry_in.total_seconds())
    return "sent" if outcome.sent else ("skipped" if outcome.skipped else "failed")


@shared_task(name="accounts.tasks.send_due_outbound_emails", ignore_result=True)
def send_due_outbound_emails() -> int:
    """Beat (ACCOUNTS_EMAIL_SWEEP_INTERVAL): hand every overdue outbox email to a task."""
    due = outbound_emails_due()
    for email_id in due:
        send_outbound_email.delay(email_id)
    return len(due)
