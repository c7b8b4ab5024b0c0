"""Purchase bonus: a code entered when buying a pack reserves its use with the order, grants a
promotional bonus lot only when the payment completes, gives the use back when the checkout is
cancelled or expires, and is voided with the purchase when it is refunded."""

import pytest
from django.core.cache import cache

from credits.models import CreditBalance, CreditLot, LedgerEntry
from payments.models import Order, Voucher, VoucherRedemption
from payments.vouchers import INVALID_CODE_MESSAGE

from .voucher_helpers import make_voucher

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def bonus_voucher(db):
    return make_voucher("EXTRA20", kind=Voucher.Kind.PERCENTAGE_BONUS, value=20, max_uses=1)


def buy_with_code(client, user, package, code="extra20"):
    client.force_login(user)
    return client.post("/billing/buy/", {"package": package.pk, "voucher_code": code})


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def test_the_use_is_reserved_at_checkout_and_the_bonus_granted_only_when_paid(
    client, user, packages, fake_stripe, deliver, bonus_voucher
):
    response = buy_with_code(client, user, packages["Basic"])  # 50 credits, +20 %

    assert response.status_code == 303
    order = Order.objects.get(user=user)
    redemption = VoucherRedemption.objects.get(order=order)
    bonus_voucher.refresh_from_db()
    assert (redemption.status, redemption.credits) == ("RESERVED", 10)
    assert (bonus_voucher.uses, bonus_voucher.status) == (1, "DEPLETED")
    assert not LedgerEntry.objects.filter(user=user).exists()  # nothing before the payment

    deliver(
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    )

    redemption.refresh_from_db()
    assert redemption.status == "REDEEMED"
    assert balance(user) == 60
    lot = CreditLot.objects.get(grant_entry=redemption.entry)
    assert (lot.category, lot.source, lot.original) == ("promotional", "bonus", 10)
    assert (lot.source_type, lot.source_id) == ("payments.order", order.pk)
    # The success page says so.
    page = client.get(f"/billing/orders/{order.pk}/success/").content.decode()
    assert 'data-testid="status-bonus"' in page and "+10" in page


def test_a_cancelled_checkout_gives_the_use_back_for_someone_else(
    client, user, make_user, packages, fake_stripe, bonus_voucher
):
    buy_with_code(client, user, packages["Basic"])
    order = Order.objects.get(user=user)

    client.get(f"/billing/orders/{order.pk}/cancel/")

    bonus_voucher.refresh_from_db()
    assert (bonus_voucher.uses, bonus_voucher.status) == (0, "ACTIVE")
    assert VoucherRedemption.objects.get(order=order).status == "RELEASED"
    client.get(f"/billing/orders/{order.pk}/cancel/")  # again: released once
    bonus_voucher.refresh_from_db()
    assert bonus_voucher.uses == 0
    other = make_user()
    assert buy_with_code(client, other, packages["Basic"]).status_code == 303
    assert VoucherRedemption.objects.get(user=other).status == "RESERVED"


def test_an_expired_checkout_gives_the_use_back(
    client, user, packages, fake_stripe, deliver, bonus_voucher
):
    buy_with_code(client, user, packages["Basic"])
    order = Order.objects.get(user=user)

    deliver(
        fake_stripe.event("checkout.session.expired", fake_stripe.expire(order.provider_order_id))
    )

    order.refresh_from_db()
    bonus_voucher.refresh_from_db()
    assert order.status == "EXPIRED" and bonus_voucher.uses == 0
    assert VoucherRedemption.objects.get(order=order).status == "RELEASED"


def test_a_payment_after_the_cancel_claims_the_use_again_when_one_is_left(
    client, user, packages, fake_stripe, deliver, bonus_voucher
):
    buy_with_code(client, user, packages["Basic"])
    order = Order.objects.get(user=user)
    client.get(f"/billing/orders/{order.pk}/cancel/")

    deliver(
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    )

    bonus_voucher.refresh_from_db()
    assert bonus_voucher.uses == 1
    assert VoucherRedemption.objects.get(order=order).status == "REDEEMED"
    assert balance(user) == 60


def test_a_payment_after_the_cancel_gets_no_bonus_when_the_use_went_to_someone_else(
    client, user, make_user, packages, fake_stripe, deliver, bonus_voucher
):
    buy_with_code(client, user, packages["Basic"])
    order = Order.objects.get(user=user)
    client.get(f"/billing/orders/{order.pk}/cancel/")
    buy_with_code(client, make_user(), packages["Basic"])  # the one use, taken

    deliver(
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    )

    order.refresh_from_db()
    bonus_voucher.refresh_from_db()
    assert order.status == "COMPLETED" and balance(user) == 50  # the purchase, no bonus
    assert bonus_voucher.uses == 1
    assert VoucherRedemption.objects.get(order=order).status == "RELEASED"


def test_a_refund_of_the_purchase_voids_the_bonus_with_it(
    client, user, packages, fake_stripe, deliver, bonus_voucher
):
    buy_with_code(client, user, packages["Basic"])
    order = Order.objects.get(user=user)
    deliver(
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.provider_order_id))
    )
    order.refresh_from_db()
    assert balance(user) == 60

    fake_stripe.refund(order.provider_payment_id, 999)
    deliver(fake_stripe.event("charge.refunded", fake_stripe.charge_for(order.provider_payment_id)))

    order.refresh_from_db()
    assert order.status == "REFUNDED"
    assert balance(user) == 0
    void = LedgerEntry.objects.get(user=user, kind="VOID")
    assert void.amount == -10
    lot = CreditLot.objects.get(source="bonus", source_id=order.pk)
    assert lot.remaining == 0


def test_a_bad_code_at_checkout_creates_no_order_and_charges_nothing(
    client, user, packages, fake_stripe
):
    make_voucher("FREE5", kind=Voucher.Kind.FIXED_TOKENS, value=5)  # not a purchase bonus

    for code in ("NOPE", "free5"):
        response = buy_with_code(client, user, packages["Basic"], code=code)
        assert response.status_code == 302 and response["Location"] == "/billing/pricing/"
        page = client.get("/billing/pricing/").content.decode()
        assert INVALID_CODE_MESSAGE in page and "Nothing was charged" in page

    assert not Order.objects.exists()
    assert not fake_stripe.calls("POST", "/v1/checkout/sessions")


def test_one_bonus_per_user_even_across_orders(
    client, user, packages, fake_stripe, deliver, bonus_voucher
):
    Voucher.objects.filter(pk=bonus_voucher.pk).update(max_uses=5)
    buy_with_code(client, user, packages["Basic"])

    again = buy_with_code(client, user, packages["Pro"])

    assert again.status_code == 302
    assert "already used this code" in client.get("/billing/pricing/").content.decode()
    assert Order.objects.filter(user=user).count() == 1


def test_a_checkout_the_provider_could_not_open_gives_the_use_back(
    client, user, packages, fake_stripe, bonus_voucher
):
    fake_stripe.fail_next("POST", "/v1/checkout/sessions", status=500)

    response = buy_with_code(client, user, packages["Basic"])

    assert response.status_code == 302
    order = Order.objects.get(user=user)
    bonus_voucher.refresh_from_db()
    assert order.status == "FAILED" and bonus_voucher.uses == 0
    assert VoucherRedemption.objects.get(order=order).status == "RELEASED"
    assert buy_with_code(client, user, packages["Basic"]).status_code == 303  # may try again
