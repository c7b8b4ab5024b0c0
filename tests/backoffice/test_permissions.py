"""Who may do what: non-staff get no admin at all; staff without a permission neither see nor
run the refund and adjust actions."""

import pytest
from django.urls import reverse

from credits.models import CreditBalance, LedgerEntry, LedgerKind
from payments.models import Order, Refund

from .conftest import new_key, post_action


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url_name",
    [
        "admin:index",
        "admin:credits_ledgerentry_changelist",
        "admin:payments_order_changelist",
        "admin:accounts_user_changelist",
    ],
)
def test_non_staff_get_no_admin(client, user, url_name):
    client.force_login(user)
    response = client.get(reverse(url_name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url_name", ["backoffice:dashboard", "backoffice:export_ledger", "backoffice:export_orders"]
)
def test_non_staff_and_anonymous_get_no_staff_pages(client, user, url_name):
    anonymous = client.get(reverse(url_name))
    client.force_login(user)
    customer = client.get(reverse(url_name))
    for response in (anonymous, customer):
        assert response.status_code == 302 and response["Location"].startswith(
            reverse("admin:login")
        )


@pytest.mark.django_db
def test_non_staff_cannot_adjust_by_posting(client, make_user):
    customer = make_user(credits=10)
    intruder = make_user()
    client.force_login(intruder)
    response = client.post(
        reverse("admin:accounts_user_adjust_credits", args=[customer.pk]),
        {"confirm": "yes", "submission_key": new_key(), "amount": "1000", "reason": "me"},
    )
    assert response.status_code == 302
    assert CreditBalance.objects.get(user=customer).balance == 10


@pytest.mark.django_db
def test_staff_without_adjust_permission_neither_sees_nor_runs_it(client, make_user, make_staff):
    customer = make_user(credits=10)
    viewer = make_staff("accounts.view_user", "accounts.change_user")
    client.force_login(viewer)

    changelist = client.get(reverse("admin:accounts_user_changelist"))
    change = client.get(reverse("admin:accounts_user_change", args=[customer.pk]))
    assert 'value="adjust_credits"' not in changelist.content.decode()
    assert (
        reverse("admin:accounts_user_adjust_credits", args=[customer.pk])
        not in change.content.decode()
    )

    direct = client.get(reverse("admin:accounts_user_adjust_credits", args=[customer.pk]))
    assert direct.status_code == 403
    posted = client.post(
        reverse("admin:accounts_user_adjust_credits", args=[customer.pk]),
        {"confirm": "yes", "submission_key": new_key(), "amount": "50", "reason": "x"},
    )
    assert posted.status_code == 403
    post_action(client, "accounts_user", "adjust_credits", [customer.pk], amount="50", reason="x")
    assert CreditBalance.objects.get(user=customer).balance == 10
    assert not LedgerEntry.objects.filter(user=customer, kind=LedgerKind.ADJUSTMENT).exists()


@pytest.mark.django_db
def test_staff_without_refund_permission_neither_sees_nor_runs_it(
    client, make_user, make_staff, make_order
):
    order = make_order(make_user(credits=100))
    viewer = make_staff("payments.view_order")
    client.force_login(viewer)

    changelist = client.get(reverse("admin:payments_order_changelist"))
    change = client.get(reverse("admin:payments_order_change", args=[order.pk]))
    assert changelist.status_code == 200 and change.status_code == 200
    assert 'value="refund"' not in changelist.content.decode()
    assert reverse("admin:payments_order_refund", args=[order.pk]) not in change.content.decode()

    assert client.get(reverse("admin:payments_order_refund", args=[order.pk])).status_code == 403
    assert (
        client.post(
            reverse("admin:payments_order_refund", args=[order.pk]),
            {"confirm": "yes", "submission_key": new_key(), "reason": "x"},
        ).status_code
        == 403
    )
    post_action(client, "payments_order", "refund", [order.pk], reason="x")
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and order.amount_refunded == 0
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_staff_with_permission_sees_the_actions(client, make_user, make_staff, make_order):
    customer = make_user(credits=100)
    order = make_order(customer)
    staff = make_staff(
        "payments.view_order",
        "payments.refund_order",
        "accounts.view_user",
        "credits.adjust_credits",
    )
    client.force_login(staff)

    assert (
        'value="refund"' in client.get(reverse("admin:payments_order_changelist")).content.decode()
    )
    assert (
        reverse("admin:payments_order_refund", args=[order.pk])
        in client.get(reverse("admin:payments_order_change", args=[order.pk])).content.decode()
    )
    assert (
        'value="adjust_credits"'
        in client.get(reverse("admin:accounts_user_changelist")).content.decode()
    )
    assert (
        client.get(reverse("admin:accounts_user_adjust_credits", args=[customer.pk])).status_code
        == 200
    )


@pytest.mark.django_db
def test_staff_without_view_permission_cannot_export(client, make_staff):
    client.force_login(make_staff("backoffice.view_finance"))
    assert client.get(reverse("backoffice:dashboard")).status_code == 200
    assert client.get(reverse("backoffice:export_ledger")).status_code == 403
    assert client.get(reverse("backoffice:export_orders")).status_code == 403


@pytest.mark.django_db
def test_revenue_is_shown_only_to_staff_with_the_finance_permission(
    client, make_user, make_staff, make_order
):
    make_order(make_user(), amount="42.00")
    support = make_staff(
        "credits.view_ledgerentry",
        "payments.view_order",
        "accounts.view_user",
        email="support@example.com",
    )
    client.force_login(support)

    for url_name in (
        "backoffice:dashboard",
        "backoffice:export_ledger",
        "backoffice:export_orders",
    ):
        response = client.get(reverse(url_name))
        assert response.status_code == 403, url_name
        assert b"42.00" not in response.content
    assert 'data-testid="dashboard-link"' not in client.get(reverse("admin:index")).content.decode()

    finance = make_staff(
        "backoffice.view_finance", "payments.view_order", email="finance@example.com"
    )
    client.force_login(finance)
    assert 'data-testid="dashboard-link"' in client.get(reverse("admin:index")).content.decode()
    assert "42.00" in client.get(reverse("backoffice:dashboard")).content.decode()
    orders = client.get(reverse("backoffice:export_orders"))
    assert orders.status_code == 200 and b"42.00" in b"".join(orders.streaming_content)
