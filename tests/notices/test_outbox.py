"""Event emails go through the outbox: written in the event's transaction, sent after commit
over real SMTP, once per event, and sent by the sweep when the broker lost the message."""

import pytest
from django.db import transaction

from accounts.models import OutboundEmail
from accounts.outbox import LaterAttachment, attachment_renderer_register
from accounts.tasks import send_due_outbound_emails
from config.celery_app import app
from notices.services import email_queue, low_balance_email_queue

from .conftest import html_part, text_part

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_email_is_sent_after_commit_with_text_html_and_one_click_unsubscribe(
    make_user, mailbox
):
    user = make_user("ada@example.com", name="Ada")
    with transaction.atomic():
        low_balance_email_queue(user=user, threshold=100, balance=40, crossing_key="u1:c1")
        assert mailbox.messages == []  # nothing leaves before the event commits

    (message,) = mailbox.messages
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your balance is below 100 credits"
    assert "your balance is 40 credits, below the 100" in " ".join(text_part(message).split())
    assert "<strong>40 credits</strong>" in html_part(message)
    unsubscribe = str(message["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith("<https://credits.example/account/emails/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.strip("<>") in text_part(message)
    email = OutboundEmail.objects.get()
    assert (email.status, email.event_key, email.body) == ("SENT", "low_balance:u1:c1", "")


def test_the_same_event_twice_sends_one_email_and_a_rolled_back_event_none(make_user, mailbox):
    user = make_user("bob@example.com")
    for _ in range(3):
        with transaction.atomic():
            low_balance_email_queue(user=user, threshold=10, balance=5, crossing_key="b:1")
    with pytest.raises(RuntimeError), transaction.atomic():
        low_balance_email_queue(user=user, threshold=10, balance=5, crossing_key="b:2")
        raise RuntimeError("the spend failed")

    assert len(mailbox.messages) == 1
    assert list(OutboundEmail.objects.values_list("event_key", flat=True)) == ["low_balance:b:1"]


def test_transactional_emails_carry_no_unsubscribe_and_unknown_kinds_are_refused(
    make_user, mailbox
):
    user = make_user("cy@example.com")
    with transaction.atomic():
        email_queue(
            user=user,
            kind="dispute_opened",
            key="order:7:dp_1",
            context={"order_id": 7, "amount_display": "$9.00"},
        )
    (message,) = mailbox.messages
    assert message["List-Unsubscribe"] is None
    assert "always sent" in text_part(message)
    with pytest.raises(ValueError, match="No email kind"):
        email_queue(user=user, kind="newsletter", key="x", context={})


def test_a_broker_outage_loses_no_email_and_the_sweep_sends_each_once(make_user, mailbox, settings):
    user = make_user("dee@example.com")
    saved = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    # The broker is down: nothing listens where the tasks would be sent.
    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:9/0")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        for n in range(3):
            with transaction.atomic():
                low_balance_email_queue(user=user, threshold=10, balance=n, crossing_key=f"d:{n}")
    finally:
        app.conf.update(saved)
        settings.CELERY_TASK_ALWAYS_EAGER = True

    assert mailbox.messages == []
    assert OutboundEmail.objects.filter(status="PENDING", attempts=0).count() == 3

    assert send_due_outbound_emails() == 3  # the beat sweep, broker back
    assert send_due_outbound_emails() == 0  # and again: nothing left due
    assert (
        sorted(m["Subject"] for m in mailbox.messages) == ["Your balance is below 10 credits"] * 3
    )
    assert OutboundEmail.objects.filter(status="SENT").count() == 3


def test_a_mail_server_that_refuses_is_retried_with_backoff_then_sends_once(make_user, mailbox):
    user = make_user("eve@example.com")
    mailbox.refuse_with = "451 4.3.0 Try again later"
    with transaction.atomic():
        low_balance_email_queue(user=user, threshold=10, balance=1, crossing_key="e:1")
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts) == ("PENDING", 1)
    assert "451" in email.last_error and email.next_attempt_at is not None
    assert send_due_outbound_emails() == 0  # the backoff has not passed

    mailbox.refuse_with = None
    OutboundEmail.objects.update(next_attempt_at=email.created_at)
    send_due_outbound_emails()
    send_due_outbound_emails()
    assert len(mailbox.messages) == 1
    email.refresh_from_db()
    assert (email.status, email.attempts) == ("SENT", 2)


def test_a_file_drawn_at_send_time_is_never_drawn_in_the_event_and_never_left_out(
    make_user, mailbox
):
    """A costly document (an invoice's PDF) is drawn when its email is sent, outside the
    event's transaction; while it cannot be drawn the email waits, and then goes with it."""
    drawn, store = [], {"up": False}

    def draw(key: str) -> bytes:
        if not store["up"]:
            raise OSError("the document store is unreachable")
        drawn.append(key)
        return b"%PDF-1.4 document " + key.encode()

    attachment_renderer_register("tests.document", draw)
    user = make_user("fay@example.com")
    with transaction.atomic():
        email_queue(
            user=user,
            kind="low_balance",
            key="f:1",
            context={"threshold": 10, "balance": 2},
            attachments=[LaterAttachment("DOC-1.pdf", "application/pdf", "tests.document", "1")],
        )
    email = OutboundEmail.objects.get()
    assert mailbox.messages == [] and drawn == []
    assert (email.status, email.attempts) == ("PENDING", 1)
    assert "unreachable" in email.last_error

    store["up"] = True
    OutboundEmail.objects.update(next_attempt_at=email.created_at)
    send_due_outbound_emails()
    (message,) = mailbox.messages
    (part,) = message.iter_attachments()
    assert (part.get_filename(), part.get_content()) == ("DOC-1.pdf", b"%PDF-1.4 document 1")
    assert drawn == ["1"]
    email.refresh_from_db()
    assert (email.status, email.attachments) == ("SENT", [])


def queued_while_the_broker_is_down(settings, **email) -> None:
    """Queue an email rendered when sent, with no broker to take its message: it waits, as
    stored, for the sweep."""
    saved = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:9/0")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        with transaction.atomic():
            email_queue(**email, render_when_sent=True)
    finally:
        app.conf.update(saved)
        settings.CELERY_TASK_ALWAYS_EAGER = True


def test_an_email_rendered_when_sent_is_stored_unrendered_and_sent_as_rendered_then(
    make_user, mailbox, settings
):
    """The receipt's bodies are drawn by the worker that sends it, from the context stored
    on the row, not in the transaction of the payment; the row is written there all the same."""
    user = make_user("gus@example.com", name="Gus")
    context = {"order_id": 7, "outcome": "won", "outcome_text": "You won the dispute."}
    queued_while_the_broker_is_down(
        settings, user=user, kind="dispute_closed", key="order:7:closed", context=context
    )

    email = OutboundEmail.objects.get()
    assert (email.status, email.to, email.body, email.html_body) == (
        "PENDING",
        ["gus@example.com"],
        "",
        "",
    )
    assert email.subject == "The payment dispute on order #7 is closed: won"
    assert email.render == {
        "renderer": "notices.email",
        "data": {"kind": "dispute_closed", "user_id": user.pk, "context": context},
    }

    assert send_due_outbound_emails() == 1
    (message,) = mailbox.messages
    assert message["Subject"] == "The payment dispute on order #7 is closed: won"
    with transaction.atomic():  # the same email rendered when queued, for comparison
        email_queue(user=user, kind="dispute_closed", key="order:7:again", context=context)
    rendered_now = mailbox.messages[1]
    assert text_part(message) == text_part(rendered_now) and "#7" in text_part(message)
    assert html_part(message) == html_part(rendered_now)
    email.refresh_from_db()
    assert (email.status, email.render) == ("SENT", None)


def test_an_optional_kind_cannot_be_rendered_when_sent(make_user):
    with pytest.raises(ValueError, match="turned off"), transaction.atomic():
        email_queue(
            user=make_user(),
            kind="low_balance",
            key="x",
            context={"threshold": 1, "balance": 0},
            render_when_sent=True,
        )


def test_erasing_an_account_erases_what_an_email_would_be_rendered_from(make_user, settings):
    from accounts.outbox import outbound_emails_erase

    user = make_user("hal@example.com")
    queued_while_the_broker_is_down(
        settings,
        user=user,
        kind="dispute_opened",
        key="order:8:dp_1",
        context={"order_id": 8, "stage": "inquiry", "amount_display": "$9.99"},
    )

    assert outbound_emails_erase(addresses=["hal@example.com"], replacement="gone@x.invalid") == 1
    email = OutboundEmail.objects.get()
    assert (email.status, email.to, email.subject, email.render) == (
        "FAILED",
        ["gone@x.invalid"],
        "",
        None,
    )
    assert send_due_outbound_emails() == 0
