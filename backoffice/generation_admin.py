"""The staff actions on generation jobs, added to the generations app's read-only job admin:
refund a completed job with a bad result, retry a failed one."""

from django.contrib import admin, messages

from core.admin_actions import ConfirmActionForm, confirmed_action
from generations import admin as generations_admin
from generations.models import GenerationJob
from generations.text import credits_text

from .generation_actions import MANAGE_JOBS_PERMISSION, staff_job_refund, staff_job_retry

admin.site.unregister(GenerationJob)

#: What the confirmation page of either action shows of each job, before its own column.
JOB_COLUMNS = [
    ("Job", lambda j: f"#{j.pk}"),
    ("User", lambda j: j.user),
    ("Operation", lambda j: j.operation),
    ("Model", lambda j: j.model),
    ("Status", lambda j: j.get_status_display()),
]


def _job_label(job) -> str:
    return f"Job #{job.pk}"


@admin.register(GenerationJob)
class StaffGenerationJobAdmin(generations_admin.GenerationJobAdmin):
    actions = ("refund", "retry")

    def has_manage_jobs_permission(self, request):
        return request.user.has_perm(MANAGE_JOBS_PERMISSION)

    @admin.action(description="Refund the selected completed jobs…", permissions=["manage_jobs"])
    def refund(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("user"),
            action="refund",
            title="Refund generation jobs",
            form_class=ConfirmActionForm,
            perform=_refund_one,
            columns=[*JOB_COLUMNS, ("Charged", lambda j: j.credits_charged)],
            submit_label="Refund",
            intro=(
                "Gives back what each completed job cost (a bad result) and marks it refunded. "
                "Failed jobs were refunded in full when they failed."
            ),
            label=_job_label,
        )

    @admin.action(description="Retry the selected failed jobs…", permissions=["manage_jobs"])
    def retry(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("user"),
            action="retry",
            title="Retry failed generation jobs",
            form_class=ConfirmActionForm,
            perform=_retry_one,
            columns=[*JOB_COLUMNS, ("Error", lambda j: j.error_message)],
            submit_label="Retry",
            intro=(
                "Runs each failed job again as a new job for the same user. The failed job was "
                "refunded in full, so the new one is charged like a fresh submission and refunded "
                "in turn if it fails. Each failed job can be retried once."
            ),
            label=_job_label,
        )


def _retry_one(request, job, data):
    retry = staff_job_retry(job=job, reason=data["reason"], staff_user=request.user)
    return (
        messages.SUCCESS,
        f"Job #{job.pk}: running again as job #{retry.pk} ({credits_text(retry.estimated_credits)} reserved).",
    )


def _refund_one(request, job, data):
    done = staff_job_refund(job=job, reason=data["reason"], staff_user=request.user)
    return (
        messages.SUCCESS,
        f"Job #{done.pk}: {credits_text(done.credits_charged)} given back to {done.user}.",
    )
