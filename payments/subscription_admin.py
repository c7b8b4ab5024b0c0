"""Plans (editable), subscriptions and their paid periods (read-only) in the admin. The staff
actions on them (cancel a subscription, refund a period) are added by the back office
(``backoffice/subscription_admin.py``)."""

from django.contrib import admin

from core.admin import NoBulkDeleteMixin, ReadOnlyAdminMixin, RecentReadOnlyInline
from credits.admin import SourceLedgerInline

from .models import (
    PlanPrice,
    SandboxInvoice,
    SandboxSubscription,
    Subscription,
    SubscriptionPeriod,
    SubscriptionPlan,
)
from .subscriptions import PERIOD_SOURCE


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    extra = 0
    fields = ("currency", "amount", "stripe_price_id", "paypal_plan_id")
    readonly_fields = ("stripe_price_id", "paypal_plan_id")

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SubscriptionPlan)
class SubscriptionPlanAdmin(NoBulkDeleteMixin, admin.ModelAdmin):
    """Plans are edited here (a running subscription keeps the price it was sold at until
    the provider's price changes) and retired by unticking ``active``; never deleted. The
    provider-side products and prices are made by ``manage.py subscription_plans_sync``."""

    list_display = (
        "code",
        "name",
        "credits_per_period",
        "rollover_cap",
        "api_access",
        "membership_tier",
        "active",
        "sort_order",
    )
    list_filter = ("active", "membership_tier", "api_access")
    search_fields = ("code", "name")
    readonly_fields = ("stripe_product_id", "paypal_product_id", "created_at", "updated_at")
    inlines = [PlanPriceInline]


class PeriodInline(RecentReadOnlyInline):
    model = SubscriptionPeriod
    limit = 36
    verbose_name_plural = "Paid periods (invoices)"
    fields = (
        "invoice_number",
        "kind",
        "plan",
        "starts_at",
        "ends_at",
        "amount",
        "currency",
        "credits",
        "status",
        "credits_clawed_back",
    )
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan")


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "pk",
        "user",
        "plan",
        "status",
        "provider",
        "amount",
        "currency",
        "current_period_end",
        "cancel_at_period_end",
        "created_at",
    )
    list_filter = ("status", "provider", "plan", "cancel_at_period_end")
    list_select_related = ("user", "plan")
    search_fields = ("user__email", "provider_subscription_id")
    raw_id_fields = ("user",)
    show_full_result_count = False
    inlines = [PeriodInline]


class PeriodLedgerInline(SourceLedgerInline):
    source_type = PERIOD_SOURCE
    limit = 50
    verbose_name_plural = "Ledger entries of this period"


@admin.register(SubscriptionPeriod)
class SubscriptionPeriodAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "invoice_number",
        "subscription",
        "kind",
        "plan",
        "starts_at",
        "ends_at",
        "amount",
        "currency",
        "credits",
        "status",
    )
    list_filter = ("kind", "status", "plan")
    list_select_related = ("subscription", "subscription__plan", "plan")
    search_fields = ("invoice_number", "provider_invoice_id", "subscription__user__email")
    show_full_result_count = False
    inlines = [PeriodLedgerInline]


@admin.register(PlanPrice)
class PlanPriceAdmin(NoBulkDeleteMixin, admin.ModelAdmin):
    """Prices are edited on their plan's page too; the provider ids are made by the sync
    command."""

    list_display = ("plan", "currency", "amount", "stripe_price_id", "paypal_plan_id")
    list_select_related = ("plan",)
    list_filter = ("currency",)
    readonly_fields = ("stripe_price_id", "paypal_plan_id")


@admin.register(SandboxSubscription)
class SandboxSubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The offline provider's own subscriptions (what Stripe's dashboard would show)."""

    list_display = (
        "token",
        "subscription_ref",
        "plan_code",
        "status",
        "amount",
        "currency",
        "period_end",
        "cancel_at_period_end",
    )
    list_filter = ("status",)
    search_fields = ("=token", "=subscription_ref")
    show_full_result_count = False


@admin.register(SandboxInvoice)
class SandboxInvoiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "pk",
        "subscription",
        "billing_reason",
        "plan_code",
        "status",
        "amount",
        "currency",
        "period_start",
        "period_end",
        "amount_refunded",
    )
    list_filter = ("status", "billing_reason")
    list_select_related = ("subscription",)
    show_full_result_count = False
