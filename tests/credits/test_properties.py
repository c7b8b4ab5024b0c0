"""Property: any sequence of operations keeps every ledger invariant and matches a simple model."""

import uuid
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credits.exceptions import CreditsError, InsufficientCredits, RefundNotAllowed, SpendingFrozen
from credits.models import CreditBalance, LedgerEntry, LedgerKind
from credits.services import (
    balance_refresh,
    credits_adjust,
    credits_clawback,
    credits_grant,
    credits_refund,
    credits_spend,
    spending_hold,
    spending_release,
)
from tests.credits.helpers import assert_ledger_clean

CAP = 100
amounts = st.integers(min_value=1, max_value=60)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), amounts),
        st.tuples(st.just("spend"), amounts),
        st.tuples(st.just("refund"), st.integers(0, 20), st.one_of(st.none(), amounts)),
        st.tuples(st.just("adjust"), st.integers(-60, 60).filter(bool)),
        st.tuples(st.just("clawback"), amounts),
        st.tuples(st.just("hold")),
        st.tuples(st.just("release")),
        st.tuples(st.just("replay"), st.integers(0, 40)),
        st.tuples(st.just("regenerate"), st.integers(1, 30)),
    ),
    min_size=1,
    max_size=25,
)


class Model:
    """What the balance must be, computed the plain way."""

    def __init__(self):
        self.balance = 0
        self.holds = 0
        self.spends: list[list] = []  # [entry, refunded]
        self.done: list[tuple] = []  # (call, first result) for replays


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_random_operation_sequences_keep_every_invariant(make_user, staff_user, ops):
    user = make_user()
    model = Model()
    run = uuid.uuid4().hex[:8]

    for step, op in enumerate(ops):
        key = f"prop-{run}-{step}"
        entries_before = LedgerEntry.objects.filter(user=user).count()
        expected_error = None
        name = op[0]

        if name == "grant":
            call = lambda a=op[1], k=key: credits_grant(
                user=user, amount=a, kind=LedgerKind.BONUS, idempotency_key=k
            )
            change = op[1]
        elif name == "spend":
            call = lambda a=op[1], k=key: credits_spend(user=user, amount=a, idempotency_key=k)
            change = -op[1]
            if model.holds:
                expected_error = SpendingFrozen
            elif op[1] > model.balance:
                expected_error = InsufficientCredits
        elif name == "refund":
            if not model.spends:
                continue
            spend = model.spends[op[1] % len(model.spends)]
            taken = -spend[0].amount
            call = lambda s=spend[0], a=op[2], k=key: credits_refund(
                spend=s, idempotency_key=k, amount=a
            )
            change = op[2] if op[2] is not None else taken
            if spend[1] or change > taken:
                expected_error = RefundNotAllowed
        elif name == "adjust":
            call = lambda a=op[1], k=key: credits_adjust(
                user=user,
                amount=a,
                reason="Property test",
                staff_user=staff_user,
                idempotency_key=k,
            )
            change = op[1]
            if model.balance + change < 0:
                expected_error = InsufficientCredits
        elif name == "clawback":
            call = lambda a=op[1], k=key: credits_clawback(
                user=user, amount=a, idempotency_key=k, reason="Chargeback"
            )
            change = -min(op[1], model.balance)
        elif name in ("hold", "release"):
            service = spending_hold if name == "hold" else spending_release
            call = lambda s=service, k=key: s(user=user, reason="Dispute", idempotency_key=k)
            change = 0
        elif name == "replay":
            if not model.done:
                continue
            call, first = model.done[op[1] % len(model.done)]
            again = call()
            if isinstance(first, bool):
                assert again is False
            else:
                assert _entry_id(again) == _entry_id(first), "a repeated key applied again"
            assert LedgerEntry.objects.filter(user=user).count() == entries_before
            _assert_invariants(user, model)
            continue
        else:  # regenerate: some whole periods pass, then the balance is read
            CreditBalance.objects.filter(user=user).update(
                regen_checked_at=timezone.now()
                - op[1] * timedelta(minutes=15)
                - timedelta(seconds=5)
            )
            snapshot = balance_refresh(user=user)
            due = min(op[1], max(0, CAP - model.balance))
            assert snapshot.regenerated == due
            model.balance += due
            _assert_invariants(user, model)
            continue

        if expected_error is not None:
            with pytest.raises(expected_error):
                call()
            assert LedgerEntry.objects.filter(user=user).count() == entries_before, (
                "a refusal wrote an entry"
            )
        else:
            try:
                result = call()
            except CreditsError as exc:  # pragma: no cover - shows the step that broke the model
                pytest.fail(f"step {step} {op} failed: {exc!r}")
            model.balance += change
            if name == "hold":
                model.holds += 1
            elif name == "release":
                model.holds = max(0, model.holds - 1)
            elif name == "spend":
                model.spends.append([result, False])
            elif name == "refund":
                spend[1] = True
            model.done.append((call, result))
        _assert_invariants(user, model)

    assert_ledger_clean()


def _entry_id(result):
    return result.entry.pk if hasattr(result, "entry") else result.pk


def _assert_invariants(user, model):
    row = CreditBalance.objects.get(user=user)
    total = LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or 0
    last = (
        LedgerEntry.objects.filter(user=user)
        .order_by("-id")
        .values_list("balance_after", flat=True)
        .first()
    )
    assert row.balance == model.balance >= 0
    assert row.balance == total == (last or 0)
    assert row.balance == row.lifetime_earned - row.lifetime_spent
    assert row.lifetime_earned >= 0 and row.lifetime_spent >= 0
    assert row.spend_holds == model.holds
