"""Vouchers in the staff admin: create, edit (never the code once used), deactivate, generate a
batch of single-use codes and download them as CSV, see redemptions and what the credits
became; every action leaves a staff action row, refusals too."""

import csv
import io
import re

import pytest
from django.core.cache import cache

from core.audit import AuditAction
from credits.models import AuditLog
from credits.services import credits_spend, lots_expire_due
from payments.models import Voucher
from payments.vouchers import voucher_redeem
from tests.credits.lots_helpers import lapse, lot_of
from tests.payments.voucher_helpers import make_voucher

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/payments/voucher/"
MANAGE = ("payments.add_voucher", "payments.change_voucher", "payments.view_voucher")


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()


@pytest.fixture
def manager(make_staff):
    return make_staff(*MANAGE)


def form_data(**values):
    data = {
        "code": "summer",
        "kind": "FIXED_TOKENS",
        "value": "30",
        "plan_code": "",
        "max_uses": "100",
        "valid_until_0": "",
        "valid_until_1": "",
        "credits_valid_days": "14",
        "status": "ACTIVE",
        "note": "Summer mailing",
        "audit_note": "Campaign 12",
        "redemptions-TOTAL_FORMS": "0",
        "redemptions-INITIAL_FORMS": "0",
        "redemptions-MIN_NUM_FORMS": "0",
        "redemptions-MAX_NUM_FORMS": "0",
    }
    data.update(values)
    return data


def staff_rows(action):
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_staff_create_a_voucher_and_the_action_is_audited(client, manager):
    client.force_login(manager)

    response = client.post(f"{CHANGELIST}add/", form_data())

    assert response.status_code == 302, response.content.decode()[:2000]
    voucher = Voucher.objects.get()
    assert (voucher.code, voucher.value, voucher.created_by) == ("SUMMER", 30, manager)
    [row] = staff_rows(AuditAction.STAFF_VOUCHER_CREATE)
    assert row.actor == manager and row.success
    assert row.metadata["reason"] == "Campaign 12" and row.metadata["code"] == "SUMMER"


def test_a_plan_trial_names_an_existing_plan(client, manager):
    client.force_login(manager)

    response = client.post(
        f"{CHANGELIST}add/", form_data(kind="SUBSCRIPTION_TRIAL", plan_code="gold", value="14")
    )
    assert response.status_code == 200
    assert "A plan trial needs the code of an existing plan." in response.content.decode()
    assert not Voucher.objects.exists()

    response = client.post(
        f"{CHANGELIST}add/", form_data(kind="SUBSCRIPTION_TRIAL", plan_code="pro", value="14")
    )
    assert response.status_code == 302
    voucher = Voucher.objects.get()
    assert (voucher.kind, voucher.plan_code, voucher.value) == ("SUBSCRIPTION_TRIAL", "pro", 14)


def test_the_code_cannot_change_once_used_but_the_rest_can_and_is_audited(client, manager, user):
    voucher = make_voucher("USED", value=5, max_uses=3)
    voucher_redeem(user=user, code="used")
    client.force_login(manager)

    page = client.get(f"{CHANGELIST}{voucher.pk}/change/").content.decode()
    assert 'name="code"' not in page  # shown, not editable
    assert user.email in page  # its redemptions are listed
    assert "1 redemptions · 5 granted" in page
    response = client.post(
        f"{CHANGELIST}{voucher.pk}/change/", form_data(code="OTHER", max_uses="10", value="5")
    )

    assert response.status_code == 302
    voucher.refresh_from_db()
    assert (voucher.code, voucher.max_uses) == ("USED", 10)
    [row] = staff_rows(AuditAction.STAFF_VOUCHER_EDIT)
    assert row.metadata["changed"]["max_uses"] == [3, 10]
    assert "code" not in row.metadata["changed"]


def test_the_maximum_cannot_go_below_the_uses_taken(client, manager, make_user):
    voucher = make_voucher("FEW", value=5, max_uses=3)
    for _ in range(2):
        voucher_redeem(user=make_user(), code="FEW")
    client.force_login(manager)

    response = client.post(
        f"{CHANGELIST}{voucher.pk}/change/", form_data(code="FEW", max_uses="1", value="5")
    )

    assert response.status_code == 200
    assert "2 uses are taken already" in response.content.decode()
    voucher.refresh_from_db()
    assert voucher.max_uses == 3
    assert not staff_rows(AuditAction.STAFF_VOUCHER_EDIT)


