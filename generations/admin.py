"""Generation jobs and their price rules in the admin. Jobs are read-only; staff refund a
job with a bad result through the generations services."""

from django.contrib import admin, messages

from backoffice.admin_actions import confirmed_action, register_action_error
from backoffice.admin_helpers import (
    BigTableAdminMixin,
    ExactSearchMixin,
    NoBulkDeleteMixin,
    ReadOnlyAdminMixin,
    admin_link,
)
from backoffice.forms import ConfirmActionForm
from backoffice.generation_actions import MANAGE_JOBS_PERMISSION, staff_job_refund, staff_job_retry
from credits.admin import LedgerEntryInline, pretty_json

from .exceptions import GenerationsError
from .models import ApiCredential, GenerationJob, PriceRule
from .text import credits_text

register_action_error(GenerationsError)


class JobLedgerInline(LedgerEntryInline):
    fk_name = "job"
    limit = 20
    verbose_name_plural = "Ledger entries of this job"


@admin.register(GenerationJob)
class GenerationJobAdmin(NoBulkDeleteMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "user", "operation", "model", "tier", "status", "estimated_credits",
                    "credits_charged", "retry_count")
    list_display_links = ("id", "created_at")
    list_select_related = ("user",)
    list_filter = ("status", "operation", "is_edit", "uses_own_key", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__email",)
    search_help_text = "A job id or an exact email address."
    exact_int_fields = ("pk",)
    exact_user_fields = ("user_id",)
    raw_id_fields = ("user", "source", "retry_of", "price_rule")
    ordering = ("-created_at",)
    fields = ("id", "user_link", "operation", "model", "tier", "status", "prompt", "parameters_pretty",
              "is_edit", "source_link", "retry_of", "uses_own_key", "price_rule", "estimated_credits", "credits_charged",
              "retry_count", "max_retries", "error_message", "error_detail", "result_file", "usage_pretty",
              "created_at", "started_at", "completed_at", "next_attempt_at", "updated_at")
    readonly_fields = fields
    inlines = (JobLedgerInline,)
    actions = ("refund", "retry")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "price_rule")

    def has_manage_jobs_permission(self, request):
        return request.user.has_perm(MANAGE_JOBS_PERMISSION)

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

    @admin.action(description="Refund the selected completed jobs…", permissions=["manage_jobs"])
    def refund(self, request, queryset):
        return confirmed_action(
            self, request, queryset.select_related("user"),
            action="refund",
            title="Refund generation jobs",
            form_class=ConfirmActionForm,
            perform=_refund_one,
            columns=[
                ("Job", lambda j: f"#{j.pk}"), ("User", lambda j: j.user), ("Operation", lambda j: j.operation),
                ("Model", lambda j: j.model), ("Status", lambda j: j.get_status_display()),
                ("Charged", lambda j: j.credits_charged),
            ],
            submit_label="Refund",
            intro=(
                "Gives back what each completed job cost (a bad result) and marks it refunded. "
                "Failed jobs were refunded in full when they failed."
            ),
            label=lambda j: f"Job #{j.pk}",
        )


    @admin.action(description="Retry the selected failed jobs…", permissions=["manage_jobs"])
    def retry(self, request, queryset):
        return confirmed_action(
            self, request, queryset.select_related("user"),
            action="retry",
            title="Retry failed generation jobs",
            form_class=ConfirmActionForm,
            perform=_retry_one,
            columns=[
                ("Job", lambda j: f"#{j.pk}"), ("User", lambda j: j.user), ("Operation", lambda j: j.operation),
                ("Model", lambda j: j.model), ("Status", lambda j: j.get_status_display()),
                ("Error", lambda j: j.error_message),
            ],
            submit_label="Retry",
            intro=(
                "Runs each failed job again as a new job for the same user. The failed job was "
                "refunded in full, so the new one is charged like a fresh submission and refunded "
                "in turn if it fails. Each failed job can be retried once."
            ),
            label=lambda j: f"Job #{j.pk}",
        )


def _retry_one(request, job, data):
    retry = staff_job_retry(job=job, reason=data["reason"], staff_user=request.user)
    return messages.SUCCESS, f"Job #{job.pk}: running again as job #{retry.pk} ({credits_text(retry.estimated_credits)} reserved)."


def _refund_one(request, job, data):
    done = staff_job_refund(job=job, reason=data["reason"], staff_user=request.user)
    return messages.SUCCESS, f"Job #{done.pk}: {credits_text(done.credits_charged)} given back to {done.user}."


@admin.register(PriceRule)
class PriceRuleAdmin(NoBulkDeleteMixin, admin.ModelAdmin):
    """Prices are edited here; a job keeps the rule it was priced with. Retire a rule by
    unticking ``active`` (rules that priced jobs cannot be deleted)."""

    list_display = ("name", "operation", "model", "tier", "own_key", "base_credits", "credits_per_1k_input",
                    "credits_per_1k_output", "edit_multiplier", "active")
    list_filter = ("active", "operation", "own_key")
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
