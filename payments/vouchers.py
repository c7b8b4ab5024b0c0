"""Vouchers: redeeming free credits, purchase bonuses reserved at checkout, staff's codes.

Never over-redeemed. A use is taken by one conditional statement,
``UPDATE payments_voucher SET uses = uses + 1 ... WHERE uses < max_uses AND status = 'ACTIVE'
AND (valid_until IS NULL OR valid_until > statement_timestamp()) RETURNING ...``, in the same
transaction that inserts the redemption row (UNIQUE per voucher and user while not released)
and grants the credits through the credits engine. Concurrent claims queue on the voucher's
row; each one re-checks the condition after the one before it committed, so ``uses`` never
passes ``max_uses`` (a CHECK says so too), and a user racing themself gets one redemption:
the second insert waits for the first and fails, rolling its claimed use back with it.

Codes are case-insensitive (stored upper case) and a wrong, inactive, expired, used-up or
not-yet-redeemable code gets the one message of ``VoucherInvalid``: nothing in the answer
tells a guesser which it was.

Purchase bonus. ``voucher_reserve`` takes the use when the order is created (inside its
transaction); ``voucher_release_for_order`` gives it back when the checkout ends unpaid
(cancelled, expired or failed: ``fulfilment.order_mark_unpaid``); ``voucher_grant_bonus``
grants the bonus inside fulfilment's transaction as a ``bonus`` lot whose source is the
order, which is how the credits engine knows to void it when the purchase is refunded or
charged back. A payment confirmed after its checkout was released claims a use again; when
none is left it is completed without the bonus (logged, and visible on the redemption).

Plan trial. ``voucher_reserve_trial`` takes the use (one conditional UPDATE that also checks
the voucher's plan) in the transaction that creates the membership checkout, once per user
and plan; ``voucher_release_for_subscription`` gives it back when that checkout ends before
the membership starts, ``voucher_redeem_for_subscription`` marks it redeemed when it starts
(both from ``subscriptions.subscription_sync``). The provider is asked for the voucher's
days of trial; the free first period's plan credits are promotional.
"""

import csv
import io
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from credits.models import LedgerKind
from credits.services import credits_grant

from .exceptions import PaymentsError
from .ledger import order_source
from .models import (
    CODE_MAX_LENGTH,
    SubscriptionPeriod,
    SubscriptionPlan,
    Voucher,
    VoucherRedemption,
)

logger = logging.getLogger(__name__)

K = Voucher.Kind
S = VoucherRedemption.Status

#: What a customer reads for any code that cannot be used, whatever the reason.
INVALID_CODE_MESSAGE = "That code is not valid. Check it and try again."
#: What a subscriber reads when the trial code does not work with the plan chosen.
TRIAL_INVALID_MESSAGE = (
    "That code does not give a trial of this plan. Check it, or subscribe without a code."
)
#: What a subscriber reads when they had a trial of this plan already.
TRIAL_USED_MESSAGE = (
    "You have already had a free trial of this plan, so a code cannot start another one. "
    "You can subscribe without the code."
)
#: PayPal billing plans have no trial cycle here: trial codes need another provider.
TRIAL_PAYPAL_MESSAGE = (
    "Free trials cannot start with PayPal. Pay by card to use this code, "
    "or subscribe with PayPal without it."
)
#: Generated codes: no 0/O, 1/I/L; 12 characters of 32 symbols are 60 random bits.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GENERATED_LENGTH = 12
GENERATE_MAX = 5000


class VoucherError(PaymentsError):
    code = "voucher_error"
    status = 400
    retryable = False


class VoucherInvalid(VoucherError):
    """A code that cannot be used: unknown, inactive, expired, used up, of another kind or
    (a plan trial) for another plan. One message for all of them."""

    code = "voucher_invalid"

    def __init__(self, message: str = INVALID_CODE_MESSAGE):
        super().__init__(message)


class VoucherAlreadyRedeemed(VoucherError):
    code = "voucher_already_redeemed"
    status = 409

    def __init__(self):
        super().__init__("You have already used this code.")


class VoucherTrialUsed(VoucherError):
    """The user had a trial of this plan (by this code or another) already."""

    code = "voucher_trial_used"
    status = 409

    def __init__(self):
        super().__init__(TRIAL_USED_MESSAGE)


class VoucherRejected(VoucherError):
    """Staff asked for a voucher the rules do not allow (the message says why)."""

    code = "voucher_rejected"


def voucher_code_normalize(raw: str | None) -> str:
    """A code as stored: trimmed, inner spaces removed, upper case ("" when nothing usable)."""
    code = "".join((raw or "").split()).upper()
    return code if len(code) <= CODE_MAX_LENGTH else ""


