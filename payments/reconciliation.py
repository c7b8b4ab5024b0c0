"""Reconciliation: compare our orders with what each provider says, fix what is safe, flag the rest.

A run has two phases per provider:

1. **Collect** (provider calls only, no writes): Stripe's recent Checkout Sessions, refunds
   and disputes, listed; PayPal's orders (with their captures and refunds) for our recent
   and still-pending PayPal orders, one by one, and PayPal's recent disputes from its
   Disputes API; with both, every dispute we hold open (however old) and every payment
   with a refund we counted while it was pending, read again until they settle; for any
   other provider (the sandbox), the payment status of each recent order. Each dispute or
   refund status maps through the adapter's table; one without a rule is flagged. The
   comparison with our orders yields findings.
   If any call fails (a provider 500, a timeout), that provider's findings are dropped and
   the error is reported: nothing is decided on a partial picture.
2. **Fix** each finding that has a safe fix, one at a time, through the same idempotent
   services the webhooks use: ``fulfil_order`` for a payment we never fulfilled,
   ``order_apply_refund`` for a refund we never applied, the dispute services for a
   dispute we never recorded, ``order_refund_status`` for a refund that failed or was
   canceled after we counted it. A fix that fails leaves its order as it was (each service
   is one transaction) and is reported. Everything else (a paid order the provider does
   not know, amounts that differ, money with no order of ours, a status no rule knows) is
   only flagged for staff.

Each fix holds the order's row lock from before the service call until it commits and
compares the order (and its refunds) before and after: it is reported ``fixed`` only when
its own call changed something, and ``already fixed`` when a webhook or another run got
there first. Two runs at once, or a run racing a webhook, never both claim one fix.

Every run is stored as a ``ReconciliationRun`` with counts, each discrepancy, what was
fixed and the errors, readable in the admin. Running twice is harmless: the fixes are
idempotent and a second run finds nothing left to fix.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable, Iterable, Sequence

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from credits.exceptions import CreditsError

from . import app_settings
from .disputes import CLOSED, order_close_dispute, order_open_dispute
from .exceptions import PaymentsError, ProviderError, ProviderNotConfigured
from .fulfilment import assert_no_transaction, fetch_payment_status, fulfil_order, order_mark_unpaid
from .models import Order, ReconciliationRun, Refund
from .providers import PAYPAL, SANDBOX, STRIPE, available_providers, get_provider
from .providers.base import EventKind, PaymentStatus
from .providers.paypal import REFUND_STATUSES as PAYPAL_REFUND_STATUSES
from .refunds import COUNTED, REVERSED, order_apply_refund, order_refund_status
from .transitions import UNPAID_ENDINGS

logger = logging.getLogger(__name__)

S = Order.Status

SOURCE = "reconciliation"
#: A PENDING PayPal order PayPal no longer knows, this long after it was made, was never approved.
PAYPAL_UNAPPROVED_LIFETIME = timedelta(hours=6)


def default_window() -> timedelta:
    """How far back the periodic run looks (``PAYMENTS_RECONCILE_WINDOW_HOURS``, default 24)."""
    return app_settings.reconcile_window()


def pending_lookback() -> timedelta:
    """PENDING orders this recent are checked even when created before ``since``
    (``PAYMENTS_RECONCILE_PENDING_DAYS``, default 3): a payment may settle days later."""
    return app_settings.reconcile_pending_age()


@dataclass
class Finding:
    """One difference between a provider and us, with the fix when one is safe."""

    kind: str
    provider: str
    detail: str
    order_id: int | None = None
    reference: str = ""  # the provider's object (session, capture, refund, dispute)
    #: Returns (whether this call changed anything, what it did): see ``_locked``.
    fix: Callable[[], tuple[bool, str]] | None = field(default=None, repr=False, compare=False)

    def as_json(self, action: str) -> dict:
        return {"kind": self.kind, "provider": self.provider, "order_id": self.order_id,
                "reference": self.reference, "detail": self.detail, "action": action}


@dataclass
class Collected:
    counts: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)


def reconcile_payments(*, since: datetime, providers: Sequence[str] | None = None,
                       now: datetime | None = None) -> ReconciliationRun:
    """Run one reconciliation of payments since ``since`` and return its stored report.

    Talks to the providers, so it must not be called inside a transaction. ``providers``
    defaults to the providers available here.
    """
    assert_no_transaction("reconcile_payments")
    now = now or timezone.now()
    names = list(providers) if providers is not None else available_providers()
    run = ReconciliationRun.objects.create(since=since, status=ReconciliationRun.Status.RUNNING)
    counts: Counter = Counter()
    discrepancies: list[dict] = []
    fixed: list[dict] = []
    errors: list[dict] = []
    try:
        for name in names:
            try:
                collected = COLLECTORS.get(name, _collect_by_status)(name=name, since=since, now=now)
            except (ProviderError, ProviderNotConfigured) as exc:
                logger.warning("reconciliation %s: %s could not be read: %s", run.pk, name, exc)
                errors.append({"provider": name, "stage": "collect", "error": str(exc),
                               "retryable": bool(getattr(exc, "retryable", False))})
                counts[f"{name.lower()}.failed"] += 1
                continue
            for key, value in collected.counts.items():
                counts[f"{name.lower()}.{key}"] += value
            for finding in collected.findings:
                action = "flagged"
                if finding.fix is not None:
                    try:
                        result = finding.fix()
                    except (PaymentsError, CreditsError) as exc:
                        action = "fix failed"
                        errors.append({"provider": name, "stage": "fix", "order_id": finding.order_id,
                                       "kind": finding.kind, "error": f"{type(exc).__name__}: {exc}",
                                       "retryable": bool(getattr(exc, "retryable", False))})
                    else:
                        changed, text = result
                        if changed:
                            action = "fixed"
                            fixed.append({"kind": finding.kind, "provider": name, "order_id": finding.order_id,
                                          "reference": finding.reference, "result": text})
                        else:
                            action = "already fixed"
                            counts["already_fixed"] += 1
                discrepancies.append(finding.as_json(action))
    except Exception as exc:  # noqa: BLE001 - the run must end with a report, whatever happened
        logger.exception("reconciliation %s crashed", run.pk)
        errors.append({"provider": "", "stage": "run", "error": f"{type(exc).__name__}: {exc}", "retryable": True})
    counts.update({"discrepancies": len(discrepancies), "fixed": len(fixed),
                   "flagged": sum(1 for d in discrepancies if d["action"] == "flagged"), "errors": len(errors)})
    run.counts = dict(sorted(counts.items()))
    run.discrepancies = discrepancies
    run.fixed = fixed
    run.errors = errors
    run.finished_at = timezone.now()
    if errors:
        run.status = ReconciliationRun.Status.FAILED
    elif discrepancies:
        run.status = ReconciliationRun.Status.DISCREPANCIES
    else:
        run.status = ReconciliationRun.Status.CLEAN
    run.save(update_fields=["counts", "discrepancies", "fixed", "errors", "finished_at", "status"])
    logger.info("reconciliation %s %s: %s", run.pk, run.status, run.counts)
    return run


# --- fixes: the same services the webhooks call ------------------------------------------------


def _state(order_id: int) -> tuple:
    """What a fix can change about an order, read under its row lock."""
    order = (Order.objects.select_for_update(of=("self",))
             .values_list("status", "amount_refunded", "credits_clawed_back", "credits_unrecovered", "dispute_id",
                          "dispute_status", "completed_at", "provider_payment_id").get(pk=order_id))
    refunds = tuple(Refund.objects.filter(order_id=order_id).order_by("pk").values_list("provider_refund_id",
                                                                                        "status"))
    return order, refunds


def _locked(order_id: int, apply: Callable[[], Order], describe: Callable[[Order], str]) -> tuple[bool, str]:
    """Run one fix's service call with the order's row lock held from before the call until
    commit, and say whether this call changed the order (or its refunds). The service's own
    lock joins this one, so nothing else can change the order in between: a run reports
    only what its own call did."""
    with transaction.atomic():
        before = _state(order_id)
        order = apply()
        changed = _state(order_id) != before
    return changed, describe(order) if changed else "already fixed by someone else"


def _fix_fulfil(order_id: int, status: PaymentStatus) -> Callable[[], tuple[bool, str]]:
    def fix():
        return _locked(order_id, lambda: fulfil_order(order_id=order_id, status=status, source=SOURCE),
                       lambda order: f"fulfilled: {order.credits} credits granted")

    return fix


def _fix_refund(order_id: int, total: Decimal, currency: str) -> Callable[[], tuple[bool, str]]:
    def fix():
        return _locked(order_id, lambda: order_apply_refund(order_id=order_id, amount_refunded=total, source=SOURCE,
                                                            currency=currency),
                       lambda order: f"refund applied: {order.amount_refunded} {order.currency} refunded in all, "
                                     f"order {order.status}")

    return fix


def _fix_refund_status(order_id: int, refund_id: str, status: str, amount: Decimal | None,
                       currency: str) -> Callable[[], tuple[bool, str]]:
    def fix():
        return _locked(order_id, lambda: order_refund_status(order_id=order_id, provider_refund_id=refund_id,
                                                             status=status, amount=amount, currency=currency,
                                                             source=SOURCE),
                       lambda order: f"refund {refund_id} recorded as {status}: {order.amount_refunded} "
                                     f"{order.currency} refunded in all, order {order.status}")

    return fix


def _fix_mark_unpaid(order_id: int, to: str) -> Callable[[], tuple[bool, str]]:
    def fix():
        return _locked(order_id, lambda: order_mark_unpaid(order_id=order_id, to=to, source=SOURCE),
                       lambda order: f"marked {order.status}")

    return fix


def _fix_dispute(order_id: int, dispute_id: str, outcome: str) -> Callable[[], tuple[bool, str]]:
    def fix():
        if outcome:
            return _locked(order_id, lambda: order_close_dispute(order_id=order_id, dispute_id=dispute_id,
                                                                 outcome=outcome, source=SOURCE),
                           lambda order: f"dispute {dispute_id} recorded as {outcome}, order {order.status}")
        return _locked(order_id, lambda: order_open_dispute(order_id=order_id, dispute_id=dispute_id, source=SOURCE),
                       lambda order: f"dispute {dispute_id} recorded as open, order {order.status}")

    return fix


def _fix_capture(order_id: int) -> Callable[[], tuple[bool, str]]:
    """An approved PayPal order nobody captured: capture it (once per order) and fulfil."""

    def fix():
        order = Order.objects.get(pk=order_id)
        status = fetch_payment_status(order=order)  # captures an approved PayPal order (outside any transaction)
        if status.paid:
            return _locked(order_id, lambda: fulfil_order(order_id=order_id, status=status, source=SOURCE),
                           lambda order: f"captured and fulfilled: {order.credits} credits granted")
        return True, f"captured; the payment is {status.state}"

    return fix


# --- collectors: provider reads and comparison, no writes ---------------------------------------


def _recent_orders(name: str, *, since: datetime, now: datetime):
    return (Order.objects.filter(provider=name)
            .filter(Q(created_at__gte=since) | Q(status=S.PENDING, created_at__gte=now - pending_lookback()))
            .order_by("pk"))


def _amount_problem(order: Order, amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return "the provider did not say how much was paid"
    if Decimal(amount) != order.amount or (currency or "").upper() != order.currency.upper():
        return f"the provider has {amount} {(currency or '?').upper()}, the order is for {order.amount} {order.currency}"
    return ""


def _check_payment(collected: Collected, *, name: str, order: Order, status: PaymentStatus, reference: str,
                   fix_unpaid: bool = True) -> None:
    """Compare one order with what its provider says about its payment."""
    if status.paid:
        problem = _amount_problem(order, status.amount, status.currency)
        if problem:
            collected.add(Finding("amount_mismatch", name, problem, order.pk, reference))
        elif not order.is_fulfilled:
            collected.add(Finding("payment_not_fulfilled", name,
                                  f"paid {status.amount} {status.currency.upper()} but the order is "
                                  f"{order.status}", order.pk, reference, fix=_fix_fulfil(order.pk, status)))
        return
    if order.is_fulfilled:
        if status.state == "unknown":
            collected.add(Finding("paid_order_unknown_to_provider", name,
                                  f"the order is {order.status} but the provider does not know the payment",
                                  order.pk, reference))
        else:
            collected.add(Finding("paid_order_not_paid_at_provider", name,
                                  f"the order is {order.status} but the provider says {status.state}",
                                  order.pk, reference))
        return
    if fix_unpaid and status.state == "failed" and order.status == S.PENDING:
        collected.add(Finding("payment_failed_not_recorded", name, "the provider says the payment failed",
                              order.pk, reference, fix=_fix_mark_unpaid(order.pk, S.FAILED)))


def _check_refunds(collected: Collected, *, name: str, order: Order, total: Decimal, currency: str,
                   reference: str) -> None:
    if total > order.amount_refunded:
        collected.add(Finding("refund_not_applied", name,
                              f"the provider refunded {total} {currency.upper()} in all, we recorded "
                              f"{order.amount_refunded}", order.pk, reference,
                              fix=_fix_refund(order.pk, total, currency)))
    elif total < order.amount_refunded:
        collected.add(Finding("refund_unknown_to_provider", name,
                              f"we recorded {order.amount_refunded} refunded, the provider {total}",
                              order.pk, reference))


def _collect_paypal(*, name: str, since: datetime, now: datetime) -> Collected:
    provider = get_provider(name)
    collected = Collected()
    snapshots = []
    for order in _recent_orders(name, since=since, now=now).exclude(provider_order_id__isnull=True):
        snapshots.append((order, provider.fetch_order(provider_order_id=order.provider_order_id)))
    collected.counts["orders"] = len(snapshots)
    for order, snapshot in snapshots:
        if snapshot is None:
            if order.is_fulfilled:
                collected.add(Finding("paid_order_unknown_to_provider", name,
                                      f"the order is {order.status} but PayPal does not know order "
                                      f"{order.provider_order_id}", order.pk, order.provider_order_id))
            elif order.status == S.PENDING and order.created_at < now - PAYPAL_UNAPPROVED_LIFETIME:
                # PayPal drops an order nobody approved after a few hours: this checkout is over.
                collected.add(Finding("checkout_expired_not_recorded", name,
                                      "PayPal no longer has this unapproved order", order.pk,
                                      order.provider_order_id, fix=_fix_mark_unpaid(order.pk, S.EXPIRED)))
            continue
        if snapshot.custom_id and snapshot.custom_id != str(order.pk):
            collected.add(Finding("order_reference_mismatch", name,
                                  f"PayPal order {snapshot.id} carries custom_id {snapshot.custom_id}",
                                  order.pk, snapshot.id))
            continue
        collected.counts["captures"] += len(snapshot.captures)
        collected.counts["refunds"] += len(snapshot.refunds)
        if snapshot.approved and not snapshot.captures:
            if order.status in (S.PENDING, *UNPAID_ENDINGS) and not order.is_fulfilled:
                collected.add(Finding("approved_not_captured", name,
                                      "the buyer approved the payment but nobody captured it",
                                      order.pk, snapshot.id, fix=_fix_capture(order.pk)))
            continue
        status = snapshot.payment_status()
        _check_payment(collected, name=name, order=order, status=status,
                       reference=status.provider_payment_id or snapshot.id)
        if snapshot.refunds:
            reversing = _check_refund_statuses(collected, name=name, order=order, refunds=[
                (r.id, PAYPAL_REFUND_STATUSES.get(r.status.upper(), r.status), r.amount, r.currency)
                for r in snapshot.refunds])
            if not reversing:
                _check_refunds(collected, name=name, order=order, total=snapshot.amount_refunded,
                               currency=snapshot.currency or order.currency, reference=snapshot.id)
    _collect_paypal_disputes(collected, name=name, provider=provider, since=since)
    return collected


def _collect_paypal_disputes(collected: Collected, *, name: str, provider, since: datetime) -> None:
    """PayPal's disputes created in the window, and those we hold open, read one by one
    from the Disputes API (a listing carries no disputed transactions)."""
    from .providers.paypal import dispute_payment, dispute_reading as paypal_dispute_reading
    from .providers.paypal_disputes import get_dispute, list_disputes

    ids = [str(d.get("dispute_id") or "") for d in list_disputes(since=since, conf=provider.conf)]
    ids = list(dict.fromkeys([i for i in ids if i] + _open_disputes(name)))
    disputes = [(dispute_id, get_dispute(dispute_id=dispute_id, conf=provider.conf)) for dispute_id in ids]
    collected.counts["disputes"] = len(disputes)
    for dispute_id, dispute in disputes:
        if dispute is None:
            order = Order.objects.filter(provider=name, dispute_id=dispute_id).first()
            collected.add(Finding("dispute_unknown_to_provider", name, "PayPal does not know this dispute",
                                  order.pk if order else None, dispute_id))
            continue
        capture_id, ref = dispute_payment(dispute)
        order = Order.objects.filter(provider=name, provider_payment_id=capture_id).first() if capture_id else None
        if order is None and ref.isdigit():
            order = Order.objects.filter(provider=name, pk=int(ref)).first()
        if order is None:
            collected.add(Finding("dispute_for_unknown_payment", name,
                                  f"dispute on capture {capture_id or '(none)'} matches no order of ours", None,
                                  dispute_id))
            continue
        kind, outcome, stage = paypal_dispute_reading(dispute)
        _check_dispute(collected, name=name, order=order, dispute_id=dispute_id, kind=kind, outcome=outcome,
                       stage=stage)


def _collect_by_status(*, name: str, since: datetime, now: datetime) -> Collected:
    """Any provider without listings (the sandbox): ask about each recent order."""
    provider = get_provider(name)
    collected = Collected()
    statuses = [(order, provider.fetch_payment_status(order=order))
                for order in _recent_orders(name, since=since, now=now).exclude(provider_order_id__isnull=True)]
    collected.counts["orders"] = len(statuses)
    for order, status in statuses:
        _check_payment(collected, name=name, order=order, status=status,
                       reference=status.provider_payment_id or order.provider_order_id or "")
    return collected


def _collect_stripe(*, name: str, since: datetime, now: datetime) -> Collected:
    from .providers.stripe_provider import dispute_reading as stripe_dispute_reading, from_minor, session_status
    from .reconciliation_stripe import StripeListing

    listing = StripeListing.fetch(since=since, orders=_recent_orders(name, since=since, now=now),
                                  open_disputes=_open_disputes(name), refunds_in_flight=_refunds_in_flight(name))
    collected = Collected()
    collected.counts.update(sessions=len(listing.sessions), refunds=len(listing.refunds),
                            disputes=len(listing.disputes))
    by_session = {o.provider_order_id: o for o in Order.objects.filter(
        provider=name, provider_order_id__in=[s["id"] for s in listing.all_sessions()])}
    checked: set[int] = set()
    for session in listing.all_sessions():
        order = by_session.get(session["id"]) or _order_by_ref(name, session)
        status = session_status(session)
        paid = status.paid
        if order is None:
            if paid:
                collected.add(Finding("payment_without_order", name,
                                      f"paid session for reference {session.get('client_reference_id')!r} "
                                      f"matches no order of ours", None, session["id"]))
            continue
        checked.add(order.pk)
        _check_payment(collected, name=name, order=order, status=status, reference=session["id"], fix_unpaid=False)
        if status.state == "expired" and order.status == S.PENDING:
            collected.add(Finding("checkout_expired_not_recorded", name, "the checkout session expired",
                                  order.pk, session["id"], fix=_fix_mark_unpaid(order.pk, S.EXPIRED)))
    for order in listing.orders:
        if order.pk in checked or not order.is_fulfilled:
            continue
        if order.provider_order_id not in listing.known_sessions:
            collected.add(Finding("paid_order_unknown_to_provider", name,
                                  f"the order is {order.status} but Stripe has no checkout session "
                                  f"{order.provider_order_id or '(none recorded)'}", order.pk,
                                  order.provider_order_id or ""))

    by_intent = _orders_by_intent(name, listing)
    reversing: set[int] = set()
    for intent, refunds in sorted(listing.refunds_by_intent.items()):
        order = by_intent.get(intent)
        if order is not None and _check_refund_statuses(collected, name=name, order=order, refunds=[
                (r["id"], r.get("status") or "", from_minor(r.get("amount"), (r.get("currency") or "").upper()),
                 (r.get("currency") or "").upper()) for r in refunds]):
            reversing.add(order.pk)
    for intent, total in sorted(listing.refunded_by_intent.items()):
        order = by_intent.get(intent)
        if order is None:
            collected.add(Finding("refund_for_unknown_payment", name,
                                  f"refunds of {intent} match no order of ours", None, intent))
            continue
        if order.pk not in reversing:  # the reversal brings our total down to Stripe's
            _check_refunds(collected, name=name, order=order, total=total, currency=order.currency, reference=intent)
    for intent, order in sorted(by_intent.items()):
        # Every refund of the payment failed or was canceled: Stripe's counted total is zero.
        if (intent in listing.refunds_by_intent and intent not in listing.refunded_by_intent
                and order.pk not in reversing and order.amount_refunded > 0):
            _check_refunds(collected, name=name, order=order, total=Decimal("0"), currency=order.currency,
                           reference=intent)
    for dispute in listing.all_disputes():
        intent = dispute.get("payment_intent") or ""
        order = by_intent.get(intent)
        if order is None:
            collected.add(Finding("dispute_for_unknown_payment", name,
                                  f"dispute on {intent or dispute.get('charge')} matches no order of ours",
                                  None, dispute["id"]))
            continue
        kind, outcome = stripe_dispute_reading(str(dispute.get("status") or ""))
        _check_dispute(collected, name=name, order=order, dispute_id=dispute["id"], kind=kind, outcome=outcome,
                       stage=str(dispute.get("status") or ""))
    return collected


def _check_dispute(collected: Collected, *, name: str, order: Order, dispute_id: str, kind: EventKind, outcome: str,
                   stage: str) -> None:
    """Compare one dispute the provider reports with the order's record of it."""
    recorded = order.dispute_id == dispute_id
    if kind == EventKind.DISPUTE_OPENED:
        if not recorded:
            collected.add(Finding("dispute_not_recorded", name, f"open dispute ({stage})", order.pk, dispute_id,
                                  fix=_fix_dispute(order.pk, dispute_id, "")))
        return
    if outcome not in CLOSED:
        collected.add(Finding("dispute_status_unknown", name,
                              f"the dispute is {stage!r}: no rule says whether it is open, won or lost",
                              order.pk, dispute_id))
        return
    if recorded and order.dispute_status == outcome:
        return
    if recorded and order.dispute_status in CLOSED:
        collected.add(Finding("dispute_outcome_changed", name,
                              f"we recorded the dispute {order.dispute_status}, the provider now says {outcome} "
                              f"({stage}): staff decide", order.pk, dispute_id))
        return
    collected.add(Finding("dispute_outcome_not_recorded", name, f"dispute closed: {outcome} ({stage})", order.pk,
                          dispute_id, fix=_fix_dispute(order.pk, dispute_id, outcome)))


