"""The emails the site sends about events, each a kind with a subject and two templates.

A kind is ``templates/notices/email/<name>.txt`` and ``.html`` (the HTML extends
``notices/email/_layout.html``) plus one entry here. Transactional kinds (receipts, credit
notes, disputes, failed payments) are always sent; optional kinds can be turned off on the
preferences page and carry a one-click unsubscribe. Adding an email is one entry here, two
templates, and one ``notices.services.email_queue`` call in the transaction of the event.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    #: ``str.format`` template over the email's context.
    subject: str
    #: Users may turn it off (and unsubscribe in one click); transactional kinds are always sent.
    optional: bool = False
    #: What the preferences page calls it.
    label: str = ""
    help: str = ""


_KINDS = [
    Kind("receipt", "Your receipt {invoice_number}: {credits_text}"),
    Kind("credit_note", "Refund on order #{order_id}: credit note {credit_note_number}"),
    Kind("dispute_opened", "A payment dispute was opened on order #{order_id}"),
    Kind("dispute_closed", "The payment dispute on order #{order_id} is closed: {outcome}"),
    Kind("autotopup_failed", "Auto top-up is off: {reason_short}"),
    Kind("subscription_payment_failed", "Your {plan} subscription payment failed"),
    Kind("subscription_cancelled", "Your {plan} subscription is cancelled"),
    Kind(
        "subscription_renewing",
        "Your {plan} subscription renews on {renews_on}",
        optional=True,
        label="Subscription renewal reminders",
        help="A few days before a subscription renews.",
    ),
    Kind(
        "credits_expiring",
        "{credits_text} expire on {expires_on}",
        optional=True,
        label="Credits about to expire",
        help="Once per batch of credits, 7 days before it expires.",
    ),
    Kind(
        "low_balance",
        "Your balance is below {threshold} credits",
        optional=True,
        label="Low balance",
        help="When your balance falls below the threshold you set.",
    ),
    Kind(
        "job_failed",
        "Generation job #{job_id} failed: {credits_text} refunded",
        optional=True,
        label="Failed generation jobs",
        help="When a job fails and its credits are refunded.",
    ),
]

KINDS: dict[str, Kind] = {kind.name: kind for kind in _KINDS}


def kind_get(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"No email kind {name!r}: add it to notices.kinds") from None


def optional_kinds() -> list[Kind]:
    return [kind for kind in _KINDS if kind.optional]
