"""The staff's user page: the account with its balance, lifetime totals, newest ledger
entries, orders and jobs, and the staff actions at hand (adjust credits, export the user's
data, delete the account).

It gathers every app's rows, so it is the back office's: the apps below register only
their own models.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.urls import path
from django.utils.formats import date_format
from django.utils.html import format_html

from accounts.exceptions import AccountNotDeletable
from accounts.models import User
from accounts.services import account_delete
from accounts.views import export_response
from core.admin import BigTableAdminMixin, ExactSearchMixin, RecentReadOnlyInline, admin_link
from core.admin_actions import ConfirmActionForm, action_on_one, confirmed_action, submission_key
from core.audit import AuditAction
from credits.admin import CreditLotInline, LedgerEntryInline
from credits.models import LedgerEntry
from credits.services import SpendingControls, spending_controls_set
from generations.models import GenerationJob
from payments.models import Order
from payments.templatetags.money import money

from . import app_settings as backoffice_settings
from .audit import staff_action_record
from .forms import AdjustCreditsForm, SpendingControlsStaffForm, lot_expiry_at_end_of
from .services import ADJUST_PERMISSION, adjustment_submit

EXPORT_PERMISSION = "accounts.export_user_data"
ERASE_PERMISSION = "accounts.erase_user"


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class UserLedgerInline(LedgerEntryInline):
    fk_name = "user"
    limit = 20
    verbose_name_plural = "Newest ledger entries (up to 20)"
    fields = (
        "created_at",
        "kind",
        "amount",
        "balance_after",
        "description",
        "internal_note",
        "source_link",
    )
    readonly_fields = fields


class OrderInline(RecentReadOnlyInline):
    model = Order
    limit = 10
    verbose_name_plural = "Newest orders (up to 10)"
    fields = (
        "created_at",
        "status",
        "provider",
        "amount",
        "currency",
        "credits",
        "amount_refunded",
    )
    readonly_fields = fields
    ordering = ("-created_at",)


class GenerationJobInline(RecentReadOnlyInline):
    model = GenerationJob
    limit = 10
    verbose_name_plural = "Newest generation jobs (up to 10)"
    fields = ("created_at", "operation", "model", "status", "estimated_credits", "credits_charged")
    readonly_fields = fields
    ordering = ("-created_at",)


@admin.register(User)
class UserAdmin(ExactSearchMixin, BigTableAdminMixin, DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_form_template = "admin/accounts/user/change_form.html"
    list_display = (
        "email",
        "name",
        "status",
        "membership_tier",
        "balance",
        "is_staff",
        "created_at",
    )
    list_select_related = ("credit_balance",)
    list_filter = (
        "status",
        "membership_tier",
        "is_staff",
        "is_active",
        ("deleted_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("email",)
    search_help_text = "An exact email address or user id."
    exact_int_fields = ("pk",)
    exact_email_fields = ("email",)
    exact_text_fields = ("stripe_customer_id",)
    ordering = ("-created_at",)
    readonly_fields = (
        "credits_summary",
        "last_login",
        "last_login_ip",
        "last_login_at",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (
            "Profile",
            {
                "fields": (
                    "name",
                    "status",
                    "membership_tier",
                    "membership_expires_at",
                    "stripe_customer_id",
                )
            },
        ),
        ("Credits", {"fields": ("credits_summary",)}),
        (
            "Activity",
            {
                "fields": (
                    "last_login",
                    "last_login_at",
                    "last_login_ip",
                    "created_at",
                    "updated_at",
                    "deleted_at",
                )
            },
        ),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    inlines = (UserLedgerInline, CreditLotInline, OrderInline, GenerationJobInline)
    actions = ("adjust_credits", "set_spending_controls", "delete_accounts")

    @admin.display(description="Balance", ordering="credit_balance__balance")
    def balance(self, obj):
        balance = getattr(obj, "credit_balance", None)
        return balance.balance if balance is not None else 0

    @admin.display(description="Credits")
    def credits_summary(self, obj):
        if obj.pk is None:
            return "–"
        balance = getattr(obj, "credit_balance", None)
        paid = (
            Order.objects.filter(user=obj, completed_at__isnull=False)
            .values("currency")
            .annotate(total=Sum("amount"), refunded=Sum("amount_refunded"), n=Count("id"))
            .order_by("currency")
        )
        paid_text = (
            "; ".join(
                f"{money(row['total'], row['currency'])} in {row['n']} order{pluralize(row['n'])}, "
                f"{money(row['refunded'], row['currency'])} refunded"
                for row in paid
            )
            or "nothing yet"
        )
        return format_html(
            '<dl class="bo-summary" data-testid="credits-summary">'
            "<dt>Balance</dt><dd>{}</dd><dt>Lifetime received</dt><dd>{}</dd>"
            "<dt>Lifetime spent</dt><dd>{}</dd><dt>Spending holds</dt><dd>{}</dd><dt>Paid</dt><dd>{}</dd></dl>",
            balance.balance if balance else 0,
            balance.lifetime_earned if balance else 0,
            balance.lifetime_spent if balance else 0,
            balance.spend_holds if balance else 0,
            paid_text,
        )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("credit_balance")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_adjust_credits_permission(self, request):
        return request.user.has_perm(ADJUST_PERMISSION)

    def has_erase_user_permission(self, request):
        return request.user.has_perm(ERASE_PERMISSION)

    def has_export_user_data_permission(self, request):
        return request.user.has_perm(EXPORT_PERMISSION)

    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/adjust-credits/",
                self.admin_site.admin_view(self.adjust_credits_view),
                name="accounts_user_adjust_credits",
            ),
            path(
                "<path:object_id>/spending-controls/",
                self.admin_site.admin_view(self.spending_controls_view),
                name="accounts_user_spending_controls",
            ),
            path(
                "<path:object_id>/export-data/",
                self.admin_site.admin_view(self.export_data_view),
                name="accounts_user_export_data",
            ),
            path(
                "<path:object_id>/delete-account/",
                self.admin_site.admin_view(self.delete_account_view),
                name="accounts_user_delete_account",
            ),
        ]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_adjust_credits": self.has_adjust_credits_permission(request),
            "can_export_user_data": self.has_export_user_data_permission(request),
            "can_erase_user": self.has_erase_user_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def export_data_view(self, request, object_id):
        """Download the user's data (the same file the user gets), with an audit row."""
        if not self.has_export_user_data_permission(request):
            raise PermissionDenied
        user = get_object_or_404(self.get_queryset(request), pk=object_id)
        staff_action_record(
            actor=request.user,
            action=AuditAction.STAFF_ACCOUNT_EXPORT,
            reason="Data export downloaded",
            user=user,
        )
        return export_response(user)

    @admin.action(
        description="Delete the selected accounts and erase their personal data…",
        permissions=["erase_user"],
    )
    def delete_accounts(self, request, queryset, *, done_url=None, form_url=""):
        return confirmed_action(
            self,
            request,
            queryset,
            action="delete_accounts",
            title="Delete accounts",
            form_class=ConfirmActionForm,
            perform=_delete_one,
            columns=[("User", str), ("Name", lambda u: u.name or "–"), ("Balance", self.balance)],
            submit_label="Delete accounts",
            intro=(
                "Erases each user's email addresses, name, login records, social accounts, API key, prompts "
                "and result files, and closes the account for good. Orders, invoices and ledger entries are "
                "kept, linked to the anonymised account; the remaining balance is forfeited. Accounts with "
                "an order awaiting payment, a job still running, or staff status are refused."
            ),
            done_url=done_url,
            form_url=form_url,
            label=lambda u: f"User {u.email}",
        )

    def delete_account_view(self, request, object_id):
        return action_on_one(
            self,
            request,
            object_id,
            action=self.delete_accounts,
            allowed=self.has_erase_user_permission(request),
        )

    @admin.action(
        description="Adjust credits of the selected users…", permissions=["adjust_credits"]
    )
    def adjust_credits(self, request, queryset, *, done_url=None, form_url=""):
        threshold = backoffice_settings.adjustment_approval_threshold()
        return confirmed_action(
            self,
            request,
            queryset.select_related("credit_balance"),
            action="adjust_credits",
            title="Adjust credits",
            form_class=AdjustCreditsForm,
            perform=_adjust_one,
            columns=[("User", str), ("Name", lambda u: u.name or "–"), ("Balance", self.balance)],
            submit_label="Adjust credits",
            intro=(
                f"Adds (positive) or takes (negative) credits as a ledger adjustment. Added credits are "
                f"promotional and may expire at the end of a day you pick. Adjustments of more "
                f"than {threshold} credits either way wait for a second staff member's approval."
            ),
            done_url=done_url,
            form_url=form_url,
            label=lambda u: f"User {u.email}",
        )

    @admin.action(
        description="Set spending caps and alerts of the selected users…",
        permissions=["adjust_credits"],
    )
    def set_spending_controls(self, request, queryset, *, done_url=None, form_url=""):
        return confirmed_action(
            self,
            request,
            queryset.select_related("credit_balance"),
            action="set_spending_controls",
            title="Set spending caps and alerts",
            form_class=SpendingControlsStaffForm,
            perform=_controls_one,
            columns=[("User", str), ("Controls", self.spending_controls)],
            submit_label="Save controls",
            intro=(
                "Caps on the credits each user can spend per day and per calendar month, and the "
                "balance below which they are warned. Empty fields mean none; what you set "
                "replaces what the user set."
            ),
            done_url=done_url,
            form_url=form_url,
            label=lambda u: f"User {u.email}",
        )

    def spending_controls_view(self, request, object_id):
        return action_on_one(
            self,
            request,
            object_id,
            action=self.set_spending_controls,
            allowed=self.has_adjust_credits_permission(request),
        )

    @admin.display(description="Spending controls")
    def spending_controls(self, obj):
        b = getattr(obj, "credit_balance", None)
        if b is None:
            return "none"
        parts = [
            f"{label} {value}"
            for label, value in (
                ("daily cap", b.daily_cap),
                ("monthly cap", b.monthly_cap),
                ("alert below", b.low_balance_threshold),
            )
            if value is not None
        ]
        return ", ".join(parts) or "none"

    def adjust_credits_view(self, request, object_id):
        return action_on_one(
            self,
            request,
            object_id,
            action=self.adjust_credits,
            allowed=self.has_adjust_credits_permission(request),
        )


