"""Property: any sequence of grants, spends, settlements, refunds, expiries and clawbacks keeps
every lot and balance invariant, draws in burn order, and gives back last drawn first."""

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from credits.exceptions import InsufficientCredits, RefundNotAllowed
from credits.models import CreditLot, LedgerEntry, LedgerKind, LotMovement
from credits.references import Source
from credits.services import (
    credits_clawback,
    credits_grant,
    credits_refund,
    credits_spend,
)
from credits.tasks import expire_lots
from tests.credits.helpers import assert_ledger_clean, balance_of
from tests.credits.lots_helpers import (
    assert_lot_invariants,
    db_now,
    lapse,
    live_credits_of,
    moves,
    sql,
)

GRANT_KINDS = [
    LedgerKind.PURCHASE,
    LedgerKind.BONUS,
    LedgerKind.VOUCHER,
    LedgerKind.SUBSCRIPTION_GRANT,
    LedgerKind.TRIAL_GRANT,
]
ORDERS = 3
amounts = st.integers(min_value=1, max_value=40)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"),
            st.sampled_from(GRANT_KINDS),
            amounts,
            st.one_of(st.none(), st.integers(1, 5)),  # days to expiry; None: the kind's default
            st.integers(0, ORDERS - 1),  # the order a purchase or bonus came with
        ),
        st.tuples(st.just("spend"), amounts),
        st.tuples(st.just("settle"), st.integers(0, 20), amounts),
        st.tuples(st.just("refund"), st.integers(0, 20)),
        st.tuples(st.just("expire"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("clawback"), st.integers(0, ORDERS - 1), amounts),
        st.tuples(st.just("replay"), st.integers(0, 40)),
    ),
    min_size=3,
    max_size=25,
)

_BURN_ORDER = "priority, expires_at ASC NULLS LAST, category DESC, effective_at, id"
_LIVE = (
    "remaining > 0 AND effective_at <= statement_timestamp()"
    " AND (expires_at IS NULL OR expires_at > statement_timestamp())"
)


def live_lots(user) -> list[tuple[int, int]]:
    """(lot id, remaining) of the user's live lots, in burn order."""
    return sql(
        f"SELECT id, remaining FROM credits_creditlot WHERE user_id = %s AND {_LIVE}"
        f" ORDER BY {_BURN_ORDER}",
        [user.pk],
    )


def lapsed_held(user) -> int:
    return sql(
        "SELECT coalesce(sum(remaining), 0) FROM credits_creditlot"
        " WHERE user_id = %s AND remaining > 0 AND expires_at <= statement_timestamp()",
        [user.pk],
    )[0][0]


def take_in_order(lots: list[tuple[int, int]], amount: int) -> dict[int, int]:
    taken = {}
    for lot_id, left in lots:
        if amount == 0:
            break
        part = min(left, amount)
        taken[lot_id] = -part
        amount -= part
    return taken


