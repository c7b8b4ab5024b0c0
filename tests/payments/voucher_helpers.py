"""Vouchers for the tests, made the way staff make them (through the service)."""

from payments.models import Voucher
from payments.vouchers import voucher_create


def make_voucher(
    code: str = "SPRING25", *, kind: str = Voucher.Kind.FIXED_TOKENS, value: int = 25, **extra
) -> Voucher:
    from accounts.models import User

    staff = User.objects.filter(is_staff=True).first() or User.objects.create_user(
        f"voucher-staff-{code.lower()}@example.com", "x", is_staff=True
    )
    return voucher_create(staff_user=staff, code=code, kind=kind, value=value, **extra)