# --- customers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    voucher_id: int
    value: int
    credits_expire_at: datetime | None


_CLAIM_SQL = """
UPDATE payments_voucher
   SET uses = uses + 1,
       status = CASE WHEN uses + 1 >= max_uses THEN 'DEPLETED' ELSE status END,
       updated_at = statement_timestamp()
 WHERE code = %(code)s AND kind = %(kind)s AND status = 'ACTIVE' AND uses < max_uses
   AND (valid_until IS NULL OR valid_until > statement_timestamp())
RETURNING id, value,
          statement_timestamp() + make_interval(days => credits_valid_days)
"""

_TRIAL_CLAIM_SQL = """
UPDATE payments_voucher
   SET uses = uses + 1,
       status = CASE WHEN uses + 1 >= max_uses THEN 'DEPLETED' ELSE status END,
       updated_at = statement_timestamp()
 WHERE code = %(code)s AND kind = 'SUBSCRIPTION_TRIAL' AND plan_code = %(plan_code)s
   AND status = 'ACTIVE' AND uses < max_uses
   AND (valid_until IS NULL OR valid_until > statement_timestamp())
RETURNING id, value
"""

_RECLAIM_SQL = """
UPDATE payments_voucher
   SET uses = uses + 1,
       status = CASE WHEN uses + 1 >= max_uses THEN 'DEPLETED' ELSE status END,
       updated_at = statement_timestamp()
 WHERE id = %(id)s AND status = 'ACTIVE' AND uses < max_uses
RETURNING id
"""

_RELEASE_SQL = """
UPDATE payments_voucher
   SET uses = uses - 1,
       status = CASE WHEN status = 'DEPLETED' THEN 'ACTIVE' ELSE status END,
       updated_at = statement_timestamp()
 WHERE id = %(id)s AND uses > 0
"""


