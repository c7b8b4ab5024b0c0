"""Payments in the admin, read-only. Orders, invoices and refunds change only through the
payments services; the staff actions on them (refund, webhook replay) are added by the back
office (``backoffice/payment_admin.py``)."""

from django.contrib import admin

from core.admin import (
    BigTableAdminMixin,
    ExactSearchMixin,
    NoBulkDeleteMixin,
    ReadOnlyAdminMixin,
    RecentReadOnlyInline,
    admin_link,
)
from credits.admin import SourceLedgerInline, pretty_json

from .ledger import ORDER_SOURCE
from .models import (
    CreditPackage,
    Invoice,
    InvoiceSequence,
    Order,
    ReconciliationRun,
    Refund,
    SandboxPayment,
    SandboxRefund,
    WebhookEvent,
)


@admin.register(CreditPackage)
class CreditPackageAdmin(NoBulkDeleteMixin, admin.ModelAdmin):
    """Packages can be edited (an order keeps the price it was created with) and retired
    by unticking ``active``; they are never deleted."""

    list_display = ("name", "credits", "price", "currency", "active", "sort_order", "updated_at")
    list_filter = ("active", "currency")
    search_fields = ("name",)
    ordering = ("sort_order", "price")
    readonly_fields = ("created_at", "updated_at")


class OrderLedgerInline(SourceLedgerInline):
    source_type = ORDER_SOURCE
    limit = 50
    verbose_name_plural = "Ledger entries of this order"


class RefundInline(RecentReadOnlyInline):
    model = Refund
    limit = 50
    verbose_name_plural = "Refunds asked of the provider"
    fields = (
        "created_at",
        "amount",
        "currency",
        "status",
        "provider_refund_id",
        "reason",
        "created_by",
    )
    readonly_fields = fields
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


class DisputeFilter(admin.SimpleListFilter):
    title = "dispute"
    parameter_name = "dispute"

    def lookups(self, request, model_admin):
        return Order.DisputeStatus.choices

    def queryset(self, request, queryset):
        if self.value() in Order.DisputeStatus.values:
            return queryset.filter(dispute_status=self.value())
        return queryset


