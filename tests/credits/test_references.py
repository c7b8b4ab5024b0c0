"""A ledger entry names what caused it by (source_type, source_id): credits holds no foreign key
to the apps above it, and the customer still reads which order or job an entry belongs to."""

import csv
import io
from decimal import Decimal

import pytest
from django.apps import apps
from django.urls import reverse

from credits.models import LedgerEntry, LedgerKind
from credits.references import Source, source_types
from credits.services import credits_grant, credits_refund, credits_spend
from generations.charges import JOB_SOURCE
from payments.ledger import ORDER_SOURCE, order_ledger_entries, order_source
from payments.models import CreditPackage, Order
from payments.subscriptions import PERIOD_SOURCE

pytestmark = pytest.mark.django_db

UPPER_APPS = {"payments", "generations", "backoffice"}


@pytest.fixture
def order(make_user):
    user = make_user(credits=0)
    package = CreditPackage.objects.create(name="Small", credits=50, price=Decimal("5.00"))
    return Order.objects.create(
        user=user,
        package=package,
        amount=Decimal("5.00"),
        currency="USD",
        credits=50,
        provider=Order.Provider.SANDBOX,
    )


def test_credits_models_hold_no_relation_to_the_apps_above_them():
    related = {
        (model.__name__, field.name, field.related_model._meta.app_label)
        for model in apps.get_app_config("credits").get_models()
        for field in model._meta.get_fields()
        if field.is_relation and field.related_model is not None and field.concrete
    }
    assert [r for r in related if r[2] in UPPER_APPS] == []


def test_the_upper_apps_register_their_source_types():
    assert [(t.name, t.label, t.model._meta.label, t.export_column) for t in source_types()] == [
        (JOB_SOURCE, "job", "generations.GenerationJob", "job_id"),
        (ORDER_SOURCE, "order", "payments.Order", "order_id"),
        (
            PERIOD_SOURCE,
            "subscription invoice",
            "payments.SubscriptionPeriod",
            "subscription_period_id",
        ),
    ]


def test_an_entry_and_its_refund_name_their_source_and_are_found_by_it(order):
    grant = credits_grant(
        user=order.user,
        amount=50,
        kind=LedgerKind.PURCHASE,
        idempotency_key="ref:grant",
        source=order_source(order),
    )
    spend = credits_spend(
        user=order.user, amount=7, idempotency_key="ref:spend", source=Source(JOB_SOURCE, 41)
    )
    refund = credits_refund(spend=spend, idempotency_key="ref:refund", amount=2)

    stored = {e.pk: e.source for e in LedgerEntry.objects.all()}
    assert stored == {
        grant.pk: order_source(order),
        spend.pk: Source(JOB_SOURCE, 41),
        refund.pk: Source(JOB_SOURCE, 41),
    }
    assert list(order_ledger_entries(order)) == [grant]
    assert [e.pk for e in LedgerEntry.objects.caused_by(Source(JOB_SOURCE, 41)).order_by("id")] == [
        spend.pk,
        refund.pk,
    ]


@pytest.mark.parametrize(
    "source", [Source("payments.ordr", 1), Source(ORDER_SOURCE, 0), Source(ORDER_SOURCE, "1")]
)
def test_a_source_no_app_registered_is_refused_and_nothing_is_written(make_user, source):
    user = make_user(credits=5)
    with pytest.raises(ValueError):
        credits_spend(user=user, amount=1, idempotency_key="ref:bad", source=source)
    assert LedgerEntry.objects.filter(idempotency_key="ref:bad").count() == 0


def test_the_customer_history_and_exports_show_the_order_and_the_job(order, client):
    user = order.user
    credits_grant(
        user=user,
        amount=50,
        kind=LedgerKind.PURCHASE,
        idempotency_key="ref:grant",
        source=order_source(order),
    )
    spend = credits_spend(
        user=user, amount=7, idempotency_key="ref:spend", source=Source(JOB_SOURCE, 41)
    )
    client.force_login(user)

    page = client.get("/credits/").content.decode()
    assert f'href="{reverse("payments:orders")}">order #{order.pk}</a>' in page
    assert f'href="{reverse("generations:list")}">job #41</a>' in page

    rows = list(
        csv.reader(
            io.StringIO(b"".join(client.get("/credits/export.csv").streaming_content).decode())
        )
    )
    header = rows[0]
    assert header == [
        "entry_id",
        "created_at",
        "kind",
        "description",
        "amount",
        "balance_before",
        "balance_after",
        "job_id",
        "order_id",
        "subscription_period_id",
        "refund_of",
        "category",
        "lot",
        "lot_expires_at",
    ]
    by_kind = {r[2]: dict(zip(header, r)) for r in rows[1:]}
    assert (by_kind["PURCHASE"]["order_id"], by_kind["PURCHASE"]["job_id"]) == (str(order.pk), "")
    assert (by_kind["SPEND"]["job_id"], by_kind["SPEND"]["order_id"]) == ("41", "")
    # The spend drew on the purchase's paid lot.
    assert by_kind["PURCHASE"]["category"] == by_kind["SPEND"]["category"] == "paid"
    assert by_kind["PURCHASE"]["lot"] == by_kind["SPEND"]["lot"] != ""

    from credits.account_data import export_ledger

    exported = {row["id"]: row for row in export_ledger(user)}
    assert (exported[spend.pk]["job_id"], exported[spend.pk]["order_id"]) == (41, None)
    assert list(exported[spend.pk]) == [
        "id",
        "created_at",
        "kind",
        "amount",
        "balance_before",
        "balance_after",
        "lot_ref",
        "lot_category",
        "lot_expires_at",
        "moved_lots",
        "job_id",
        "order_id",
        "subscription_period_id",
        "reverses_id",
        "description",
    ]
    [drawn] = exported[spend.pk]["moved_lots"]
    assert (drawn["credits"], drawn["category"], drawn["source"]) == (-7, "paid", "purchase")


def test_the_admin_links_an_entry_to_its_order_and_lists_the_order_entries(order, admin_client):
    grant = credits_grant(
        user=order.user,
        amount=50,
        kind=LedgerKind.PURCHASE,
        idempotency_key="ref:grant",
        source=order_source(order),
    )
    job_entry = credits_spend(
        user=order.user, amount=3, idempotency_key="ref:spend", source=Source(JOB_SOURCE, 9)
    )

    entry_page = admin_client.get(f"/admin/credits/ledgerentry/{grant.pk}/change/").content.decode()
    assert f'href="/admin/payments/order/{order.pk}/change/">Order #{order.pk}</a>' in entry_page
    spend_page = admin_client.get(
        f"/admin/credits/ledgerentry/{job_entry.pk}/change/"
    ).content.decode()
    assert 'href="/admin/generations/generationjob/9/change/">Job #9</a>' in spend_page

    order_page = admin_client.get(f"/admin/payments/order/{order.pk}/change/")
    assert order_page.status_code == 200
    inline = next(
        f
        for f in order_page.context["inline_admin_formsets"]
        if f.formset.prefix == "ledger_entries"
    )
    assert [form.original.pk for form in inline] == [grant.pk]

    found = (
        admin_client.get("/admin/credits/ledgerentry/", {"q": str(order.pk)})
        .context["cl"]
        .result_list
    )
    assert grant.pk in [e.pk for e in found]