def _claim(*, code: str, kind: str) -> _Claim | None:
    """Take one use of the voucher ``code`` of ``kind`` if it can be used now (one statement)."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"code": code, "kind": kind})
        row = cursor.fetchone()
    return (
        None if row is None else _Claim(voucher_id=row[0], value=row[1], credits_expire_at=row[2])
    )


def _is_once_per_user(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", "") == "payments_redemption_once_per_user"


def voucher_redeem(*, user, code: str) -> VoucherRedemption:
    """Turn a free-credits code into a promotional lot for ``user``, once per user.

    One transaction: the use is claimed, the redemption recorded and the credits granted
    (kind VOUCHER, expiring after the voucher's ``credits_valid_days``), or nothing is.
    Raises VoucherInvalid (one message for every reason) or VoucherAlreadyRedeemed.
    """
    normalized = voucher_code_normalize(code)
    if not normalized:
        raise VoucherInvalid()
    try:
        with transaction.atomic(durable=True):
            claim = _claim(code=normalized, kind=K.FIXED_TOKENS)
            if claim is None:
                raise VoucherInvalid()
            redemption = VoucherRedemption.objects.create(
                voucher_id=claim.voucher_id,
                user=user,
                status=S.REDEEMED,
                credits=claim.value,
                redeemed_at=timezone.now(),
            )
            redemption.entry = credits_grant(
                user=user,
                amount=claim.value,
                kind=LedgerKind.VOUCHER,
                idempotency_key=f"voucher:{claim.voucher_id}:user:{user.pk}",
                description=f"Promo code {normalized}",
                metadata={"voucher_id": claim.voucher_id, "redemption_id": redemption.pk},
                expires_at=claim.credits_expire_at,
            )
            redemption.save(update_fields=["entry"])
    except IntegrityError as exc:
        if _is_once_per_user(exc):
            raise VoucherAlreadyRedeemed() from None
        raise
    logger.info(
        "voucher %s redeemed by user %s: %s credits", claim.voucher_id, user.pk, claim.value
    )
    return redemption


def bonus_credits(*, credits: int, percent: int) -> int:
    """The bonus ``percent`` % of ``credits`` gives: rounded half up, at least 1."""
    share = (Decimal(credits) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(1, int(share))


def voucher_reserve(*, user, code: str, order) -> VoucherRedemption:
    """Reserve a purchase-bonus code for ``order`` (PENDING, just created, same transaction).

    The use is taken now (so a checkout in progress can count on its bonus) and the bonus
    worked out from the order's credits. Raises VoucherInvalid or VoucherAlreadyRedeemed;
    the caller's transaction then rolls back with the order.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("voucher_reserve runs inside the order's transaction")
    normalized = voucher_code_normalize(code)
    if not normalized:
        raise VoucherInvalid()
    claim = _claim(code=normalized, kind=K.PERCENTAGE_BONUS)
    if claim is None:
        raise VoucherInvalid()
    try:
        with transaction.atomic():
            return VoucherRedemption.objects.create(
                voucher_id=claim.voucher_id,
                user=user,
                status=S.RESERVED,
                order=order,
                credits=bonus_credits(credits=order.credits, percent=claim.value),
            )
    except IntegrityError as exc:
        if _is_once_per_user(exc):
            raise VoucherAlreadyRedeemed() from None
        raise


def voucher_release_for_order(*, order_id: int) -> VoucherRedemption | None:
    """Give back the use a checkout reserved, when it ended unpaid. Inside the caller's
    transaction (the order's row lock held); a second call finds nothing reserved."""
    return _release(
        VoucherRedemption.objects.select_for_update()
        .filter(order_id=order_id, status=S.RESERVED)
        .first(),
        f"order {order_id}",
    )


def _release(redemption: VoucherRedemption | None, what: str) -> VoucherRedemption | None:
    if redemption is None:
        return None
    redemption.status = S.RELEASED
    redemption.released_at = timezone.now()
    redemption.save(update_fields=["status", "released_at"])
    with connection.cursor() as cursor:
        cursor.execute(_RELEASE_SQL, {"id": redemption.voucher_id})
    logger.info("%s: voucher %s use released", what, redemption.voucher_id)
    return redemption


# --- plan trials ------------------------------------------------------------------------------


def trial_already_had(*, user, plan_code: str) -> bool:
    """Whether ``user`` holds (or held) a trial of the plan: a trial code for it not given
    back, or a free first period of it at any provider."""
    return (
        VoucherRedemption.objects.filter(
            user=user, voucher__kind=K.SUBSCRIPTION_TRIAL, voucher__plan_code=plan_code
        )
        .exclude(status=S.RELEASED)
        .exists()
        or SubscriptionPeriod.objects.filter(
            subscription__user=user,
            plan__code=plan_code,
            kind=SubscriptionPeriod.Kind.PERIOD,
            amount=0,
        ).exists()
    )


def voucher_reserve_trial(*, user, code: str, subscription) -> tuple[VoucherRedemption, int]:
    """Reserve a plan-trial code for ``subscription`` (INCOMPLETE, just created, in the same
    transaction) and return the reservation and the trial's days.

    The code must be a trial of the subscription's plan. Once per user and plan: the user's
    row is locked so two checkouts of theirs decide one after the other, and a user who had
    a trial of the plan (by any code) is refused. Raises VoucherInvalid (one message whatever
    the reason) or VoucherTrialUsed; the caller's transaction then rolls back."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("voucher_reserve_trial runs inside the subscription's transaction")
    normalized = voucher_code_normalize(code)
    if not normalized:
        raise VoucherInvalid(TRIAL_INVALID_MESSAGE)
    plan = subscription.plan
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
    if trial_already_had(user=user, plan_code=plan.code):
        raise VoucherTrialUsed()
    with connection.cursor() as cursor:
        cursor.execute(_TRIAL_CLAIM_SQL, {"code": normalized, "plan_code": plan.code})
        row = cursor.fetchone()
    if row is None:
        raise VoucherInvalid(TRIAL_INVALID_MESSAGE)
    voucher_id, days = row
    try:
        with transaction.atomic():
            redemption = VoucherRedemption.objects.create(
                voucher_id=voucher_id,
                user=user,
                status=S.RESERVED,
                subscription=subscription,
                credits=plan.credits_per_period,
            )
    except IntegrityError as exc:
        if _is_once_per_user(exc):
            raise VoucherTrialUsed() from None
        raise
    return redemption, days


def voucher_release_for_subscription(*, subscription_id: int) -> VoucherRedemption | None:
    """Give back the trial use of a membership checkout that ended before it started
    (cancelled, expired, given up). Inside the caller's transaction; once."""
    return _release(
        VoucherRedemption.objects.select_for_update()
        .filter(subscription_id=subscription_id, status=S.RESERVED)
        .first(),
        f"subscription {subscription_id}",
    )


def voucher_redeem_for_subscription(*, subscription_id: int) -> VoucherRedemption | None:
    """The membership a trial code was reserved for started: the code is redeemed (its
    trial period's credits come with the free first invoice, as promotional credits)."""
    redemption = (
        VoucherRedemption.objects.select_for_update()
        .filter(subscription_id=subscription_id, status=S.RESERVED)
        .first()
    )
    if redemption is None:
        return None
    redemption.status = S.REDEEMED
    redemption.redeemed_at = timezone.now()
    redemption.save(update_fields=["status", "redeemed_at"])
    return redemption


def bonus_key(order_id: int) -> str:
    return f"order:{order_id}:voucher-bonus"


def voucher_grant_bonus(*, order) -> VoucherRedemption | None:
    """Grant the bonus reserved for ``order`` (locked, its purchase just granted), once.

    The bonus is a promotional ``bonus`` lot whose source is the order: a refund or lost
    dispute of the purchase voids what is left of it. A reservation released because the
    checkout ended unpaid before the payment arrived claims a use again first; when the
    voucher is used up, inactive or the user holds it otherwise, no bonus (logged).
    """
    redemption = (
        VoucherRedemption.objects.select_for_update()
        .select_related("voucher")
        .filter(order_id=order.pk)
        .first()
    )
    if redemption is None or redemption.status == S.REDEEMED:
        return redemption
    if redemption.status == S.RELEASED and not _reclaim(redemption):
        logger.warning(
            "order %s paid after its checkout ended: voucher %s could not be claimed again, "
            "no bonus granted",
            order.pk,
            redemption.voucher_id,
        )
        return redemption
    redemption.entry = credits_grant(
        user=order.user,
        amount=redemption.credits,
        kind=LedgerKind.BONUS,
        idempotency_key=bonus_key(order.pk),
        source=order_source(order),
        description=f"Bonus credits with order #{order.pk} (code {redemption.voucher.code})",
        metadata={"voucher_id": redemption.voucher_id, "redemption_id": redemption.pk},
        expires_at=_credits_expire_at(redemption.voucher),
    )
    redemption.status = S.REDEEMED
    redemption.redeemed_at = timezone.now()
    redemption.save(update_fields=["entry", "status", "redeemed_at"])
    return redemption


def _reclaim(redemption: VoucherRedemption) -> bool:
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_RECLAIM_SQL, {"id": redemption.voucher_id})
                if cursor.fetchone() is None:
                    return False
            redemption.status = S.RESERVED
            redemption.released_at = None
            redemption.save(update_fields=["status", "released_at"])
            return True
    except IntegrityError as exc:
        if _is_once_per_user(exc):
            return False
        raise