def _controls_one(request, user, data):
    controls = SpendingControls(
        daily_cap=data["daily_cap"],
        monthly_cap=data["monthly_cap"],
        low_balance_threshold=data["low_balance_threshold"],
    )
    spending_controls_set(user=user, controls=controls, actor=request.user, reason=data["reason"])
    shown = lambda v: "none" if v is None else v  # noqa: E731
    return messages.SUCCESS, (
        f"User {user}: daily cap {shown(controls.daily_cap)}, monthly cap "
        f"{shown(controls.monthly_cap)}, low-balance alert {shown(controls.low_balance_threshold)}."
    )


def _adjust_one(request, user, data):
    amount = data["amount"]
    expires_on = data.get("expires_on")
    expires_at = lot_expiry_at_end_of(expires_on)
    outcome = adjustment_submit(
        user=user,
        amount=amount,
        reason=data["reason"],
        description=data["description"],
        lot_expires_at=expires_at,
        staff_user=request.user,
        idempotency_key=submission_key(data, "adjust", user),
    )
    if outcome.needs_approval:
        return messages.WARNING, format_html(
            "User {}: an adjustment of {} credits needs a second staff member; {} is waiting for approval.",
            user,
            f"{amount:+d}",
            admin_link(type(outcome.request), outcome.request.pk, f"request #{outcome.request.pk}"),
        )
    return messages.SUCCESS, format_html(
        "User {}: adjusted by {} credits{}, balance now {} ({}).",
        user,
        f"{amount:+d}",
        f" expiring at the end of {date_format(expires_on, 'j F Y')}" if expires_on else "",
        outcome.entry.balance_after,
        admin_link(LedgerEntry, outcome.entry.pk, f"ledger entry #{outcome.entry.pk}"),
    )


def _delete_one(request, user, data):
    email = user.email
    try:
        account_delete(user=user, actor=request.user, reason=data["reason"])
    except AccountNotDeletable as exc:
        staff_action_record(
            actor=request.user,
            action=AuditAction.STAFF_ACCOUNT_DELETE,
            reason=data["reason"],
            user=user,
            success=False,
            error=str(exc),
        )
        raise
    staff_action_record(
        actor=request.user,
        action=AuditAction.STAFF_ACCOUNT_DELETE,
        reason=data["reason"],
        user=user,
        details={"submission": submission_key(data, "delete", user)},
    )
    return (
        messages.SUCCESS,
        f"User {email}: account deleted, personal data erased (now user #{user.pk}).",
    )
