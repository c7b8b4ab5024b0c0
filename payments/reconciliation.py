"""Reconciliation: compare our orders with what each provider says, fix what is safe, flag the rest.

A run has two phases per provider:

1. **Collect** (provider calls only, no writes): the same three reads from each provider's
   adapter (``payments/providers/base.py``), in provider-neutral records: its checkouts
   created in the window and those of our recent and still-pending orders
   (``recent_checkouts``), every refund of each payment refunded in the window or with a
   refund we counted while it was pending (``recent_refunds``), and its disputes opened in
   the window and every one we hold open, however old (``disputes``). How each provider
   lists them (Stripe's listings, PayPal's orders one by one and its Disputes API, the
   sandbox's own records) and what its statuses mean is the adapter's business; a status
   no rule maps is flagged. The comparison with our orders yields findings.
   If any call fails (a provider 500, a timeout), that provider's findings are dropped and
   the error is reported: nothing is decided on a partial picture.
2. **Fix** each finding that has a safe fix, one at a time, through the same idempotent
   services the webhooks use: ``fulfil_order`` for a payment we never fulfilled,
   ``order_sync_refunds`` with the payment's refunds as read for a refund we never applied
   or never recorded (each becomes a ``Refund`` row, so a later failure of one of several
   refunds undoes exactly that one), the dispute services for a dispute we never recorded,
   ``order_refund_status`` for a refund that failed or was canceled after we counted it. A
   fix that fails leaves its order as it was (each service is one transaction) and is
   reported. Everything else (a paid order the provider does not know, amounts that differ,
   money with no order of ours, a status no rule knows) is only flagged for staff.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from credits.exceptions import CreditsError

from . import app_settings
from .disputes import CLOSED, order_close_dispute, order_open_dispute
from .exceptions import PaymentsError, ProviderError, ProviderNotConfigured
from .fulfilment import fetch_payment_status, fulfil_order, order_mark_unpaid
from .guards import assert_no_transaction
from .models import Order, ReconciliationRun, Refund
from .providers import available_providers, get_provider
from .providers.base import (
    EventKind,
    PaymentStatus,
    ProviderCheckout,
    ProviderDispute,
    ProviderRefund,
    RefundState,
    refund_state_of,
)
from .refunds import COUNTED, REVERSED, order_refund_status, order_sync_refunds
from .transitions import UNPAID_ENDINGS

logger = logging.getLogger(__name__)

S = Order.Status

SOURCE = "reconciliation"


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
        return {
            "kind": self.kind,
            "provider": self.provider,
            "order_id": self.order_id,
            "reference": self.reference,
            "detail": self.detail,
            "action": action,
        }


@dataclass
class Collected:
    counts: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)


#: More comparisons per provider, each ``collect(name=...) -> Collected`` (the memberships'
#: one registers itself when the app starts: ``subscription_reconciliation``).
MORE_COLLECTORS: list[Callable[..., "Collected"]] = []


def reconcile_payments(
    *, since: datetime, providers: Sequence[str] | None = None, now: datetime | None = None
) -> ReconciliationRun:
    """Run one reconciliation of payments since ``since`` and return its stored report.

    Talks to the providers, so it must not be called inside a transaction. ``providers``
    defaults to the providers available here.
    """
    assert_no_transaction("reconcile_payments")
    now = now or timezone.now()
    names = list(providers) if providers is not None else available_providers()
    run = ReconciliationRun.objects.create(since=since, status=ReconciliationRun.Status.RUNNING)
    report = Report()
    try:
        for name in names:
            try:
                collected = _collect(name=name, since=since, now=now)
            except (ProviderError, ProviderNotConfigured) as exc:
                logger.warning("reconciliation %s: %s could not be read: %s", run.pk, name, exc)
                report.unreadable(name, exc)
                continue
            report.collected(name, collected)
            for collect in MORE_COLLECTORS:
                try:
                    report.collected(name, collect(name=name))
                except (ProviderError, ProviderNotConfigured) as exc:
                    logger.warning("reconciliation %s: %s unreadable: %s", run.pk, name, exc)
                    report.unreadable(name, exc)
    except Exception as exc:  # noqa: BLE001 - the run must end with a report, whatever happened
        logger.exception("reconciliation %s crashed", run.pk)
        report.errors.append(
            {
                "provider": "",
                "stage": "run",
                "error": f"{type(exc).__name__}: {exc}",
                "retryable": True,
            }
        )
    report.store(run)
    logger.info("reconciliation %s %s: %s", run.pk, run.status, run.counts)
    return run


@dataclass
class Report:
    """What one run found, fixed and could not do, as stored on its ``ReconciliationRun``."""

    counts: Counter = field(default_factory=Counter)
    discrepancies: list[dict] = field(default_factory=list)
    fixed: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def unreadable(self, name: str, exc: Exception) -> None:
        self.errors.append(
            {
                "provider": name,
                "stage": "collect",
                "error": str(exc),
                "retryable": bool(getattr(exc, "retryable", False)),
            }
        )
        self.counts[f"{name.lower()}.failed"] += 1

    def collected(self, name: str, collected: Collected) -> None:
        """Count what was read from ``name``, and fix each finding that has a fix, in turn."""
        for key, value in collected.counts.items():
            self.counts[f"{name.lower()}.{key}"] += value
        for finding in collected.findings:
            action = self._fix(name, finding) if finding.fix is not None else "flagged"
            self.discrepancies.append(finding.as_json(action))

    def _fix(self, name: str, finding: Finding) -> str:
        try:
            changed, text = finding.fix()
        except (PaymentsError, CreditsError) as exc:
            self.errors.append(
                {
                    "provider": name,
                    "stage": "fix",
                    "order_id": finding.order_id,
                    "kind": finding.kind,
                    "error": f"{type(exc).__name__}: {exc}",
                    "retryable": bool(getattr(exc, "retryable", False)),
                }
            )
            return "fix failed"
        if not changed:
            self.counts["already_fixed"] += 1
            return "already fixed"
        self.fixed.append(
            {
                "kind": finding.kind,
                "provider": name,
                "order_id": finding.order_id,
                "reference": finding.reference,
                "result": text,
            }
        )
        return "fixed"

    def store(self, run: ReconciliationRun) -> None:
        self.counts.update(
            {
                "discrepancies": len(self.discrepancies),
                "fixed": len(self.fixed),
                "flagged": sum(1 for d in self.discrepancies if d["action"] == "flagged"),
                "errors": len(self.errors),
            }
        )
        run.counts = dict(sorted(self.counts.items()))
        run.discrepancies = self.discrepancies
        run.fixed = self.fixed
        run.errors = self.errors
        run.finished_at = timezone.now()
        if self.errors:
            run.status = ReconciliationRun.Status.FAILED
        elif self.discrepancies:
            run.status = ReconciliationRun.Status.DISCREPANCIES
        else:
            run.status = ReconciliationRun.Status.CLEAN
        run.save(
            update_fields=["counts", "discrepancies", "fixed", "errors", "finished_at", "status"]
        )


# --- fixes: the same services the webhooks call ------------------------------------------------


def _state(order_id: int) -> tuple:
    """What a fix can change about an order, read under its row lock."""
    order = (
        Order.objects.select_for_update(of=("self",))
        .values_list(
            "status",
            "amount_refunded",
            "credits_clawed_back",
            "credits_unrecovered",
            "dispute_id",
            "dispute_status",
            "completed_at",
            "provider_payment_id",
        )
        .get(pk=order_id)
    )
    refunds = tuple(
        Refund.objects.filter(order_id=order_id)
        .order_by("pk")
        .values_list("provider_refund_id", "status")
    )
    return order, refunds


def _locked(
    order_id: int, apply: Callable[[], Order], describe: Callable[[Order], str]
) -> tuple[bool, str]:
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
        return _locked(
            order_id,
            lambda: fulfil_order(order_id=order_id, status=status, source=SOURCE),
            lambda order: f"fulfilled: {order.credits} credits granted",
        )

    return fix


def _fix_refunds(order_id: int, state: RefundState) -> Callable[[], tuple[bool, str]]:
    """Apply the payment's refunds as read, the way a refund webhook does: each recorded as a
    ``Refund`` row, then the order brought up to what still counts."""

    def fix():
        return _locked(
            order_id,
            lambda: order_sync_refunds(order_id=order_id, state=state, source=SOURCE),
            lambda order: (
                f"refunds recorded: {order.amount_refunded} {order.currency} refunded in all, "
                f"order {order.status}"
            ),
        )

    return fix


def _fix_refund_status(
    order_id: int, refund_id: str, status: str, amount: Decimal | None, currency: str
) -> Callable[[], tuple[bool, str]]:
    def fix():
        return _locked(
            order_id,
            lambda: order_refund_status(
                order_id=order_id,
                provider_refund_id=refund_id,
                status=status,
                amount=amount,
                currency=currency,
                source=SOURCE,
            ),
            lambda order: (
                f"refund {refund_id} recorded as {status}: {order.amount_refunded} "
                f"{order.currency} refunded in all, order {order.status}"
            ),
        )

    return fix


def _fix_mark_unpaid(order_id: int, to: str) -> Callable[[], tuple[bool, str]]:
    def fix():
        return _locked(
            order_id,
            lambda: order_mark_unpaid(order_id=order_id, to=to, source=SOURCE),
            lambda order: f"marked {order.status}",
        )

    return fix


def _fix_dispute(order_id: int, dispute_id: str, outcome: str) -> Callable[[], tuple[bool, str]]:
    def fix():
        if outcome:
            return _locked(
                order_id,
                lambda: order_close_dispute(
                    order_id=order_id, dispute_id=dispute_id, outcome=outcome, source=SOURCE
                ),
                lambda order: f"dispute {dispute_id} recorded as {outcome}, order {order.status}",
            )
        return _locked(
            order_id,
            lambda: order_open_dispute(order_id=order_id, dispute_id=dispute_id, source=SOURCE),
            lambda order: f"dispute {dispute_id} recorded as open, order {order.status}",
        )

    return fix


def _fix_capture(order_id: int) -> Callable[[], tuple[bool, str]]:
    """An approved PayPal order nobody captured: capture it (once per order) and fulfil."""

    def fix():
        order = Order.objects.get(pk=order_id)
        status = fetch_payment_status(
            order=order
        )  # captures an approved PayPal order (outside any transaction)
        if status.paid:
            return _locked(
                order_id,
                lambda: fulfil_order(order_id=order_id, status=status, source=SOURCE),
                lambda order: f"captured and fulfilled: {order.credits} credits granted",
            )
        return True, f"captured; the payment is {status.state}"

    return fix


# --- collectors: provider reads and comparison, no writes ---------------------------------------


def _recent_orders(name: str, *, since: datetime, now: datetime):
    return (
        Order.objects.filter(provider=name)
        .filter(
            Q(created_at__gte=since) | Q(status=S.PENDING, created_at__gte=now - pending_lookback())
        )
        .order_by("pk")
    )


def _amount_problem(order: Order, amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return "the provider did not say how much was paid"
    if Decimal(amount) != order.amount or (currency or "").upper() != order.currency.upper():
        return f"the provider has {amount} {(currency or '?').upper()}, the order is for {order.amount} {order.currency}"
    return ""


def _check_payment(
    collected: Collected, *, name: str, order: Order, status: PaymentStatus, reference: str
) -> None:
    """Compare one order with what its provider says about its payment."""
    if status.paid:
        problem = _amount_problem(order, status.amount, status.currency)
        if problem:
            collected.add(Finding("amount_mismatch", name, problem, order.pk, reference))
        elif not order.is_fulfilled:
            collected.add(
                Finding(
                    "payment_not_fulfilled",
                    name,
                    f"paid {status.amount} {status.currency.upper()} but the order is "
                    f"{order.status}",
                    order.pk,
                    reference,
                    fix=_fix_fulfil(order.pk, status),
                )
            )
        return
    if order.is_fulfilled:
        if status.state == "unknown":
            collected.add(
                Finding(
                    "paid_order_unknown_to_provider",
                    name,
                    f"the order is {order.status} but the provider does not know the payment",
                    order.pk,
                    reference,
                )
            )
        else:
            collected.add(
                Finding(
                    "paid_order_not_paid_at_provider",
                    name,
                    f"the order is {order.status} but the provider says {status.state}",
                    order.pk,
                    reference,
                )
            )
        return
    if status.state == "failed" and order.status == S.PENDING:
        collected.add(
            Finding(
                "payment_failed_not_recorded",
                name,
                "the provider says the payment failed",
                order.pk,
                reference,
                fix=_fix_mark_unpaid(order.pk, S.FAILED),
            )
        )
    elif status.state == "expired" and order.status == S.PENDING:
        collected.add(
            Finding(
                "checkout_expired_not_recorded",
                name,
                "the checkout expired",
                order.pk,
                reference,
                fix=_fix_mark_unpaid(order.pk, S.EXPIRED),
            )
        )


def _check_refunds(
    collected: Collected,
    *,
    name: str,
    order: Order,
    payment_id: str,
    refunds: list[ProviderRefund],
) -> None:
    """The payment's refunds against the order: a total we never applied, or refunds we
    counted without recording them (each needs its row, or a later failure of one of several
    is undone by a guess). Both are fixed by applying the refunds as read."""
    # (a refund in a status no rule knows is flagged on its own and left out here)
    state = refund_state_of(payment_id, [r for r in refunds if r.status in Refund.Status.values])
    total = state.total
    recorded = set(Refund.objects.filter(order=order).values_list("provider_refund_id", flat=True))
    unrecorded = [r.id for r in state.refunds if r.status in COUNTED and r.id not in recorded]
    currency = state.currency or order.currency
    if total > order.amount_refunded:
        collected.add(
            Finding(
                "refund_not_applied",
                name,
                f"the provider refunded {total} {currency.upper()} in all, we recorded "
                f"{order.amount_refunded}",
                order.pk,
                payment_id,
                fix=_fix_refunds(order.pk, state),
            )
        )
    elif total == order.amount_refunded and unrecorded:
        collected.add(
            Finding(
                "refund_not_recorded",
                name,
                f"refunds {', '.join(unrecorded)} are counted in the {total} "
                f"{currency.upper()} we recorded, but not recorded one by one",
                order.pk,
                payment_id,
                fix=_fix_refunds(order.pk, state),
            )
        )
    elif total < order.amount_refunded:
        collected.add(
            Finding(
                "refund_unknown_to_provider",
                name,
                f"we recorded {order.amount_refunded} refunded, the provider {total}",
                order.pk,
                payment_id,
            )
        )


def _collect(*, name: str, since: datetime, now: datetime) -> Collected:
    """Read everything ``name``'s adapter has to say, then compare it with our orders. The
    reads all come first, so a failed one (a ProviderError) leaves no findings at all."""
    provider = get_provider(name)
    orders = list(_recent_orders(name, since=since, now=now))
    checkouts = provider.recent_checkouts(since=since, orders=orders)
    refunds = provider.recent_refunds(since=since, payment_ids=_refunds_in_flight(name))
    disputes = provider.disputes(since=since, open_ids=_open_disputes(name))
    collected = Collected()
    for listing in (checkouts, refunds, disputes):
        collected.counts.update(listing.counts)
    compared = _compare_checkouts(
        collected, name=name, provider=provider, orders=orders, checkouts=checkouts.items, now=now
    )
    all_refunds = [
        *refunds.items,
        *(refund for checkout in compared for refund in checkout.refunds),
    ]
    by_payment = _orders_by_payment(
        name,
        checkouts=checkouts.items,
        payment_ids={r.payment_id for r in all_refunds} | {d.payment_id for d in disputes.items},
    )
    _compare_refunds(collected, name=name, refunds=all_refunds, by_payment=by_payment)
    _compare_disputes(collected, name=name, disputes=disputes.items, by_payment=by_payment)
    return collected


def _compare_checkouts(
    collected: Collected,
    *,
    name: str,
    provider,
    orders: list[Order],
    checkouts: list[ProviderCheckout],
    now: datetime,
) -> list[ProviderCheckout]:
    """Each checkout with the order it pays for, and each recent order with no checkout at the
    provider. Returns the checkouts that were compared with their order."""
    by_id = {
        o.provider_order_id: o
        for o in Order.objects.filter(
            provider=name, provider_order_id__in=[c.id for c in checkouts]
        )
    }
    seen: set[int] = set()
    compared = []
    for checkout in checkouts:
        order = by_id.get(checkout.id)
        if order is None:
            order = _order_by_ref(name, checkout.order_ref)
            if (
                order is not None
                and order.provider_order_id
                and order.provider_order_id != checkout.id
            ):
                order = None  # another checkout of the same order: ours is the one we stored
        elif checkout.order_ref and checkout.order_ref != str(order.pk):
            seen.add(order.pk)
            collected.add(
                Finding(
                    "order_reference_mismatch",
                    name,
                    f"{_label(name)} checkout {checkout.id} carries order reference "
                    f"{checkout.order_ref}",
                    order.pk,
                    checkout.id,
                )
            )
            continue
        if order is None:
            if checkout.status.paid:
                collected.add(
                    Finding(
                        "payment_without_order",
                        name,
                        f"paid checkout for reference {checkout.order_ref!r} matches no order of ours",
                        None,
                        checkout.id,
                    )
                )
            continue
        seen.add(order.pk)
        compared.append(checkout)
        if checkout.approved:
            if order.status in (S.PENDING, *UNPAID_ENDINGS) and not order.is_fulfilled:
                collected.add(
                    Finding(
                        "approved_not_captured",
                        name,
                        "the buyer approved the payment but nobody captured it",
                        order.pk,
                        checkout.id,
                        fix=_fix_capture(order.pk),
                    )
                )
            continue
        _check_payment(
            collected, name=name, order=order, status=checkout.status, reference=checkout.id
        )
    for order in orders:
        if order.pk not in seen:
            _check_absent(
                collected, name=name, order=order, lifetime=provider.checkout_lifetime, now=now
            )
    return compared


def _check_absent(
    collected: Collected, *, name: str, order: Order, lifetime: timedelta | None, now: datetime
) -> None:
    """One of our recent orders whose checkout the provider does not have."""
    if order.is_fulfilled:
        collected.add(
            Finding(
                "paid_order_unknown_to_provider",
                name,
                f"the order is {order.status} but {_label(name)} has no checkout "
                f"{order.provider_order_id or '(none recorded)'}",
                order.pk,
                order.provider_order_id or "",
            )
        )
    elif (
        lifetime is not None
        and order.provider_order_id
        and order.status == S.PENDING
        and order.created_at < now - lifetime
    ):
        # The provider drops a checkout nobody paid after a while: this one is over.
        collected.add(
            Finding(
                "checkout_expired_not_recorded",
                name,
                f"{_label(name)} no longer has this unpaid checkout",
                order.pk,
                order.provider_order_id,
                fix=_fix_mark_unpaid(order.pk, S.EXPIRED),
            )
        )


def _compare_refunds(
    collected: Collected, *, name: str, refunds: list[ProviderRefund], by_payment: dict[str, Order]
) -> None:
    """All refunds of each payment against its order: each refund's status, then the total."""
    by_id: dict[str, dict[str, ProviderRefund]] = {}
    for refund in refunds:
        if refund.payment_id:
            by_id.setdefault(refund.payment_id, {})[refund.id] = refund
    for payment_id, of_payment in sorted(by_id.items()):
        totals: dict[str, Decimal] = {}
        for refund in of_payment.values():
            if refund.status in COUNTED:
                totals[refund.currency] = totals.get(refund.currency, Decimal("0")) + (
                    refund.amount or Decimal("0")
                )
        order = by_payment.get(payment_id)
        if order is None:
            if totals:
                collected.add(
                    Finding(
                        "refund_for_unknown_payment",
                        name,
                        f"refunds of {payment_id} match no order of ours",
                        None,
                        payment_id,
                    )
                )
            continue
        if not _check_refund_statuses(
            collected, name=name, order=order, refunds=list(of_payment.values())
        ):
            # (a refund being undone brings our total down to the provider's by itself)
            _check_refunds(
                collected,
                name=name,
                order=order,
                payment_id=payment_id,
                refunds=list(of_payment.values()),
            )