def _credits_expire_at(voucher: Voucher) -> datetime | None:
    if not voucher.credits_valid_days:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement_timestamp() + make_interval(days => %s)", [voucher.credits_valid_days]
        )
        return cursor.fetchone()[0]


# --- staff ----------------------------------------------------------------------------------

Audit = Callable[[Voucher], object] | None

#: What staff may change on a voucher; the code only while it has never been used.
EDITABLE = (
    "code",
    "value",
    "plan_code",
    "max_uses",
    "valid_until",
    "credits_valid_days",
    "status",
    "note",
)


def voucher_generate_code(*, prefix: str = "") -> str:
    """An unguessable code: ``PREFIX-`` then 12 random symbols in groups of four."""
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(GENERATED_LENGTH))
    grouped = "-".join(body[i : i + 4] for i in range(0, GENERATED_LENGTH, 4))
    prefix = voucher_code_normalize(prefix).strip("-")
    return f"{prefix}-{grouped}" if prefix else grouped


def voucher_check_terms(values: dict) -> None:
    """Raise VoucherRejected when staff ask for terms the rules do not allow."""
    if values.get("kind") == K.SUBSCRIPTION_TRIAL:
        plan_code = (values.get("plan_code") or "").strip()
        if not plan_code or not SubscriptionPlan.objects.filter(code=plan_code).exists():
            raise VoucherRejected("A plan trial needs the code of an existing plan.")
        if not 1 <= values.get("value", 0) <= 730:
            raise VoucherRejected("A plan trial is between 1 and 730 days.")
    elif values.get("plan_code"):
        raise VoucherRejected("Only a plan trial names a plan.")
    if not values.get("code"):
        raise VoucherRejected("A voucher needs a code.")
    if values.get("kind") == K.PERCENTAGE_BONUS and not 1 <= values.get("value", 0) <= 1000:
        raise VoucherRejected("A purchase bonus is between 1 and 1000 percent.")
    if values.get("status") == Voucher.Status.EXPIRED:
        raise VoucherRejected("A voucher expires by its 'valid until' time, not by its status.")


