"""Emails through an outbox table: written in the transaction that causes them, sent after commit.

``outbound_email_queue`` stores the rendered message (inside the caller's transaction when
one is open) and, once that commits, hands its id to the ``send_outbound_email`` task. A
send that fails is recorded on the row with the next attempt due after a growing wait; the
task retries then, and the beat sweep (``outbound_emails_due``) sends whatever is overdue,
so a lost broker message or a dead worker delays an email but never loses it. A request
never fails because an email cannot be sent.

Each attempt first claims the row with one conditional UPDATE that moves
``next_attempt_at`` a lease ahead, so the task, its retry and the sweep never send the
same email at the same time; a worker that dies mid-send leaves the email due again when
the lease ends (it may then be sent twice: SMTP has no idempotency).

A file that is costly to draw (an invoice's PDF) can be attached as a ``LaterAttachment``:
the row keeps the name of the function that draws it and its key, and the file is drawn when
the email is sent, outside the transaction (and the locks) that queued it. The app that owns
the document registers the function with ``attachment_renderer_register`` when it starts.

Bodies can be drawn late too (``LaterBody``): the row keeps the name of the function that
renders them (registered with ``body_renderer_register``) and the data it renders from, and
they are rendered when the email is sent, by the worker that sends it, not in the transaction
that queued it.

When an account is deleted, ``outbound_emails_erase`` (in the deletion's transaction)
cancels every email to its addresses still waiting to be sent and erases the address,
subject and bodies of every one of them, sent or not; the rows stay as a record that an
email of that kind existed. A cancelled email is no longer PENDING, so neither a task
already queued nor the sweep sends it: the attempt claims only PENDING rows and reads the
row back only while it is still PENDING. (One already handed to the mail server when the
deletion commits cannot be called back.)
"""

import base64
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from core.inserts import insert_unless_stored
from core.queue import task_send

from . import app_settings
from .models import OutboundEmail

logger = logging.getLogger(__name__)

#: Rows handed to the task per sweep, oldest due first.
SWEEP_BATCH = 500
#: What a cancelled email says instead of an error.
CANCELLED_ON_DELETION = "Cancelled: the account was deleted before this email was sent."


@dataclass(frozen=True)
class LaterAttachment:
    """A file drawn when the email is sent: ``renderer`` names a function registered with
    ``attachment_renderer_register``, called with ``key``, that returns the file's bytes."""

    filename: str
    mimetype: str
    renderer: str
    key: str


#: Functions that draw a LaterAttachment, by name (registered by the apps that own them).
_RENDERERS: dict[str, Callable[[str], bytes]] = {}


def attachment_renderer_register(name: str, render: Callable[[str], bytes]) -> None:
    """Let emails attach files drawn at send time by ``render(key)`` under ``name``."""
    _RENDERERS[name] = render


@dataclass(frozen=True)
class LaterBody:
    """Bodies drawn when the email is sent: ``renderer`` names a function registered with
    ``body_renderer_register``, called with ``data`` (JSON), that returns the plain text and
    the HTML body."""

    renderer: str
    data: dict


#: Functions that draw a LaterBody, by name (registered by the apps that own them).
_BODY_RENDERERS: dict[str, Callable[[dict], tuple[str, str]]] = {}


def body_renderer_register(name: str, render: Callable[[dict], tuple[str, str]]) -> None:
    """Let emails have their bodies drawn at send time by ``render(data)`` under ``name``."""
    _BODY_RENDERERS[name] = render


@dataclass(frozen=True)
class SendOutcome:
    """What one attempt did: ``sent``, or the wait before the next try (None: no retry)."""

    sent: bool
    retry_in: timedelta | None = None
    skipped: bool = False


def outbound_email_queue(
    *,
    message: EmailMessage,
    kind: str = "",
    event_key: str | None = None,
    skipped: bool = False,
    later_attachments: Sequence[LaterAttachment] = (),
    later_body: LaterBody | None = None,
) -> OutboundEmail:
    """Store ``message`` for sending and send it once the current transaction commits.

    ``event_key`` names the event the email tells of: a second call with the same key
    (a retried task, a duplicated webhook, a concurrent request) stores nothing and returns
    the first email, so each event is emailed at most once. ``skipped`` stores the email as
    SKIPPED (the user turned its kind off): a record that the event was seen, never sent.
    Files attached to ``message`` are kept on the row until it is sent; ``later_attachments``
    are drawn when it is sent, and so are its bodies with ``later_body`` (``message`` has
    none then).
    """
    html = ""
    for content, mimetype in getattr(message, "alternatives", None) or []:
        if mimetype == "text/html":
            html = content
    attachments = [
        {
            "filename": filename,
            "mimetype": mimetype or "application/octet-stream",
            "content_b64": base64.b64encode(
                content if isinstance(content, bytes) else str(content).encode()
            ).decode("ascii"),
        }
        for filename, content, mimetype in (message.attachments or [])
    ]
    attachments += [
        {"filename": a.filename, "mimetype": a.mimetype, "renderer": a.renderer, "key": a.key}
        for a in later_attachments
    ]
    fields = {
        "kind": kind[:200],
        "from_email": message.from_email or "",
        "to": list(message.to),
        "subject": message.subject,
        "body": message.body,
        "html_body": html,
        "headers": {str(k): str(v) for k, v in (message.extra_headers or {}).items()},
        "attachments": attachments,
        "render": (
            {"renderer": later_body.renderer, "data": later_body.data} if later_body else None
        ),
        "event_key": event_key or None,
        "status": OutboundEmail.Status.SKIPPED if skipped else OutboundEmail.Status.PENDING,
    }
    if skipped:
        fields.update(body="", html_body="", attachments=[], render=None)
    if event_key:
        email = OutboundEmail(**fields)
        if not insert_unless_stored(email, "(event_key)"):
            # A twin stored it first (now, or committed while this one waited on the key).
            return OutboundEmail.objects.get(event_key=event_key)
    else:
        email = OutboundEmail.objects.create(**fields)
    if not skipped:
        transaction.on_commit(lambda: _enqueue(email.pk), robust=True)
    return email