def _compare_disputes(
    collected: Collected,
    *,
    name: str,
    disputes: list[ProviderDispute],
    by_payment: dict[str, Order],
) -> None:
    for dispute in disputes:
        if not dispute.known:
            order = Order.objects.filter(provider=name, dispute_id=dispute.id).first()
            collected.add(
                Finding(
                    "dispute_unknown_to_provider",
                    name,
                    f"{_label(name)} does not know this dispute",
                    order.pk if order else None,
                    dispute.id,
                )
            )
            continue
        order = by_payment.get(dispute.payment_id) or _order_by_ref(name, dispute.order_ref)
        if order is None:
            collected.add(
                Finding(
                    "dispute_for_unknown_payment",
                    name,
                    f"dispute on payment {dispute.payment_id or '(none)'} matches no order of ours",
                    None,
                    dispute.id,
                )
            )
            continue
        _check_dispute(
            collected,
            name=name,
            order=order,
            dispute_id=dispute.id,
            kind=dispute.kind,
            outcome=dispute.dispute_outcome,
            stage=dispute.dispute_stage,
        )


def _check_dispute(
    collected: Collected,
    *,
    name: str,
    order: Order,
    dispute_id: str,
    kind: EventKind,
    outcome: str,
    stage: str,
) -> None:
    """Compare one dispute the provider reports with the order's record of it."""
    recorded = order.dispute_id == dispute_id
    if kind == EventKind.DISPUTE_OPENED:
        if not recorded:
            collected.add(
                Finding(
                    "dispute_not_recorded",
                    name,
                    f"open dispute ({stage})",
                    order.pk,
                    dispute_id,
                    fix=_fix_dispute(order.pk, dispute_id, ""),
                )
            )
        return
    if outcome not in CLOSED:
        collected.add(
            Finding(
                "dispute_status_unknown",
                name,
                f"the dispute is {stage!r}: no rule says whether it is open, won or lost",
                order.pk,
                dispute_id,
            )
        )
        return
    if recorded and order.dispute_status == outcome:
        return
    if recorded and order.dispute_status in CLOSED:
        collected.add(
            Finding(
                "dispute_outcome_changed",
                name,
                f"we recorded the dispute {order.dispute_status}, the provider now says {outcome} "
                f"({stage}): staff decide",
                order.pk,
                dispute_id,
            )
        )
        return
    collected.add(
        Finding(
            "dispute_outcome_not_recorded",
            name,
            f"dispute closed: {outcome} ({stage})",
            order.pk,
            dispute_id,
            fix=_fix_dispute(order.pk, dispute_id, outcome),
        )
    )


