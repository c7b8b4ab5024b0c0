"""Free-credit codes: redeemed once per user into a promotional lot with the voucher's expiry;
a wrong, inactive, expired, used-up or plan-trial code gets one message and changes nothing;
the redeem form is rate-limited per user and per address."""

from datetime import timedelta

import pytest
from django.core.cache import cache

from credits.models import CreditBalance, CreditLot, LedgerEntry
from payments.models import Voucher, VoucherRedemption
from payments.vouchers import (
    INVALID_CODE_MESSAGE,
    VoucherAlreadyRedeemed,
    VoucherInvalid,
    voucher_redeem,
)
from tests.credits.lots_helpers import db_now, wait_for_db_clock

from .voucher_helpers import make_voucher

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def test_a_code_in_any_case_becomes_a_promotional_lot_with_the_vouchers_credit_expiry(user):
    voucher = make_voucher("SPRING25", value=25, max_uses=100, credits_valid_days=30)

    redemption = voucher_redeem(user=user, code="  spring25 ")

    lot = CreditLot.objects.get(grant_entry=redemption.entry)
    assert (lot.category, lot.source, lot.original) == ("promotional", "voucher", 25)
    assert abs((lot.expires_at - lot.effective_at) - timedelta(days=30)) < timedelta(seconds=5)
    assert redemption.voucher == voucher and redemption.entry.metadata["voucher_id"] == voucher.pk
    assert balance(user) == 25
    voucher.refresh_from_db()
    assert (voucher.uses, voucher.status) == (1, "ACTIVE")
    assert redemption.credits == 25 and redemption.status == "REDEEMED"


def test_a_user_redeems_a_voucher_once(user):
    make_voucher("ONCE", value=10, max_uses=5)
    voucher_redeem(user=user, code="ONCE")

    with pytest.raises(VoucherAlreadyRedeemed):
        voucher_redeem(user=user, code="once")

    assert balance(user) == 10
    assert Voucher.objects.get(code="ONCE").uses == 1


def test_the_last_use_depletes_the_voucher_and_the_next_user_is_told_the_generic_message(
    make_user,
):
    make_voucher("LAST", value=5, max_uses=1)
    first, second = make_user(), make_user()
    voucher_redeem(user=first, code="LAST")

    with pytest.raises(VoucherInvalid) as refused:
        voucher_redeem(user=second, code="LAST")

    assert refused.value.message == INVALID_CODE_MESSAGE
    assert Voucher.objects.get(code="LAST").status == "DEPLETED"
    assert not CreditBalance.objects.filter(user=second, balance__gt=0).exists()


@pytest.mark.parametrize(
    "setup",
    ["unknown", "inactive", "expired", "used_up", "bonus_kind", "empty", "too_long"],
)
def test_every_unusable_code_gets_the_same_message_and_changes_nothing(make_user, setup):
    user = make_user()
    code = {"empty": "   ", "too_long": "X" * 80}.get(setup, "PROMO")
    if setup == "inactive":
        make_voucher("PROMO", status="INACTIVE")
    elif setup == "expired":
        make_voucher("PROMO", valid_until=db_now() - timedelta(seconds=1))
    elif setup == "used_up":
        make_voucher("PROMO", max_uses=1)
        voucher_redeem(user=make_user(), code="PROMO")
    elif setup == "bonus_kind":  # a purchase bonus is not free credits
        make_voucher("PROMO", kind="PERCENTAGE_BONUS", value=10)
    entries = LedgerEntry.objects.count()

    with pytest.raises(VoucherInvalid) as refused:
        voucher_redeem(user=user, code=code)

    assert refused.value.message == INVALID_CODE_MESSAGE
    assert LedgerEntry.objects.count() == entries
    assert not VoucherRedemption.objects.filter(user=user).exists()