def _check_refund_statuses(collected: Collected, *, name: str, order: Order,
                           refunds: list[tuple[str, str, Decimal | None, str]]) -> bool:
    """Each refund of the order's payment: one that failed or was canceled after we counted
    it is undone; one in a status no rule knows is flagged. True when one is to be undone."""
    ours = {r.provider_refund_id: r for r in Refund.objects.filter(order=order)}
    reversing = False
    for refund_id, status, amount, currency in refunds:
        if status not in Refund.Status.values:
            collected.add(Finding("refund_status_unknown", name,
                                  f"refund {refund_id} is {status!r}: no rule says whether it counts", order.pk,
                                  refund_id))
            continue
        row = ours.get(refund_id)
        if status in REVERSED and (row is None or row.status in COUNTED):
            if row is None and order.amount_refunded <= 0:
                continue  # never applied here: nothing to undo
            reversing = True
            collected.add(Finding("refund_reversal_not_applied", name,
                                  f"refund {refund_id} of {amount} {currency} is {status} at the provider",
                                  order.pk, refund_id, fix=_fix_refund_status(order.pk, refund_id, status, amount,
                                                                              currency)))
        elif row is not None and row.status != status and row.status in COUNTED and status in COUNTED:
            collected.add(Finding("refund_status_not_recorded", name,
                                  f"refund {refund_id} is {status}, we recorded {row.status}", order.pk, refund_id,
                                  fix=_fix_refund_status(order.pk, refund_id, status, amount, currency)))
    return reversing