def expected_returns(spend: LedgerEntry, amount: int) -> tuple[dict[int, int], int]:
    """The draws a return of ``amount`` gives back to (last drawn first), and the credits of
    them whose lot has lapsed."""
    gives, lapsed = {}, 0
    draws = (
        LotMovement.objects.filter(entry=spend, credits__lt=0)
        .order_by("-id")
        .values_list("id", "credits", "lot__expires_at")
    )
    now = db_now()
    for draw_id, credits, expires_at in draws:
        if amount == 0:
            break
        part = min(-credits, amount)
        gives[draw_id] = part
        amount -= part
        if expires_at is not None and expires_at <= now:
            lapsed += part
    return gives, lapsed


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_random_lot_movements_keep_every_invariant(make_user, ops):
    user = make_user()
    run = uuid.uuid4().hex[:8]
    orders = [Source("payments.order", 1000 + n) for n in range(ORDERS)]
    spends: list[LedgerEntry] = []
    refunded: set[int] = set()
    done: list[tuple] = []  # (call, first entry id) of operations that wrote something
    # Something to start from: paid lots of an order with its bonus, a voucher, a trial.
    soon = db_now() + timedelta(days=2)
    for n, (kind, amount, terms) in enumerate(
        [
            (LedgerKind.PURCHASE, 30, {"source": orders[0]}),
            (LedgerKind.BONUS, 10, {"source": orders[0]}),
            (LedgerKind.VOUCHER, 15, {"expires_at": soon}),
            (LedgerKind.TRIAL_GRANT, 10, {}),
        ]
    ):
        credits_grant(
            user=user, amount=amount, kind=kind, idempotency_key=f"lots-{run}-seed-{n}", **terms
        )

    for step, op in enumerate(ops):
        key = f"lots-{run}-{step}"
        name = op[0]
        live_before, lots_before = live_credits_of(user), live_lots(user)
        entries_before = LedgerEntry.objects.count()

        if name == "grant":
            _, kind, amount, days, order = op
            terms = {}
            if days is not None and kind not in (LedgerKind.PURCHASE, LedgerKind.TRIAL_GRANT):
                terms["expires_at"] = db_now() + timedelta(days=days)
            if kind in (LedgerKind.PURCHASE, LedgerKind.BONUS):
                terms["source"] = orders[order]

            def call(kind=kind, amount=amount, key=key, terms=terms):
                return credits_grant(
                    user=user, amount=amount, kind=kind, idempotency_key=key, **terms
                )

            entry = call()
            assert CreditLot.objects.get(grant_entry=entry).original == amount
            assert live_credits_of(user) == live_before + amount
            done.append((call, entry.pk))

        elif name == "spend":
            amount = op[1]

            def call(amount=amount, key=key):
                return credits_spend(user=user, amount=amount, idempotency_key=key)

            if live_before < amount:
                with pytest.raises(InsufficientCredits):
                    call()
                event("spend refused")
                assert LedgerEntry.objects.count() == entries_before  # nothing written
                continue
            entry = call()
            assert moves(entry) == take_in_order(lots_before, amount)
            assert balance_of(user) == live_before - amount
            spends.append(entry)
            done.append((call, entry.pk))

        elif name in ("settle", "refund"):
            if not spends:
                continue
            charge = spends[op[1] % len(spends)]
            amount = -charge.amount if name == "refund" else op[2]

            def call(charge=charge, amount=amount, key=key):
                return credits_refund(spend=charge, idempotency_key=key, amount=amount)

            if charge.pk in refunded or amount > -charge.amount:
                with pytest.raises(RefundNotAllowed):
                    call()
                event("refund refused")
                assert LedgerEntry.objects.count() == entries_before
                continue
            gives, lapsed = expected_returns(charge, amount)
            entry = call()
            refunded.add(charge.pk)
            returned = dict(
                LotMovement.objects.filter(entry=entry).values_list("returns_id", "credits")
            )
            assert returned == gives
            expired = LedgerEntry.objects.filter(idempotency_key=f"{key}:expired").first()
            assert (0 if expired is None else -expired.amount) == lapsed
            assert balance_of(user) == live_before + amount - lapsed
            done.append((call, entry.pk))

        elif name == "expire":
            expiring = list(
                CreditLot.objects.filter(
                    user=user, expires_at__isnull=False, expires_at__gt=db_now()
                ).order_by("id")
            )
            if not expiring:
                continue
            lot = expiring[op[1] % len(expiring)]
            lapse(lot)
            if op[2]:
                expire_lots()
                assert lapsed_held(user) == 0
            assert live_credits_of(user) == live_before - (lot.remaining if lot.remaining else 0)

        elif name == "clawback":
            _, order, amount = op
            source = orders[order]
            voided = sum(
                left
                for lot_id, left in lots_before
                if CreditLot.objects.filter(
                    pk=lot_id, source="bonus", source_type=source.type, source_id=source.id
                ).exists()
            )
            own = sum(
                left
                for lot_id, left in lots_before
                if CreditLot.objects.filter(
                    pk=lot_id, source="purchase", source_type=source.type, source_id=source.id
                ).exists()
            )

            def call(amount=amount, key=key, source=source):
                return credits_clawback(
                    user=user, amount=amount, idempotency_key=key, reason="refunded", source=source
                ).entry

            entry = call()
            recovered = -entry.amount
            assert recovered == min(amount, live_before - voided)
            taken_from_own = sum(
                -c
                for lot_id, c in moves(entry).items()
                if CreditLot.objects.get(pk=lot_id).source_id == source.id
                and CreditLot.objects.get(pk=lot_id).source == "purchase"
            )
            assert taken_from_own == min(amount, own)  # the purchase's own lot first
            assert balance_of(user) == live_before - voided - recovered >= 0
            done.append((call, entry.pk))

        elif name == "replay":
            if not done:
                continue
            call, first = done[op[1] % len(done)]
            balance = balance_of(user)
            assert call().pk == first
            assert LedgerEntry.objects.count() == entries_before
            assert balance_of(user) == balance

        event(f"{name} written")
        # After any movement nothing lapsed is left counted in the balance row.
        if name not in ("expire", "replay"):
            assert lapsed_held(user) == 0
        assert balance_of(user) >= 0
        assert_lot_invariants()

    assert_ledger_clean()