def test_expiry_is_judged_by_the_database_clock_at_the_boundary(make_user):
    before, after = make_user(), make_user()
    ends = db_now() + timedelta(seconds=1)
    make_voucher("EDGE", value=3, max_uses=10, valid_until=ends)

    voucher_redeem(user=before, code="EDGE")  # still before the database's moment
    wait_for_db_clock(ends)
    with pytest.raises(VoucherInvalid):
        voucher_redeem(user=after, code="EDGE")

    assert Voucher.objects.get(code="EDGE").uses == 1
    voucher = Voucher.objects.get(code="EDGE")
    assert voucher.state(db_now()) == "EXPIRED"


def test_a_plan_trial_code_does_not_redeem_as_free_credits(user, plans):
    make_voucher("TRIAL14", kind="SUBSCRIPTION_TRIAL", value=14, plan_code="pro")
    with pytest.raises(VoucherInvalid) as bad:
        voucher_redeem(user=user, code="trial14")
    assert bad.value.message == INVALID_CODE_MESSAGE
    assert Voucher.objects.get(code="TRIAL14").uses == 0


def test_the_database_refuses_uses_past_the_maximum_whatever_writes_them():
    from django.db import IntegrityError

    voucher = make_voucher("CAP", max_uses=2)
    with pytest.raises(IntegrityError):
        Voucher.objects.filter(pk=voucher.pk).update(uses=3)


# --- the pages ------------------------------------------------------------------------------


def test_the_redeem_page_turns_a_code_into_credits_and_says_so(client, user):
    make_voucher("WELCOME", value=40, max_uses=100, credits_valid_days=10)
    client.force_login(user)

    response = client.post("/billing/redeem/", {"code": "welcome"}, follow=True)

    body = response.content.decode()
    assert response.redirect_chain[-1][0] == "/credits/"
    assert "Code accepted: 40 credits added." in body and "can be spent until" in body
    assert balance(user) == 40


def test_the_credits_page_has_the_code_field(client, user):
    client.force_login(user)
    body = client.get("/credits/").content.decode()
    assert 'action="/billing/redeem/"' in body and 'name="code"' in body


def test_a_bad_code_on_the_page_is_one_message_and_nothing_more(client, user):
    make_voucher("REAL", max_uses=1, value=5)
    voucher_redeem(user=client_user_other(), code="REAL")  # used up by someone else
    client.force_login(user)

    answers = [client.post("/billing/redeem/", {"code": code}) for code in ("REAL", "NOPE")]

    assert [a.status_code for a in answers] == [400, 400]
    for answer in answers:
        assert INVALID_CODE_MESSAGE in answer.content.decode()
    assert not CreditBalance.objects.filter(user=user, balance__gt=0).exists()


def client_user_other():
    from accounts.models import User

    return User.objects.create_user("someone-else@example.com", "x")


def test_the_redeem_form_is_rate_limited_per_user(client, make_user, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "voucher_redeem": "3/h/user"}
    make_voucher("GOOD", value=7, max_uses=10)
    guesser, other = make_user(), make_user()
    client.force_login(guesser)

    tries = [client.post("/billing/redeem/", {"code": f"GUESS{i}"}).status_code for i in range(3)]
    blocked = client.post("/billing/redeem/", {"code": "GOOD"})

    assert tries == [400, 400, 400]
    assert blocked.status_code == 429 and "Too many codes tried" in blocked.content.decode()
    assert not VoucherRedemption.objects.filter(user=guesser).exists()  # not even a good code
    client.force_login(other)  # another user is not held back by the first one's guesses
    assert client.post("/billing/redeem/", {"code": "GOOD"}).status_code == 302


def test_the_redeem_form_is_rate_limited_per_address(client, make_user, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "voucher_redeem": "2/h/ip"}
    users = [make_user() for _ in range(3)]

    answers = []
    for u in users:  # one address, many accounts
        client.force_login(u)
        answers.append(client.post("/billing/redeem/", {"code": "GUESS"}).status_code)

    assert answers == [400, 400, 429]
    other_address = client.post("/billing/redeem/", {"code": "GUESS"}, REMOTE_ADDR="10.1.2.3")
    assert other_address.status_code == 400


def test_the_redeem_page_needs_a_login(client):
    response = client.post("/billing/redeem/", {"code": "X"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