@admin.register(Order)
class OrderAdmin(NoBulkDeleteMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "status",
        "provider",
        "amount",
        "currency",
        "credits",
        "amount_refunded",
        "credits_clawed_back",
        "dispute_status",
    )
    list_display_links = ("id", "created_at")
    list_select_related = ("user",)
    list_filter = ("status", "provider", DisputeFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__email",)
    search_help_text = "An order id, an exact email address, or a provider order or payment id."
    exact_int_fields = ("pk",)
    exact_user_fields = ("user_id",)
    exact_text_fields = ("provider_order_id", "provider_payment_id", "dispute_id")
    raw_id_fields = ("user", "package")
    ordering = ("-created_at",)
    fields = (
        "id",
        "user_link",
        "package",
        "status",
        "provider",
        "amount",
        "currency",
        "credits",
        "amount_refunded",
        "credits_clawed_back",
        "credits_unrecovered",
        "provider_order_id",
        "provider_payment_id",
        "dispute_id",
        "dispute_status",
        "created_at",
        "updated_at",
        "completed_at",
        "invoice_link",
    )
    readonly_fields = fields
    inlines = (RefundInline, OrderLedgerInline)
    change_form_template = "admin/payments/order/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "package")

    @admin.display(description="User")
    def user_link(self, obj):
        return admin_link(type(obj.user), obj.user_id, str(obj.user))

    @admin.display(description="Invoice")
    def invoice_link(self, obj):
        invoice = Invoice.objects.filter(order=obj).values_list("pk", "number").first()
        return admin_link(Invoice, invoice[0], invoice[1]) if invoice else "–"


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = ("number", "order_link", "user", "status", "amount_paid", "currency", "paid_at")
    list_select_related = ("order__user",)
    list_filter = ("status", "currency", ("paid_at", admin.DateFieldListFilter))
    search_fields = ("number",)
    search_help_text = "An exact invoice number, an order id, or an exact email address."
    exact_int_fields = ("order_id",)
    exact_user_fields = ("order__user_id",)
    exact_text_fields = ("number", "provider_invoice_id")
    raw_id_fields = ("order",)
    ordering = ("-year", "-sequence")
    fields = (
        "number",
        "order_link",
        "status",
        "amount_paid",
        "currency",
        "paid_at",
        "year",
        "sequence",
        "provider_invoice_id",
        "url",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Order", ordering="order_id")
    def order_link(self, obj):
        return admin_link(Order, obj.order_id)

    @admin.display(description="User")
    def user(self, obj):
        return obj.order.user


@admin.register(InvoiceSequence)
class InvoiceSequenceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("year", "last")
    ordering = ("-year",)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "order_link",
        "amount",
        "currency",
        "status",
        "created_by",
        "reason",
    )
    list_select_related = ("created_by",)
    list_filter = ("status", ("created_at", admin.DateFieldListFilter))
    search_fields = ("provider_refund_id",)
    search_help_text = "An order id or an exact provider refund id."
    exact_int_fields = ("pk", "order_id")
    exact_text_fields = ("provider_refund_id", "idempotency_key")
    raw_id_fields = ("order",)
    ordering = ("-created_at",)
    fields = (
        "id",
        "created_at",
        "order_link",
        "amount",
        "currency",
        "status",
        "provider_refund_id",
        "reason",
        "created_by",
        "idempotency_key",
    )
    readonly_fields = fields

    @admin.display(description="Order", ordering="order_id")
    def order_link(self, obj):
        return admin_link(Order, obj.order_id)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "received_at",
        "provider",
        "type",
        "event_id",
        "status",
        "attempts",
        "next_attempt",
        "signature_valid",
        "order_link",
    )
    list_filter = (
        "status",
        "provider",
        "signature_valid",
        ("received_at", admin.DateFieldListFilter),
    )
    search_fields = ("event_id",)
    search_help_text = "An exact provider event id or type, or an order id."
    exact_int_fields = ("pk", "order_id")
    exact_text_fields = ("event_id", "type")
    raw_id_fields = ("order",)
    ordering = ("-received_at",)
    fields = (
        "id",
        "provider",
        "event_id",
        "type",
        "status",
        "attempts",
        "next_attempt",
        "signature_valid",
        "last_error",
        "order_link",
        "received_at",
        "processed_at",
        "normalized_pretty",
        "headers_pretty",
        "raw_body",
    )
    readonly_fields = fields

    @admin.display(description="Next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj):
        """When the event is queued (again); a FAILED event with none has failed for good:
        replay it or not."""
        if obj.next_attempt_at is not None:
            return obj.next_attempt_at
        return (
            "None: failed for good, staff decide"
            if obj.status == WebhookEvent.Status.FAILED
            else "-"
        )

    @admin.display(description="Order", ordering="order_id")
    def order_link(self, obj):
        return admin_link(Order, obj.order_id)

    @admin.display(description="Normalized")
    def normalized_pretty(self, obj):
        return pretty_json(obj.normalized)

    @admin.display(description="Headers")
    def headers_pretty(self, obj):
        return pretty_json(obj.headers)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "started_at",
        "finished_at",
        "status",
        "since",
        "discrepancy_count",
        "fixed_count",
    )
    list_filter = ("status", ("started_at", admin.DateFieldListFilter))
    ordering = ("-started_at",)
    show_full_result_count = False
    fields = (
        "started_at",
        "finished_at",
        "since",
        "status",
        "counts_pretty",
        "discrepancies_pretty",
        "fixed_pretty",
        "errors_pretty",
    )
    readonly_fields = fields

    @admin.display(description="Discrepancies")
    def discrepancy_count(self, obj):
        return len(obj.discrepancies or [])

    @admin.display(description="Fixed")
    def fixed_count(self, obj):
        return len(obj.fixed or [])

    @admin.display(description="Counts")
    def counts_pretty(self, obj):
        return pretty_json(obj.counts)

    @admin.display(description="Discrepancies")
    def discrepancies_pretty(self, obj):
        return pretty_json(obj.discrepancies)

    @admin.display(description="Fixed")
    def fixed_pretty(self, obj):
        return pretty_json(obj.fixed)

    @admin.display(description="Errors")
    def errors_pretty(self, obj):
        return pretty_json(obj.errors)


@admin.register(SandboxPayment)
class SandboxPaymentAdmin(
    ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin
):
    """The offline provider's own records (what Stripe's dashboard would show)."""

    list_display = (
        "token",
        "order_ref",
        "status",
        "amount",
        "currency",
        "amount_refunded",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("token",)
    search_help_text = "An exact token or order reference."
    exact_int_fields = ()
    exact_text_fields = ("token", "order_ref")
    ordering = ("-created_at",)


@admin.register(SandboxRefund)
class SandboxRefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "payment", "amount", "idempotency_key", "created_at")
    list_select_related = ("payment",)
    ordering = ("-id",)
    show_full_result_count = False


from . import subscription_admin  # noqa: E402, F401  (plans, subscriptions, periods)
