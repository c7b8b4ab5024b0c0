"""Generation jobs in the admin: read-only; retry or refund a failed job through the
generations services."""

from django.contrib import admin

from backoffice.admin_helpers import (
    BigTableAdminMixin,
    ExactSearchMixin,
    NoBulkDeleteMixin,
    RecentReadOnlyInline,
    admin_link,
)
from credits.admin import pretty_json
from credits.models import LedgerEntry

from .models import GenerationJob


class JobLedgerInline(RecentReadOnlyInline):
    model = LedgerEntry
    fk_name = "job"
    limit = 20
    verbose_name_plural = "Ledger entries of this job"
    fields = ("created_at", "kind", "amount", "balance_after", "description")
    readonly_fields = fields
    ordering = ("-id",)


@admin.register(GenerationJob)
class GenerationJobAdmin(NoBulkDeleteMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "user", "operation", "model", "status", "estimated_credits",
                    "credits_charged", "retry_count")
    list_display_links = ("id", "created_at")
    list_select_related = ("user",)
    list_filter = ("status", "is_edit", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__email",)
    search_help_text = "A job id or an exact email address."
    exact_int_fields = ("pk",)
    exact_user_fields = ("user_id",)
    raw_id_fields = ("user",)
    ordering = ("-created_at",)
    fields = ("id", "user_link", "operation", "model", "tier", "status", "prompt", "parameters_pretty",
              "is_edit", "estimated_credits", "credits_charged", "retry_count", "max_retries",
              "error_message", "result_file", "usage_pretty", "created_at", "started_at", "completed_at",
              "updated_at")
    readonly_fields = fields
    inlines = (JobLedgerInline,)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="User")
    def user_link(self, obj):
        return admin_link(type(obj.user), obj.user_id, str(obj.user))

    @admin.display(description="Parameters")
    def parameters_pretty(self, obj):
        return pretty_json(obj.parameters)

    @admin.display(description="Usage")
    def usage_pretty(self, obj):
        return pretty_json(obj.usage)
