"""Plan-trial codes: entered when subscribing, checked against the plan, reserved with the
membership checkout, given back when it ends unpaid, redeemed when the membership starts,
once per user and plan; the trial's plan credits are promotional."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse

from credits.models import CreditLot
from payments.models import (
    SandboxSubscription,
    Subscription,
    SubscriptionPlan,
    Voucher,
    VoucherRedemption,
)
from payments.providers.sandbox_subscriptions import (
    sandbox_abandon,
    sandbox_cancel,
    sandbox_subscribe,
)
from payments.subscriptions import subscription_start
from payments.vouchers import (
    TRIAL_INVALID_MESSAGE,
    TRIAL_PAYPAL_MESSAGE,
    TRIAL_USED_MESSAGE,
    VoucherInvalid,
    VoucherRejected,
    VoucherTrialUsed,
    voucher_create,
    vouchers_generate,
)

from .voucher_helpers import make_voucher

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plans")]


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def sandbox_subs(sandbox_only, settings):
    # Nothing listens here: the sandbox hands its signed events to the pipeline in-process.
    settings.PAYMENTS_SANDBOX_WEBHOOK_URL = "http://127.0.0.1:9/webhooks/sandbox/"


@pytest.fixture
def events(django_capture_on_commit_callbacks):
    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


def start(user, code, plan="pro", provider="SANDBOX"):
    return subscription_start(
        user=user,
        plan=SubscriptionPlan.objects.get(code=plan),
        provider_name=provider,
        success_url="http://testserver/billing/plan/",
        cancel_url="http://testserver/pricing/",
        voucher_code=code,
    )


def token_of(checkout) -> str:
    return checkout.redirect_url.rstrip("/").split("/")[-1]


def test_a_trial_code_starts_the_plan_free_for_its_days_with_promotional_credits(
    user, sandbox_subs, events
):
    voucher = make_voucher("PROTRIAL", kind="SUBSCRIPTION_TRIAL", value=14, plan_code="pro")

    sub, checkout = start(user, " protrial ")
    reserved = VoucherRedemption.objects.get(voucher=voucher)
    assert (reserved.status, reserved.subscription_id, reserved.user_id) == (
        "RESERVED",
        sub.pk,
        user.pk,
    )
    assert SandboxSubscription.objects.get(token=token_of(checkout)).trial_days == 14
    voucher.refresh_from_db()
    assert (voucher.uses, voucher.status) == (1, "DEPLETED")

    events(sandbox_subscribe, token=token_of(checkout))

    sub.refresh_from_db()
    assert sub.status == "ACTIVE"
    assert sub.current_period_end - sub.current_period_start == timedelta(days=14)
    redemption = VoucherRedemption.objects.get(voucher=voucher)
    assert redemption.status == "REDEEMED" and redemption.redeemed_at is not None
    lot = CreditLot.objects.get(user=user)
    assert (lot.category, lot.original, lot.cost_basis) == ("promotional", 300, 0)
    assert lot.expires_at == sub.current_period_end


def test_a_checkout_cancelled_unpaid_gives_the_trial_use_back(make_user, sandbox_subs, events):
    voucher = make_voucher("ONETRIAL", kind="SUBSCRIPTION_TRIAL", value=7, plan_code="pro")
    first, other = make_user(), make_user()

    sub, checkout = start(first, "ONETRIAL")
    with pytest.raises(VoucherInvalid):  # the only use is reserved
        start(other, "ONETRIAL")
    assert not Subscription.objects.filter(user=other).exists()  # nothing half-made

    events(sandbox_abandon, token=token_of(checkout))

    sub.refresh_from_db()
    assert sub.status == "ENDED"
    assert VoucherRedemption.objects.get(subscription=sub).status == "RELEASED"
    voucher.refresh_from_db()
    assert (voucher.uses, voucher.status) == (0, "ACTIVE")
    assert not CreditLot.objects.filter(user=first).exists()

    # The use is free again: someone else, or the same buyer later, can take it.
    other_sub, _ = start(other, "onetrial")
    assert VoucherRedemption.objects.get(subscription=other_sub).status == "RESERVED"


def test_a_new_checkout_given_up_for_another_releases_the_first_reservation(user, sandbox_subs):
    voucher = make_voucher("SWAP", kind="SUBSCRIPTION_TRIAL", value=7, plan_code="pro", max_uses=5)
    first, _ = start(user, "SWAP")
    second, _ = start(user, "SWAP")

    statuses = dict(
        VoucherRedemption.objects.filter(voucher=voucher).values_list("subscription", "status")
    )
    assert statuses == {first.pk: "RELEASED", second.pk: "RESERVED"}
    voucher.refresh_from_db()
    assert voucher.uses == 1


def test_a_trial_is_once_per_user_and_plan_whichever_code(user, sandbox_subs, events):
    make_voucher("TRIAL-A", kind="SUBSCRIPTION_TRIAL", value=7, plan_code="pro", max_uses=10)
    make_voucher("TRIAL-B", kind="SUBSCRIPTION_TRIAL", value=30, plan_code="pro", max_uses=10)
    sub, checkout = start(user, "TRIAL-A")
    events(sandbox_subscribe, token=token_of(checkout))
    events(sandbox_cancel, token=token_of(checkout))
    sub.refresh_from_db()
    assert sub.status == "ENDED"

    for code in ("TRIAL-A", "trial-b"):
        with pytest.raises(VoucherTrialUsed) as refused:
            start(user, code)
        assert refused.value.message == TRIAL_USED_MESSAGE
    assert Subscription.objects.filter(user=user).count() == 1
    assert Voucher.objects.get(code="TRIAL-B").uses == 0

    # Without a code the plan can be bought again.
    again, _ = start(user, "")
    assert again.status == "INCOMPLETE"


def test_a_code_for_another_plan_or_of_another_kind_is_refused_with_one_message(user, sandbox_subs):
    make_voucher("BASICTRIAL", kind="SUBSCRIPTION_TRIAL", value=7, plan_code="basic")
    make_voucher("FREE10", value=10)
    for code in ("BASICTRIAL", "FREE10", "NOSUCHCODE"):
        with pytest.raises(VoucherInvalid) as refused:
            start(user, code)
        assert refused.value.message == TRIAL_INVALID_MESSAGE
    assert not Subscription.objects.exists()
    assert Voucher.objects.get(code="BASICTRIAL").uses == 0


def test_paypal_cannot_start_a_trial(user, sandbox_subs):
    voucher = make_voucher("PPTRIAL", kind="SUBSCRIPTION_TRIAL", value=7, plan_code="pro")
    with pytest.raises(VoucherInvalid) as refused:
        start(user, "PPTRIAL", provider="PAYPAL")
    assert refused.value.message == TRIAL_PAYPAL_MESSAGE
    voucher.refresh_from_db()
    assert voucher.uses == 0 and not Subscription.objects.exists()


def test_staff_make_trial_codes_for_existing_plans_only(staff_user):
    with pytest.raises(VoucherRejected, match="existing plan"):
        voucher_create(
            staff_user=staff_user, code="NOPE", kind="SUBSCRIPTION_TRIAL", value=14, plan_code="x"
        )
    with pytest.raises(VoucherRejected, match="730 days"):
        voucher_create(
            staff_user=staff_user,
            code="LONG",
            kind="SUBSCRIPTION_TRIAL",
            value=1000,
            plan_code="pro",
        )
    with pytest.raises(VoucherRejected, match="Only a plan trial"):
        voucher_create(
            staff_user=staff_user, code="FREE", kind="FIXED_TOKENS", value=5, plan_code="pro"
        )
    made = voucher_create(
        staff_user=staff_user, code="pro14", kind="SUBSCRIPTION_TRIAL", value=14, plan_code="pro"
    )
    assert (made.code, made.plan_code, made.value) == ("PRO14", "pro", 14)

    _, batch = vouchers_generate(
        staff_user=staff_user,
        count=3,
        prefix="TRY",
        kind="SUBSCRIPTION_TRIAL",
        value=7,
        plan_code="pro",
    )
    assert {v.plan_code for v in batch} == {"pro"} and len(batch) == 3


def test_the_subscribe_form_takes_a_trial_code_through_the_sandbox(
    client, user, sandbox_subs, django_capture_on_commit_callbacks
):
    make_voucher("WELCOME-PRO", kind="SUBSCRIPTION_TRIAL", value=10, plan_code="pro")
    client.force_login(user)

    page = client.get(reverse("payments:pricing"))
    assert 'name="voucher_code"' in page.content.decode()

    wrong = client.post(
        reverse("payments:subscribe"),
        {"plan": "basic", "provider": "SANDBOX", "voucher_code": "welcome-pro"},
        follow=True,
    )
    assert TRIAL_INVALID_MESSAGE in wrong.content.decode()
    assert not Subscription.objects.exists()

    answer = client.post(
        reverse("payments:subscribe"),
        {"plan": "pro", "provider": "SANDBOX", "voucher_code": "welcome-pro"},
    )
    assert answer.status_code == 303
    checkout = client.get(answer["Location"])
    assert checkout.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(answer["Location"], {"action": "subscribe"})
    assert done.status_code == 303

    billing = client.get(done["Location"])
    assert billing.status_code == 200
    sub = Subscription.objects.get(user=user)
    assert sub.status == "ACTIVE"
    assert sub.current_period_end - sub.current_period_start == timedelta(days=10)
    assert VoucherRedemption.objects.get(subscription=sub).status == "REDEEMED"
    assert CreditLot.objects.get(user=user).category == "promotional"
