"""Reads about vouchers: what each one's credits became (granted, used, expired, voided, left).

A voucher's credits are the lots its redemptions' grants created (free-credit lots and purchase
bonus lots alike). Used is what left the lots for spends, net of refunds; expired counts lots
past their expiry whether or not the periodic task has written the expiry yet; voided is what
a refund or lost dispute of the purchase, an account deletion or a staff removal took.
"""

from dataclasses import dataclass

from django.db import connection

from .models import Voucher


@dataclass(frozen=True)
class VoucherCredits:
    voucher_id: int
    code: str
    kind: str
    uses: int
    max_uses: int
    redemptions: int
    granted: int
    used: int
    expired: int
    voided: int
    left: int


_TOTALS_SQL = """
WITH lots AS (
    SELECT r.voucher_id, l.id, l.original, l.remaining,
           (l.expires_at IS NOT NULL AND l.expires_at <= statement_timestamp()) AS lapsed
      FROM payments_voucherredemption r
      JOIN credits_creditlot l ON l.grant_entry_id = r.entry_id
     WHERE r.entry_id IS NOT NULL {lot_filter}
), taken AS (
    SELECT lots.id,
           coalesce(sum(-m.credits) FILTER (WHERE e.kind = 'EXPIRY'), 0) AS expired,
           coalesce(sum(-m.credits) FILTER (
               WHERE e.kind IN ('VOID', 'CLAWBACK', 'FORFEIT', 'ADJUSTMENT')), 0) AS voided
      FROM lots
      JOIN credits_lotmovement m ON m.lot_id = lots.id
      JOIN credits_ledgerentry e ON e.id = m.entry_id
     GROUP BY lots.id
), per_voucher AS (
    SELECT lots.voucher_id,
           sum(lots.original) AS granted,
           sum(coalesce(taken.expired, 0)
               + CASE WHEN lots.lapsed THEN lots.remaining ELSE 0 END) AS expired,
           sum(coalesce(taken.voided, 0)) AS voided,
           sum(CASE WHEN lots.lapsed THEN 0 ELSE lots.remaining END) AS left_
      FROM lots LEFT JOIN taken ON taken.id = lots.id
     GROUP BY lots.voucher_id
)
SELECT v.id, v.code, v.kind, v.uses, v.max_uses,
       (SELECT count(*) FROM payments_voucherredemption r
         WHERE r.voucher_id = v.id AND r.status = 'REDEEMED'),
       coalesce(p.granted, 0), coalesce(p.expired, 0), coalesce(p.voided, 0),
       coalesce(p.left_, 0)
  FROM payments_voucher v
  {join} per_voucher p ON p.voucher_id = v.id
 WHERE true {voucher_filter}
 ORDER BY coalesce(p.granted, 0) DESC, v.id
 LIMIT %(limit)s
"""


def voucher_credit_totals(
    *, voucher_ids: list[int] | None = None, granted_only: bool = False, limit: int = 1000
) -> list[VoucherCredits]:
    """Per voucher (the given ones, else all; only those that granted credits when
    ``granted_only``), most credits granted first."""
    params: dict = {"limit": limit}
    lot_filter = voucher_filter = ""
    if voucher_ids is not None:
        params["ids"] = list(voucher_ids)
        lot_filter = "AND r.voucher_id = ANY(%(ids)s)"
        voucher_filter = "AND v.id = ANY(%(ids)s)"
    sql = _TOTALS_SQL.format(
        lot_filter=lot_filter,
        voucher_filter=voucher_filter,
        join="JOIN" if granted_only else "LEFT JOIN",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    result = []
    for vid, code, kind, uses, max_uses, redemptions, granted, expired, voided, left in rows:
        result.append(
            VoucherCredits(
                voucher_id=vid,
                code=code,
                kind=kind,
                uses=uses,
                max_uses=max_uses,
                redemptions=redemptions,
                granted=int(granted),
                used=int(granted) - int(expired) - int(voided) - int(left),
                expired=int(expired),
                voided=int(voided),
                left=int(left),
            )
        )
    return result


@dataclass(frozen=True)
class VoucherOverview:
    vouchers: int
    active: int
    granted: int
    used: int
    expired: int
    voided: int
    left: int
    top: list[VoucherCredits]


def voucher_overview(*, top: int = 10) -> VoucherOverview:
    """All vouchers' promotional credits in one line, and the vouchers that granted the most."""
    every = voucher_credit_totals(granted_only=True, limit=100000)
    return VoucherOverview(
        vouchers=Voucher.objects.count(),
        active=Voucher.objects.filter(status=Voucher.Status.ACTIVE).count(),
        granted=sum(v.granted for v in every),
        used=sum(v.used for v in every),
        expired=sum(v.expired for v in every),
        voided=sum(v.voided for v in every),
        left=sum(v.left for v in every),
        top=every[:top],
    )
