"""Generation jobs and their price rules in the admin. Jobs are read-only; the staff actions
on them (refund a bad result, retry a failed job) are added by the back office
(``backoffice/generation_admin.py``)."""

from django.contrib import admin

from core.admin import (
    BigTableAdminMixin,
    ExactSearchMixin,
    NoBulkDeleteMixin,
    ReadOnlyAdminMixin,
    admin_link,
)
from credits.admin import SourceLedgerInline, pretty_json

from .charges import JOB_SOURCE
from .models import ApiCredential, GenerationJob, PriceRule


class JobLedgerInline(SourceLedgerInline):
    source_type = JOB_SOURCE
    limit = 20
    verbose_name_plural = "Ledger entries of this job"


@admin.register(GenerationJob)
class GenerationJobAdmin(NoBulkDeleteMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "operation",
        "model",
        "tier",
        "status",
        "estimated_credits",
        "credits_charged",
        "retry_count",
    )
    list_display_links = ("id", "created_at")
    list_select_related = ("user",)
    list_filter = (
        "status",
        "operation",
        "is_edit",
        "uses_own_key",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("user__email",)
    search_help_text = "A job id or an exact email address."
    exact_int_fields = ("pk",)
    exact_user_fields = ("user_id",)
    raw_id_fields = ("user", "source", "retry_of", "price_rule")
    ordering = ("-created_at",)
    fields = (
        "id",
        "user_link",
        "operation",
        "model",
        "tier",
        "status",
        "prompt",
        "parameters_pretty",
        "is_edit",
        "source_link",
        "retry_of",
        "uses_own_key",
        "price_rule",
        "estimated_credits",
        "credits_charged",
        "retry_count",
        "max_retries",
        "error_message",
        "error_detail",
        "result_file",
        "usage_pretty",
        "created_at",
        "started_at",
        "completed_at",
        "next_attempt_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (JobLedgerInline,)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "price_rule")

    @admin.display(description="User")
    def user_link(self, obj):
        return admin_link(type(obj.user), obj.user_id, str(obj.user))

    @admin.display(description="Source job")
    def source_link(self, obj):
        return admin_link(GenerationJob, obj.source_id)

    @admin.display(description="Parameters")
    def parameters_pretty(self, obj):
        return pretty_json(obj.parameters)

    @admin.display(description="Usage")
    def usage_pretty(self, obj):
        return pretty_json(obj.usage)


@admin.register(PriceRule)
class PriceRuleAdmin(NoBulkDeleteMixin, admin.ModelAdmin):
    """Prices are edited here; a job keeps the rule it was priced with. Retire a rule by
    unticking ``active`` (rules that priced jobs cannot be deleted)."""

    list_display = (
        "name",
        "operation",
        "model",
        "tier",
        "membership_tier",
        "own_key",
        "base_credits",
        "credits_per_1k_input",
        "credits_per_1k_output",
        "edit_multiplier",
        "active",
    )
    list_filter = ("active", "operation", "own_key", "membership_tier")
    search_fields = ("name", "model")
    ordering = ("operation", "own_key", "model", "tier")
    readonly_fields = ("created_at", "updated_at")


@admin.register(ApiCredential)
class ApiCredentialAdmin(ReadOnlyAdminMixin, ExactSearchMixin, admin.ModelAdmin):
    """Users' own API keys: who has one and its last characters. The key itself never shows."""

    list_display = ("user", "provider", "key_hint", "created_at", "updated_at")
    list_select_related = ("user",)
    search_fields = ("user__email",)
    search_help_text = "An exact email address."
    exact_int_fields = ("user_id",)
    exact_user_fields = ("user_id",)
    fields = ("user", "provider", "key_hint", "created_at", "updated_at")
    readonly_fields = fields
    show_full_result_count = False