def _check_refund_statuses(
    collected: Collected, *, name: str, order: Order, refunds: list[ProviderRefund]
) -> bool:
    """Each refund of the order's payment: one that failed or was canceled after we counted
    it is undone; one in a status no rule knows is flagged. True when one is to be undone."""
    ours = {r.provider_refund_id: r for r in Refund.objects.filter(order=order)}
    reversing = False
    for refund in refunds:
        refund_id, status, amount, currency = (
            refund.id,
            refund.status,
            refund.amount,
            refund.currency,
        )
        if status not in Refund.Status.values:
            collected.add(
                Finding(
                    "refund_status_unknown",
                    name,
                    f"refund {refund_id} is {status!r}: no rule says whether it counts",
                    order.pk,
                    refund_id,
                )
            )
            continue
        row = ours.get(refund_id)
        if status in REVERSED and (row is None or row.status in COUNTED):
            if row is None and order.amount_refunded <= 0:
                continue  # never applied here: nothing to undo
            reversing = True
            collected.add(
                Finding(
                    "refund_reversal_not_applied",
                    name,
                    f"refund {refund_id} of {amount} {currency} is {status} at the provider",
                    order.pk,
                    refund_id,
                    fix=_fix_refund_status(order.pk, refund_id, status, amount, currency),
                )
            )
        elif (
            row is not None and row.status != status and row.status in COUNTED and status in COUNTED
        ):
            collected.add(
                Finding(
                    "refund_status_not_recorded",
                    name,
                    f"refund {refund_id} is {status}, we recorded {row.status}",
                    order.pk,
                    refund_id,
                    fix=_fix_refund_status(order.pk, refund_id, status, amount, currency),
                )
            )
    return reversing