def _order_by_ref(name: str, session: dict) -> Order | None:
    ref = str(session.get("client_reference_id") or (session.get("metadata") or {}).get("order_id") or "")
    if not ref.isdigit():
        return None
    order = Order.objects.filter(provider=name, pk=int(ref)).first()
    if order is not None and order.provider_order_id and order.provider_order_id != session["id"]:
        return None  # another session of the same order: ours is the one we stored
    return order


def _orders_by_intent(name: str, listing) -> dict[str, Order]:
    intents = (set(listing.refunded_by_intent) | set(listing.refunds_by_intent)
               | {d.get("payment_intent") for d in listing.all_disputes()})
    intents.discard(None)
    intents.discard("")
    found = {o.provider_payment_id: o for o in Order.objects.filter(provider=name,
                                                                    provider_payment_id__in=sorted(intents))}
    for session in listing.all_sessions():  # an order fulfilled before its payment id was stored
        intent = session.get("payment_intent")
        if intent in intents and intent not in found:
            order = Order.objects.filter(provider=name, provider_order_id=session["id"]).first()
            if order is not None:
                found[intent] = order
    return found


def _open_disputes(name: str) -> list[str]:
    """Disputes we hold open, whenever they were opened: each is read again until it closes."""
    return list(Order.objects.filter(provider=name, dispute_status=Order.DisputeStatus.OPEN).exclude(dispute_id="")
                .order_by("pk").values_list("dispute_id", flat=True)[:1000])


