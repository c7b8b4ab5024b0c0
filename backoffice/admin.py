"""The back office in the admin: large credit adjustments waiting for a second staff member
(approve or reject them here), and, from the modules imported below, the staff actions on the
other apps' models and the staff's user page."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from core.admin import NoBulkDeleteMixin, admin_link
from core.admin_actions import ConfirmActionForm, confirmed_action
from credits.models import LedgerEntry, staff_adjustment_description

from . import (  # noqa: F401  (the staff actions on the apps' models)
    generation_admin,
    payment_admin,
    subscription_admin,
    user_admin,
    voucher_admin,
)
from .models import AdjustmentRequest
from .services import (
    ADJUST_PERMISSION,
    APPROVE_PERMISSION,
    adjustment_approve,
    adjustment_reject,
    adjustment_request_description,
    adjustment_request_lot_expiry,
)

admin.site.site_header = "Credits staff admin"
admin.site.site_title = "Credits staff"
admin.site.index_title = "Run the business"


class DecisionForm(ConfirmActionForm):
    reason = forms.CharField(
        label="Note",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why you approve or reject; written to the audit log with your name.",
    )


@admin.register(AdjustmentRequest)
class AdjustmentRequestAdmin(NoBulkDeleteMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "signed_amount",
        "status",
        "requested_by",
        "decided_by",
        "reason_short",
    )
    list_select_related = ("user", "requested_by", "decided_by")
    list_filter = ("status", "created_at")
    search_fields = ("=user__email", "=requested_by__email")
    ordering = ("-created_at",)
    readonly_fields = (
        "user_link",
        "signed_amount",
        "lot_expiry",
        "reason",
        "status",
        "requested_by",
        "created_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "entry_link",
        "last_error",
    )
    fields = readonly_fields
    actions = ("approve", "reject")

    @admin.display(description="Amount", ordering="amount")
    def signed_amount(self, obj):
        return f"{obj.amount:+d}"

    @admin.display(description="Reason")
    def reason_short(self, obj):
        return obj.reason if len(obj.reason) <= 60 else obj.reason[:59] + "…"

    @admin.display(description="User")
    def user_link(self, obj):
        return admin_link(type(obj.user), obj.user_id, str(obj.user))

    @admin.display(description="Added credits expire")
    def lot_expiry(self, obj):
        if obj.amount < 0:
            return "–"
        expires_at = adjustment_request_lot_expiry(obj)
        return date_format(timezone.localtime(expires_at), "j F Y H:i") if expires_at else "Never"

    @admin.display(description="Ledger entry")
    def entry_link(self, obj):
        return admin_link(LedgerEntry, obj.ledger_entry_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        user = request.user
        return (
            super().has_view_permission(request, obj)
            or user.has_perm(ADJUST_PERMISSION)
            or user.has_perm(APPROVE_PERMISSION)
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_approve_adjustment_permission(self, request):
        return request.user.has_perm(APPROVE_PERMISSION)

    def _columns(self):
        return [
            ("Request", lambda r: f"#{r.pk}"),
            ("User", lambda r: r.user),
            ("Amount", self.signed_amount),
            ("Asked by", lambda r: r.requested_by),
            ("Internal note", lambda r: r.reason),
            (
                "Customer sees",
                lambda r: (
                    adjustment_request_description(r) or staff_adjustment_description(r.amount)
                ),
            ),
            ("Credits expire", self.lot_expiry),
            ("Status", lambda r: r.get_status_display()),
        ]

    @admin.action(
        description="Approve and apply the selected adjustments…",
        permissions=["approve_adjustment"],
    )
    def approve(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("user", "requested_by"),
            action="approve",
            title="Approve adjustments",
            form_class=DecisionForm,
            perform=_approve_one,
            columns=self._columns(),
            submit_label="Approve and apply",
            intro="Each approved adjustment is applied to the user's balance at once. "
            "You cannot approve an adjustment you asked for yourself.",
            label=lambda r: f"Request #{r.pk}",
        )

    @admin.action(
        description="Reject the selected adjustments…", permissions=["approve_adjustment"]
    )
    def reject(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("user", "requested_by"),
            action="reject",
            title="Reject adjustments",
            form_class=DecisionForm,
            perform=_reject_one,
            columns=self._columns(),
            submit_label="Reject",
            intro="Rejected adjustments are closed and never applied.",
            label=lambda r: f"Request #{r.pk}",
        )


def _approve_one(request, adjustment_request, data):
    done = adjustment_approve(
        adjustment_request=adjustment_request, staff_user=request.user, note=data["reason"]
    )
    return messages.SUCCESS, format_html(
        "Request #{} approved: {} credits for {}, balance now {} ({}).",
        done.pk,
        f"{done.amount:+d}",
        done.user,
        done.ledger_entry.balance_after,
        admin_link(LedgerEntry, done.ledger_entry_id, f"ledger entry #{done.ledger_entry_id}"),
    )


def _reject_one(request, adjustment_request, data):
    done = adjustment_reject(
        adjustment_request=adjustment_request, staff_user=request.user, note=data["reason"]
    )
    return (
        messages.SUCCESS,
        f"Request #{done.pk} rejected: {done.amount:+d} credits for {done.user} not applied.",
    )
