"""Event emails: rendered from a kind's templates and stored in the outbox in the event's
transaction, sent after commit, at most once per event key.

``email_queue`` is the one call an app makes, inside the transaction of what happened (a
payment fulfilled, a refund recorded, a balance crossing below a threshold): if that
transaction rolls back, no email exists; if it commits, the outbox sends the email after
commit with retries, and the beat sweep sends it if the broker lost the message (see
``accounts.outbox``). The key names the event: the same key twice stores one email. A
transactional email on a hot path (the receipt of every payment) can be rendered when it is
sent instead (``render_when_sent``): its row is written in the event's transaction all the
same, with the context its templates are rendered from.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import OutboundEmail
from accounts.outbox import (
    LaterAttachment,
    LaterBody,
    body_renderer_register,
    outbound_email_queue,
)

from .kinds import kind_get
from .models import NoticePreferences
from .selectors import notice_wanted
from .tokens import unsubscribe_token

#: Pages every email may link to (by URL name: no import of the apps that serve them).
LINKS = {
    "pricing_url": "payments:pricing",
    "orders_url": "payments:orders",
    "generate_url": "generations:new",
    "history_url": "credits:history",
}


def email_queue(
    *,
    user,
    kind: str,
    key: str,
    context: dict,
    attachments: list[tuple[str, bytes, str] | LaterAttachment] | None = None,
    render_when_sent: bool = False,
) -> OutboundEmail | None:
    """Queue the ``kind`` email about event ``key`` to ``user``, once, in this transaction.

    ``context`` fills the kind's subject and templates. ``attachments``: files as
    ``(filename, content, mimetype)``, or ``LaterAttachment``s drawn when the email is sent
    (a document costly to draw, kept out of the caller's transaction). Returns the email
    (the first one when ``key`` was seen before), a SKIPPED record when the user turned this
    optional kind off, or None for an account that cannot receive email (deleted, inactive,
    no address).

    ``render_when_sent``: the templates are rendered by the worker that sends the email, from
    ``context`` (JSON values only) and the user as they are then, not in the caller's
    transaction; the subject is formatted now, from ``context`` alone. For a transactional
    kind (an optional one needs its unsubscribe link in the headers now).
    """
    spec = kind_get(kind)
    if not user.is_active or getattr(user, "deleted_at", None) is not None or not user.email:
        return None
    event_key = f"{kind}:{key}"[:200]
    if render_when_sent:
        if spec.optional:
            raise ValueError(f"{kind!r} can be turned off: its email is rendered when queued")
        message = EmailMultiAlternatives(
            subject=_subject(spec, {"user": user, **context}),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[user.email],
        )
        return outbound_email_queue(
            message=message,
            kind=kind,
            event_key=event_key,
            later_attachments=[a for a in attachments or [] if isinstance(a, LaterAttachment)],
            later_body=LaterBody(RENDERER, {"kind": kind, "user_id": user.pk, "context": context}),
        )
    # A key seen before is told by the outbox's insert (it keeps the first email): events are
    # emailed once each, so a repeat is rare and costs a rendering, not every email a query.
    skipped = spec.optional and not notice_wanted(user=user, kind=kind)
    full, headers = _full_context(user=user, kind=kind, spec=spec, context=context)
    message = EmailMultiAlternatives(
        subject=_subject(spec, full),
        body="" if skipped else render_to_string(f"notices/email/{kind}.txt", full),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        headers=headers,
    )
    later = []
    if not skipped:
        message.attach_alternative(
            render_to_string(f"notices/email/{kind}.html", full), "text/html"
        )
        for attachment in attachments or []:
            if isinstance(attachment, LaterAttachment):
                later.append(attachment)
            else:
                message.attach(*attachment)
    return outbound_email_queue(
        message=message,
        kind=kind,
        event_key=event_key,
        skipped=skipped,
        later_attachments=later,
    )


#: The outbox's name for ``render_bodies``.
RENDERER = "notices.email"


def render_bodies(data: dict) -> tuple[str, str]:
    """The plain text and HTML bodies of an email queued with ``render_when_sent``, drawn
    when it is sent (registered with the outbox as ``RENDERER``)."""
    user = get_user_model().objects.get(pk=data["user_id"])
    kind = data["kind"]
    full, _ = _full_context(user=user, kind=kind, spec=kind_get(kind), context=data["context"])
    return (
        render_to_string(f"notices/email/{kind}.txt", full),
        render_to_string(f"notices/email/{kind}.html", full),
    )


def register() -> None:
    body_renderer_register(RENDERER, render_bodies)


def _subject(spec, context: dict) -> str:
    return " ".join(spec.subject.format(**_with_credits_text(context)).split())


def _with_credits_text(context: dict) -> dict:
    if isinstance(context.get("credits"), int) and "credits_text" not in context:
        credits = context["credits"]
        return {**context, "credits_text": f"{credits:,} credit{'' if credits == 1 else 's'}"}
    return context


def _full_context(*, user, kind: str, spec, context: dict) -> tuple[dict, dict]:
    """The templates' context (the links every email may show, the kind's own values) and
    the headers (an optional kind's one-click unsubscribe)."""
    site_url = settings.SITE_URL.rstrip("/")
    full = {
        "user": user,
        "site_url": site_url,
        "preferences_url": site_url + reverse("notices:preferences"),
        **{name: site_url + reverse(url_name) for name, url_name in LINKS.items()},
        **context,
    }
    full = _with_credits_text(full)
    headers = {}
    if spec.optional:
        link = site_url + reverse(
            "notices:unsubscribe", args=[unsubscribe_token(user_id=user.pk, kind=kind)]
        )
        full["unsubscribe_url"] = link
        # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs here.
        headers["List-Unsubscribe"] = f"<{link}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return full, headers


def notice_preferences_set(*, user, wanted: dict[str, bool]) -> NoticePreferences:
    """Turn optional kinds on or off (``{kind: wanted}``); kinds not named keep their setting."""
    for name in wanted:
        if not kind_get(name).optional:
            raise ValueError(f"{name!r} is always sent and cannot be turned off")
    with transaction.atomic():
        prefs, _ = NoticePreferences.objects.select_for_update().get_or_create(user=user)
        off = set(prefs.off)
        for name, on in wanted.items():
            (off.discard if on else off.add)(name)
        prefs.off = sorted(off)
        prefs.save(update_fields=["off", "updated_at"])
    return prefs


def low_balance_email_queue(*, user, threshold: int, balance: int, crossing_key: str):
    """The low-balance email for one crossing below ``threshold`` (inside the spend's
    transaction): once per ``crossing_key``, skipped when the user turned it off."""
    return email_queue(
        user=user,
        kind="low_balance",
        key=crossing_key,
        context={"threshold": threshold, "balance": balance},
    )
