"""Auto top-up: buy a chosen pack with a saved payment method (a card at Stripe, or a PayPal
account in PayPal's vault) when the balance falls below a threshold.

While auto top-up is on, its threshold is also on the user's balance row
(``autotopup_threshold_sync``), so the movement that takes the balance below it records a
crossing in its own statement (``credits.crossings``); the crossing's handler calls
``topup_trigger`` with a key naming that crossing, in the transaction that marks it handled.
The trigger creates the order and an attempt row there (or nothing), and the charge runs after
commit in a task (``payments.autotopup_charge``), off-session, with the order's own idempotency
key. So:

- each crossing buys at most once (unique ``(user, crossing_key)``), however often it is
  reported, and a spend that rolls back leaves no attempt;
- at most one purchase is in flight per user (a partial unique index on PENDING attempts)
  and at most ``PAYMENTS_AUTOTOPUP_MAX_PER_DAY`` start per user and UTC day;
- credits come only from the ordinary fulfilment, once the provider says paid (from the
  task, Stripe's ``payment_intent.succeeded`` or PayPal's ``PAYMENT.CAPTURE.COMPLETED``
  webhook, or a sweep, whichever is first);
- a declined card or PayPal account, or one that needs its owner (3-D Secure, PayPal's
  PAYER_ACTION_REQUIRED, while the buyer is away), fails the order, turns auto top-up off
  with the reason, and emails the user, once.

The attempt follows its order: ``autotopup_order_settled`` runs in the transaction that
fulfils the order or marks it unpaid. The database is the source of truth: the sweep
(``payments.tasks.retry_auto_topups``) runs the charge again for attempts still in flight.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core.queue import task_send
from credits.models import CreditBalance
from credits.services import spending_top_up_threshold_set
from notices.services import email_queue

from .app_settings import autotopup_max_per_day, site_url
from .models import AutoTopUp, AutoTopUpAttempt, CreditPackage, Order
from .providers import PAYPAL, SANDBOX, STRIPE, available_providers
from .templatetags.money import money
from .transitions import UNPAID_ENDINGS

#: Why an off-session payment failed, in words for the user (by the provider's code).
REASONS = {
    "authentication_required": "your bank asked you to confirm the payment, which cannot "
    "be done while you are away.",
    "card_declined": "your card was declined.",
    "insufficient_funds": "your card has insufficient funds.",
    "expired_card": "your card has expired.",
    "no_card": "no card is saved.",
    # PayPal (a saved PayPal account, charged through its vault id)
    "INSTRUMENT_DECLINED": "PayPal declined the payment.",
    "DECLINED": "PayPal declined the payment.",
    "PAYER_CANNOT_PAY": "PayPal declined the payment.",
    "PAYER_ACTION_REQUIRED": "PayPal asked you to confirm the payment, which cannot be done "
    "while you are away.",
    "AGREEMENT_ALREADY_CANCELLED": "the PayPal account was unlinked from this site.",
}
GENERIC_REASON = "the payment did not go through."
#: How long an attempt may stay in flight before the sweep runs its charge again.
RETRY_AFTER = timedelta(minutes=2)


def autotopup_providers() -> list[str]:
    """Where a payment method can be saved here, preferred first: Stripe (a card) and PayPal
    (an account in its vault) where configured, else the sandbox when it runs here."""
    providers = available_providers()
    return [name for name in (STRIPE, PAYPAL, SANDBOX) if name in providers]


def autotopup_provider() -> str | None:
    """The preferred place to save a payment method, or None when there is none here."""
    providers = autotopup_providers()
    return providers[0] if providers else None


def autotopup_configure(*, user, threshold: int, package: CreditPackage) -> AutoTopUp:
    """Set the threshold and the pack; whether it is on is left as it was."""
    if threshold < 1:
        raise ValueError("The threshold is at least 1 credit.")
    if not package.active:
        raise ValueError(f"The {package.name} package is not on sale.")
    with transaction.atomic():
        config = AutoTopUp.objects.select_for_update().filter(user=user).first()
        if config is None:
            config = AutoTopUp.objects.create(user=user, threshold=threshold, package=package)
        else:
            config.threshold, config.package = threshold, package
            config.save(update_fields=["threshold", "package", "updated_at"])
        autotopup_threshold_sync(user=user)
    return config


def autotopup_save_method(
    *, user, provider: str, customer_id: str, payment_method_id: str, label: str
) -> AutoTopUp:
    """Keep the saved payment method and turn auto top-up on."""
    with transaction.atomic():
        config = AutoTopUp.objects.select_for_update().get(user=user)
        config.provider = provider
        config.customer_id = customer_id
        config.payment_method_id = payment_method_id
        config.payment_method_label = label
        config.setup_session_id = ""
        config.enabled = True
        config.disabled_reason = ""
        config.save()
        autotopup_threshold_sync(user=user)
    return config


def autotopup_turn_on(*, user) -> AutoTopUp:
    with transaction.atomic():
        config = AutoTopUp.objects.select_for_update().get(user=user)
        if not config.payment_method_id:
            raise ValueError("Save a card first.")
        config.enabled, config.disabled_reason = True, ""
        config.save(update_fields=["enabled", "disabled_reason", "updated_at"])
        autotopup_threshold_sync(user=user)
    return config


def autotopup_turn_off(*, user, reason: str = "") -> None:
    with transaction.atomic():
        AutoTopUp.objects.filter(user=user).update(
            enabled=False, disabled_reason=reason[:500], updated_at=timezone.now()
        )
        autotopup_threshold_sync(user=user)


def autotopup_threshold_sync(*, user) -> None:
    """Put the threshold of an auto top-up that is on (with a saved card) on the user's balance
    row, or take it off: the movement statement then records each fall below it."""
    config = (
        AutoTopUp.objects.filter(user=user)
        .values("enabled", "payment_method_id", "threshold")
        .first()
    )
    on = config is not None and config["enabled"] and bool(config["payment_method_id"])
    spending_top_up_threshold_set(user=user, threshold=config["threshold"] if on else None)


def topup_trigger(*, user, crossing_key: str) -> AutoTopUpAttempt | None:
    """Start an automatic purchase for the crossing ``crossing_key`` (inside the spend's
    transaction): the attempt made for that crossing, a new one, or None when auto top-up
    is off, the balance is at or above the threshold, a purchase is in flight, or today's
    allowance is used up. The charge runs after commit."""
    with transaction.atomic():
        config = (
            AutoTopUp.objects.select_for_update()
            .select_related("package")
            .filter(user=user, enabled=True)
            .first()
        )
        if config is None or not config.payment_method_id:
            return None
        existing = AutoTopUpAttempt.objects.filter(user=user, crossing_key=crossing_key).first()
        if existing is not None:
            return existing
        # The purchase in flight is looked for before the balance is read: each statement
        # sees what was committed when it started, and a purchase settling in between commits
        # its credits and its attempt's SUCCEEDED together. Read the other way round, the
        # balance could predate that commit and the in-flight check follow it, and a second
        # purchase would start for a balance already topped up.
        mine = AutoTopUpAttempt.objects.filter(user=user)
        if mine.filter(status=AutoTopUpAttempt.Status.PENDING).exists():
            return None
        balance = CreditBalance.objects.filter(user=user).values_list("balance", flat=True).first()
        if (balance or 0) >= config.threshold:
            return None
        now = timezone.now()
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if mine.filter(created_at__gte=day_start).count() >= autotopup_max_per_day():
            return None
        package = config.package
        order = Order.objects.create(
            user=user,
            package=package,
            amount=package.price,
            currency=package.currency.upper(),
            credits=package.credits,
            provider=config.provider,
        )
        attempt = AutoTopUpAttempt.objects.create(
            user=user, crossing_key=crossing_key[:200], order=order, created_at=now
        )
    transaction.on_commit(lambda: _send(attempt.pk), robust=True)
    return attempt


def autotopup_on_crossing(crossing) -> AutoTopUpAttempt | None:
    """The handler of top-up crossings (``credits.crossings``): the movement recorded that the
    balance fell from at or above the threshold to below it; one purchase per crossing."""
    return topup_trigger(user=crossing.user, crossing_key=f"crossing:{crossing.pk}")


def autotopup_order_settled(*, order: Order, code: str = "", message: str = "") -> None:
    """Bring the order's attempt in line with the order (its row lock held): paid, or failed
    (auto top-up turned off and the user emailed, once)."""
    attempt = (
        AutoTopUpAttempt.objects.select_for_update()
        .filter(order=order, status=AutoTopUpAttempt.Status.PENDING)
        .first()
    )
    if attempt is None:
        return
    now = timezone.now()
    if order.is_fulfilled:
        attempt.status, attempt.settled_at = AutoTopUpAttempt.Status.SUCCEEDED, now
        attempt.save(update_fields=["status", "settled_at"])
        return
    if order.status not in UNPAID_ENDINGS:
        return
    reason = REASONS.get(code, GENERIC_REASON)
    attempt.status, attempt.settled_at = AutoTopUpAttempt.Status.FAILED, now
    attempt.error = (f"{code}: {message}" if code else message or reason)[:500]
    attempt.save(update_fields=["status", "settled_at", "error"])
    config = AutoTopUp.objects.select_for_update().select_related("package").get(user=order.user)
    config.enabled = False
    config.disabled_reason = f"Turned off on {now:%B %-d, %Y}: {reason}"[:500]
    config.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    autotopup_threshold_sync(user=order.user)
    email_queue(
        user=order.user,
        kind="autotopup_failed",
        key=str(attempt.pk),
        context={
            "reason": reason,
            "reason_short": reason.rstrip(".").split(",")[0],
            "package_name": order.package.name,
            "amount_display": money(order.amount, order.currency),
            "threshold": config.threshold,
            "settings_url": site_url() + reverse("payments:auto_topup"),
        },
    )


def autotopup_attempts_due() -> list[int]:
    """Attempts in flight for longer than RETRY_AFTER: their charge is run again."""
    return list(
        AutoTopUpAttempt.objects.filter(
            status=AutoTopUpAttempt.Status.PENDING, created_at__lte=timezone.now() - RETRY_AFTER
        ).values_list("pk", flat=True)[:500]
    )


def _send(attempt_id: int) -> None:
    task_send("payments.tasks.run_auto_topup", args=[attempt_id])


# --- saving a payment method ----------------------------------------------------------------
# The setup in progress is kept as "<provider>:<its id>" (a Stripe setup checkout, a PayPal
# setup token) until the user comes back; the method saved last is the one used.


def autotopup_setup_start(*, user, provider: str, success_url: str, cancel_url: str) -> str:
    """Where to send the user to save a payment method with ``provider``: Stripe Checkout in
    setup mode (a customer is made once), PayPal's approval page for a vault setup token,
    or the sandbox's card page. Call outside any transaction."""
    from .guards import assert_no_transaction
    from .providers import get_provider

    assert_no_transaction("autotopup_setup_start")
    config = AutoTopUp.objects.select_related("package").get(user=user)
    if provider not in autotopup_providers():
        raise ValueError("That payment provider cannot save a payment method here.")
    if provider == SANDBOX:
        return reverse("payments:auto_topup_sandbox_card")
    if provider == STRIPE:
        customer_id = user.stripe_customer_id
    else:  # a PayPal customer made by an earlier save keeps its saved accounts together
        customer_id = config.customer_id if config.provider == provider else ""
    customer_id, session_id, url = get_provider(provider).setup_start(
        user=user,
        customer_id=customer_id,
        currency=config.package.currency,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    with transaction.atomic():
        AutoTopUp.objects.filter(pk=config.pk).update(
            setup_session_id=f"{provider}:{session_id}", updated_at=timezone.now()
        )
        if provider == STRIPE:
            get_user_model().objects.filter(pk=user.pk, stripe_customer_id="").update(
                stripe_customer_id=customer_id
            )
    return url


def autotopup_setup_finish(*, user, session_id: str) -> AutoTopUp | None:
    """Keep the payment method the user's setup saved (a Stripe setup checkout, or the PayPal
    setup token they approved) and turn auto top-up on; None when the setup is not this
    user's or not complete."""
    from .providers import get_provider

    config = AutoTopUp.objects.filter(user=user).first()
    if config is None or not session_id or not config.setup_session_id:
        return None
    provider, _, expected = config.setup_session_id.rpartition(":")
    if session_id != expected:
        return None
    saved = get_provider(provider or STRIPE).setup_result(session_id=session_id)
    if saved is None or not saved.payment_method_id:
        return None
    return autotopup_save_method(
        user=user,
        provider=provider or STRIPE,
        customer_id=saved.customer_id,
        payment_method_id=saved.payment_method_id,
        label=saved.label,
    )