def voucher_create(*, staff_user, audit: Audit = None, **values) -> Voucher:
    """Create one voucher (code normalised, unique); a plan trial names an existing plan."""
    values["code"] = voucher_code_normalize(values.get("code"))
    values.setdefault("status", Voucher.Status.ACTIVE)
    if values["status"] == Voucher.Status.DEPLETED:
        raise VoucherRejected("A new voucher cannot start used up.")
    voucher_check_terms(values)
    with transaction.atomic():
        if Voucher.objects.filter(code=values["code"]).exists():
            raise VoucherRejected(f"The code {values['code']} is taken.")
        voucher = Voucher.objects.create(created_by=staff_user, **values)
        if audit:
            audit(voucher)
    return voucher


def voucher_update(*, voucher_id: int, staff_user, audit: Audit = None, **changes) -> Voucher:
    """Change what staff may change. The code stays once the voucher has been used; the
    maximum never goes below the uses taken; a used-up voucher becomes active again when the
    maximum is raised."""
    with transaction.atomic():
        voucher = Voucher.objects.select_for_update().get(pk=voucher_id)
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise VoucherRejected(f"These cannot be changed: {', '.join(sorted(unknown))}.")
        if "code" in changes:
            changes["code"] = voucher_code_normalize(changes["code"])
            if changes["code"] != voucher.code:
                if voucher.uses or voucher.redemptions.exists():
                    raise VoucherRejected("The code of a voucher that has been used cannot change.")
                if Voucher.objects.filter(code=changes["code"]).exclude(pk=voucher.pk).exists():
                    raise VoucherRejected(f"The code {changes['code']} is taken.")
        for name, value in changes.items():
            setattr(voucher, name, value)
        if voucher.max_uses < voucher.uses:
            raise VoucherRejected(
                f"{voucher.uses} uses are taken already: the maximum cannot be lower."
            )
        if voucher.status == Voucher.Status.DEPLETED and voucher.uses < voucher.max_uses:
            voucher.status = Voucher.Status.ACTIVE
        elif voucher.status == Voucher.Status.ACTIVE and voucher.uses >= voucher.max_uses:
            voucher.status = Voucher.Status.DEPLETED
        voucher_check_terms({"kind": voucher.kind, **{f: getattr(voucher, f) for f in EDITABLE}})
        voucher.save()
        if audit:
            audit(voucher)
    return voucher


def voucher_deactivate(*, voucher_id: int, audit: Audit = None) -> Voucher:
    """Stop a voucher from being used (redemptions made stay; a reserved checkout still gets
    its bonus)."""
    with transaction.atomic():
        voucher = Voucher.objects.select_for_update().get(pk=voucher_id)
        voucher.status = Voucher.Status.INACTIVE
        voucher.save(update_fields=["status", "updated_at"])
        if audit:
            audit(voucher)
    return voucher


def vouchers_generate(
    *,
    staff_user,
    count: int,
    prefix: str,
    kind: str,
    value: int,
    valid_until: datetime | None = None,
    credits_valid_days: int | None = None,
    note: str = "",
    plan_code: str = "",
    audit: Callable[[list[Voucher], str], object] | None = None,
) -> tuple[str, list[Voucher]]:
    """Make ``count`` single-use codes ``PREFIX-XXXX-XXXX-XXXX`` in one batch; returns the
    batch label (for the CSV) and the vouchers. All or none are created."""
    if not 1 <= count <= GENERATE_MAX:
        raise VoucherRejected(f"Generate between 1 and {GENERATE_MAX} codes at a time.")
    voucher_check_terms({"kind": kind, "code": "x", "value": value, "plan_code": plan_code})
    batch = f"{voucher_code_normalize(prefix).strip('-') or 'BATCH'}-{timezone.now():%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(voucher_generate_code(prefix=prefix))
    with transaction.atomic():
        vouchers = Voucher.objects.bulk_create(
            Voucher(
                code=code,
                kind=kind,
                value=value,
                plan_code=plan_code,
                max_uses=1,
                valid_until=valid_until,
                credits_valid_days=credits_valid_days,
                note=note,
                batch=batch,
                created_by=staff_user,
            )
            for code in sorted(codes)
        )
        if audit:
            audit(vouchers, batch)
    return batch, vouchers


CSV_HEADER = ["code", "kind", "value", "max_uses", "uses", "valid_until", "status", "batch"]


def vouchers_csv(vouchers: Iterable[Voucher]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for v in vouchers:
        writer.writerow(
            [
                v.code,
                v.kind,
                v.value,
                v.max_uses,
                v.uses,
                v.valid_until.isoformat() if v.valid_until else "",
                v.status,
                v.batch,
            ]
        )
    return out.getvalue()