def test_deactivating_stops_the_code_and_is_audited(client, manager, user):
    voucher = make_voucher("STOPME", value=5, max_uses=10)
    client.force_login(manager)
    response = client.post(
        CHANGELIST,
        {
            "action": "deactivate",
            "_selected_action": [voucher.pk],
            "confirm": "yes",
            "reason": "Leaked on a forum",
            "submission_key": "0" * 32,
        },
    )

    assert response.status_code == 302
    voucher.refresh_from_db()
    assert voucher.status == "INACTIVE"
    [row] = staff_rows(AuditAction.STAFF_VOUCHER_DEACTIVATE)
    assert row.metadata["reason"] == "Leaked on a forum"
    from payments.vouchers import VoucherInvalid

    with pytest.raises(VoucherInvalid):
        voucher_redeem(user=user, code="stopme")


def test_bulk_generation_makes_unique_unguessable_single_use_codes_downloadable_as_csv(
    client, manager
):
    client.force_login(manager)

    response = client.post(
        f"{CHANGELIST}generate/",
        {
            "count": "50",
            "prefix": "fair",
            "kind": "FIXED_TOKENS",
            "value": "10",
            "credits_valid_days": "30",
            "reason": "Trade fair handouts",
        },
        follow=True,
    )

    body = response.content.decode()
    assert "50 codes generated in batch FAIR-" in body
    vouchers = list(Voucher.objects.all())
    assert len(vouchers) == 50 and len({v.code for v in vouchers}) == 50
    assert all(
        re.fullmatch(r"FAIR-[2-9A-HJKMNP-Z]{4}(-[2-9A-HJKMNP-Z]{4}){2}", v.code) for v in vouchers
    )
    assert {(v.max_uses, v.kind, v.value) for v in vouchers} == {(1, "FIXED_TOKENS", 10)}
    [row] = staff_rows(AuditAction.STAFF_VOUCHER_GENERATE)
    assert row.metadata["count"] == 50 and row.metadata["reason"] == "Trade fair handouts"

    csv_url = re.search(r'href="(/admin/payments/voucher/batch/[^"]+/codes\.csv)"', body).group(1)
    download = client.get(csv_url)
    assert download["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert sorted(r["code"] for r in rows) == sorted(v.code for v in vouchers)
    assert staff_rows(AuditAction.STAFF_VOUCHER_EXPORT)[0].actor == manager


def test_generation_refuses_plan_trials_without_a_plan_and_too_many(client, manager):
    client.force_login(manager)
    for data in (
        {"count": "5", "kind": "SUBSCRIPTION_TRIAL", "value": "14", "reason": "x"},
        {
            "count": "5",
            "kind": "SUBSCRIPTION_TRIAL",
            "value": "14",
            "plan_code": "x",
            "reason": "x",
        },
        {"count": "999999", "kind": "FIXED_TOKENS", "value": "14", "reason": "x"},
    ):
        response = client.post(f"{CHANGELIST}generate/", data)
        assert response.status_code == 200
    assert not Voucher.objects.exists()


def test_staff_without_the_permission_cannot_generate_or_download(client, make_staff):
    viewer = make_staff("payments.view_voucher")
    client.force_login(viewer)
    assert client.get(f"{CHANGELIST}generate/").status_code == 403
    assert client.get(f"{CHANGELIST}batch/X/codes.csv").status_code == 403


def test_credits_by_voucher_count_granted_used_expired_and_left(client, manager, make_user):
    voucher = make_voucher("COUNTME", value=10, max_uses=5)
    spender, idler, lapsed = make_user(), make_user(), make_user()
    for u in (spender, idler, lapsed):
        voucher_redeem(user=u, code="COUNTME")
    credits_spend(user=spender, amount=4, idempotency_key="count:spend")
    lapse(lot_of(Voucher.objects.get().redemptions.get(user=lapsed).entry))
    lots_expire_due()
    client.force_login(manager)

    page = client.get(f"{CHANGELIST}credits/").content.decode()

    assert "COUNTME" in page
    row = re.search(r"COUNTME</a>.*?</tr>", page, re.S).group(0)
    cells = re.findall(r'class="num">([\d,]+)<', row)
    assert cells == ["30", "4", "10", "0", "16"]  # granted, used, expired, voided, left
    assert voucher.pk


def test_the_dashboard_shows_voucher_totals(client, make_staff, make_user):
    make_voucher("DASH", value=7, max_uses=5)
    voucher_redeem(user=make_user(), code="DASH")
    staff = make_staff("backoffice.view_finance")
    client.force_login(staff)

    page = client.get("/staff/dashboard/").content.decode()

    section = page[page.index('data-testid="voucher-totals"') :]
    assert "7 granted" in section and "DASH" in section