def outbound_email_send(*, email_id: int) -> SendOutcome:
    """One attempt at sending the email ``email_id`` if it is due; records the outcome on the row."""
    now = timezone.now()
    claimed = OutboundEmail.objects.filter(
        pk=email_id, status=OutboundEmail.Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + app_settings.email_send_lease(), attempts=F("attempts") + 1)
    if not claimed:
        return SendOutcome(sent=False, skipped=True)
    # Cancelled (the account was deleted) since the claim: nothing to send.
    email = OutboundEmail.objects.filter(pk=email_id, status=OutboundEmail.Status.PENDING).first()
    if email is None:
        return SendOutcome(sent=False, skipped=True)
    try:
        _message(email).send(fail_silently=False)
    except Exception as exc:  # any failure of the mail backend: record it and try again later
        return _record_failure(email, exc)
    OutboundEmail.objects.filter(pk=email_id, status=OutboundEmail.Status.PENDING).update(
        status=OutboundEmail.Status.SENT,
        sent_at=timezone.now(),
        last_error="",
        body="",
        html_body="",
        attachments=[],
        render=None,
    )
    return SendOutcome(sent=True)


def outbound_emails_due(*, limit: int = SWEEP_BATCH) -> list[int]:
    """Ids of the PENDING emails whose next attempt is due now, oldest due first."""
    return list(
        OutboundEmail.objects.filter(
            status=OutboundEmail.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def outbound_emails_erase(*, addresses: Iterable[str], replacement: str) -> int:
    """Cancel the unsent emails to any of ``addresses`` and erase what every one of them holds.

    Run inside the account deletion's transaction. Addresses match whatever their case.
    Each matching row's recipients become ``[replacement]`` (the anonymised address), its
    subject, bodies, headers and error are emptied; a PENDING row becomes FAILED with a
    note saying it was cancelled. Returns the number of rows changed.
    """
    needles = {
        json.dumps(address.strip(), ensure_ascii=False) for address in addresses if address.strip()
    }
    if not needles:
        return 0
    # ``to`` is a JSON list: an element equal to the address appears in its text, quoted.
    matches = Q()
    for needle in needles:
        matches |= Q(to__icontains=needle)
    pending = Q(status=OutboundEmail.Status.PENDING)
    return OutboundEmail.objects.filter(matches).update(
        to=[replacement],
        subject="",
        body="",
        html_body="",
        headers={},
        attachments=[],
        render=None,
        status=Case(When(pending, then=Value(OutboundEmail.Status.FAILED)), default=F("status")),
        last_error=Case(When(pending, then=Value(CANCELLED_ON_DELETION)), default=Value("")),
    )


# --- internals ----------------------------------------------------------------------------


def _enqueue(email_id: int) -> None:
    task_send("accounts.tasks.send_outbound_email", args=[email_id])


def _message(email: OutboundEmail) -> EmailMultiAlternatives:
    body, html = email.body, email.html_body
    if email.render:
        body, html = _BODY_RENDERERS[email.render["renderer"]](email.render["data"])
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=body,
        from_email=email.from_email or None,
        to=email.to,
        headers=email.headers or None,
        connection=get_connection(fail_silently=False),
    )
    if html:
        message.attach_alternative(html, "text/html")
    for attachment in email.attachments or []:
        if "renderer" in attachment:
            content = _RENDERERS[attachment["renderer"]](attachment["key"])
        else:
            content = base64.b64decode(attachment["content_b64"])
        message.attach(attachment["filename"], content, attachment["mimetype"])
    return message


def _record_failure(email: OutboundEmail, exc: Exception) -> SendOutcome:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    attempts = email.attempts
    pending = OutboundEmail.objects.filter(pk=email.pk, status=OutboundEmail.Status.PENDING)
    if attempts >= app_settings.email_max_attempts():
        pending.update(status=OutboundEmail.Status.FAILED, last_error=error)
        logger.error(
            "Gave up sending email %s to %s after %s attempts: %s",
            email.pk,
            email.to,
            attempts,
            error,
        )
        return SendOutcome(sent=False)
    delay = app_settings.email_retry_delay(attempts)
    pending.update(next_attempt_at=timezone.now() + delay, last_error=error)
    logger.warning(
        "Sending email %s failed (attempt %s), next try in %s: %s", email.pk, attempts, delay, error
    )
    return SendOutcome(sent=False, retry_in=delay)