def _order_by_ref(name: str, ref: str) -> Order | None:
    """Our order by the reference a provider echoes back (our order id)."""
    return Order.objects.filter(provider=name, pk=int(ref)).first() if ref.isdigit() else None


def _orders_by_payment(
    name: str, *, checkouts: list[ProviderCheckout], payment_ids: set[str]
) -> dict[str, Order]:
    """Our orders of ``payment_ids`` (refunded or disputed payments), by payment id."""
    ids = payment_ids - {""}
    found = {
        o.provider_payment_id: o
        for o in Order.objects.filter(provider=name, provider_payment_id__in=sorted(ids))
    }
    for checkout in checkouts:  # an order fulfilled before its payment id was stored
        payment_id = checkout.status.provider_payment_id
        if payment_id in ids and payment_id not in found:
            order = Order.objects.filter(provider=name, provider_order_id=checkout.id).first()
            if order is not None:
                found[payment_id] = order
    return found


def _label(name: str) -> str:
    return dict(Order.Provider.choices).get(name, name.title())


def _open_disputes(name: str) -> list[str]:
    """Disputes we hold open, whenever they were opened: each is read again until it closes."""
    return list(
        Order.objects.filter(provider=name, dispute_status=Order.DisputeStatus.OPEN)
        .exclude(dispute_id="")
        .order_by("pk")
        .values_list("dispute_id", flat=True)[:1000]
    )


def _refunds_in_flight(name: str) -> list[str]:
    """Payments with a refund we counted while the provider had not completed it."""
    return list(
        Refund.objects.filter(
            order__provider=name, status__in=(Refund.Status.PENDING, Refund.Status.REQUIRES_ACTION)
        )
        .exclude(order__provider_payment_id="")
        .order_by("order__provider_payment_id")
        .values_list("order__provider_payment_id", flat=True)
        .distinct()[:1000]
    )


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
            raise ValueError(
                f"{value!r} is not a date (2026-11-01), a time (2026-11-01T12:00) or a span (24h, 7d)."
            )
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