def _refunds_in_flight(name: str) -> list[str]:
    """Payments with a refund we counted while the provider had not completed it."""
    return list(Refund.objects.filter(order__provider=name, status__in=(Refund.Status.PENDING,
                                                                       Refund.Status.REQUIRES_ACTION))
                .exclude(order__provider_payment_id="").order_by("order__provider_payment_id")
                .values_list("order__provider_payment_id", flat=True).distinct()[:1000])


COLLECTORS: dict[str, Callable[..., Collected]] = {
    STRIPE: _collect_stripe,
    PAYPAL: _collect_paypal,
    SANDBOX: _collect_by_status,
}


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``2026-11-01``, ``2026-11-01T12:00``, or a span back from now: ``90m``, ``24h``, ``7d``."""
    from django.utils.dateparse import parse_date, parse_datetime

    now = now or timezone.now()
    text = (value or "").strip().lower()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if len(text) >= 2 and text[-1] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    moment = parse_datetime(value.strip()) if value else None
    if moment is None:
        day = parse_date(value.strip()) if value else None
        if day is None:
            raise ValueError(f"{value!r} is not a date (2026-11-01), a time (2026-11-01T12:00) or a span (24h, 7d).")
        moment = datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    if moment > now:
        raise ValueError(f"{value!r} is in the future.")
    return moment


def run_summary(run: ReconciliationRun) -> Iterable[str]:
    """Lines an operator reads after a run."""
    yield f"Reconciliation #{run.pk}: {run.get_status_display()} (since {run.since:%Y-%m-%d %H:%M %Z})"
    for key, value in run.counts.items():
        yield f"  {key}: {value}"
    for d in run.discrepancies:
        order = f"order #{d['order_id']}" if d.get("order_id") else "no order"
        yield f"  [{d['action']}] {d['provider']} {d['kind']} {order} {d['reference']}: {d['detail']}"
    for e in run.errors:
        where = f" order #{e['order_id']}" if e.get("order_id") else ""
        yield f"  [error] {e['provider']} {e['stage']}{where}: {e['error']}"
