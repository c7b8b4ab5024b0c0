"""Vouchers in the staff admin: create and edit (not the code once used), deactivate, generate
a batch of single-use codes and download them as CSV, see each voucher's redemptions and what
its credits became. Every change goes through a service that writes its staff action row."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from core.admin import NoBulkDeleteMixin, ReadOnlyAdminMixin, admin_link
from core.admin_actions import ConfirmActionForm, confirmed_action
from payments.models import Voucher, VoucherRedemption
from payments.voucher_selectors import voucher_credit_totals
from payments.vouchers import (
    EDITABLE,
    GENERATE_MAX,
    VoucherError,
    voucher_check_terms,
    voucher_code_normalize,
)

from .voucher_actions import (
    ADD_PERMISSION,
    MANAGE_PERMISSION,
    staff_voucher_create,
    staff_voucher_deactivate,
    staff_voucher_update,
    staff_vouchers_export,
    staff_vouchers_generate,
)

AUDIT_NOTE_HELP = "Why: written to the audit log with your name."


class VoucherForm(forms.ModelForm):
    audit_note = forms.CharField(
        label="Note for the audit log", max_length=500, required=False, help_text=AUDIT_NOTE_HELP
    )

    class Meta:
        model = Voucher
        fields = (
            "code",
            "kind",
            "value",
            "plan_code",
            "max_uses",
            "valid_until",
            "credits_valid_days",
            "status",
            "note",
        )
        help_texts = {
            "code": "Case does not matter: codes are stored in capitals.",
            "value": "Free credits: how many. Purchase bonus: percent of the pack's credits. "
            "Plan trial: days.",
            "plan_code": "Plan trials only: the code of the plan the trial is for.",
            "valid_until": "The code stops working at this moment (empty: never).",
            "credits_valid_days": "How many days the credits it grants stay spendable "
            "(empty: the site's default for promotional lots).",
        }

    def clean_code(self):
        code = voucher_code_normalize(self.cleaned_data.get("code"))
        if not code:
            raise ValidationError("Enter a code of at most 40 characters.")
        taken = Voucher.objects.filter(code=code)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(f"The code {code} is taken.")
        return code

    def clean(self):
        data = super().clean()
        kind = data.get("kind") or self.instance.kind
        try:
            voucher_check_terms(
                {"kind": kind, "code": data.get("code") or self.instance.code, **data}
            )
        except VoucherError as exc:
            raise ValidationError(exc.message) from None
        if self.instance.pk and data.get("max_uses") and data["max_uses"] < self.instance.uses:
            self.add_error(
                "max_uses", f"{self.instance.uses} uses are taken already: it cannot be lower."
            )
        return data


class RedemptionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = VoucherRedemption
    fk_name = "voucher"
    fields = (
        "user",
        "status",
        "credits",
        "order",
        "subscription",
        "created_at",
        "redeemed_at",
        "released_at",
    )
    readonly_fields = fields
    ordering = ("-created_at",)
    extra = 0
    max_num = 0
    show_change_link = False
    verbose_name_plural = "Redemptions (newest first)"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("payments.view_voucher")


class GenerateForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=GENERATE_MAX, initial=100)
    prefix = forms.CharField(
        max_length=12, required=False, help_text="Letters and digits put before each code."
    )
    kind = forms.ChoiceField(choices=Voucher.Kind.choices)
    value = forms.IntegerField(
        min_value=1, help_text="Credits, percent for a purchase bonus, or days for a plan trial."
    )
    plan_code = forms.CharField(
        max_length=64, required=False, help_text="Plan trials only: the plan's code."
    )
    valid_until = forms.DateTimeField(required=False, help_text="Empty: the codes never lapse.")
    credits_valid_days = forms.IntegerField(min_value=1, max_value=3650, required=False)
    note = forms.CharField(max_length=255, required=False)
    reason = forms.CharField(max_length=500, help_text=AUDIT_NOTE_HELP)

    def clean_prefix(self):
        prefix = voucher_code_normalize(self.cleaned_data.get("prefix")).strip("-")
        if prefix and not prefix.replace("-", "").isalnum():
            raise ValidationError("Use letters, digits and hyphens only.")
        return prefix


@admin.register(Voucher)
class VoucherAdmin(NoBulkDeleteMixin, admin.ModelAdmin):
    form = VoucherForm
    list_display = (
        "code",
        "kind",
        "value",
        "uses_of_max",
        "state_now",
        "valid_until",
        "batch",
        "created_at",
    )
    list_filter = ("kind", "status", "created_at")
    search_fields = ("=code", "=batch")
    list_select_related = ()
    ordering = ("-created_at", "-id")
    inlines = (RedemptionInline,)
    actions = ("deactivate", "download_codes")
    change_list_template = "admin/payments/voucher/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        term = voucher_code_normalize(search_term)
        if not term:
            return queryset, False
        return queryset.filter(Q(code=term) | Q(batch=term) | Q(batch=search_term.strip())), False

    def get_readonly_fields(self, request, obj=None):
        fixed = ["uses", "created_by", "created_at", "batch", "credit_totals"]
        if obj is not None:
            fixed.append("kind")
            if obj.uses or obj.redemptions.exists():
                fixed.append("code")
        return fixed

    def get_fields(self, request, obj=None):
        fields = [
            "code",
            "kind",
            "value",
            "plan_code",
            "max_uses",
            "uses",
            "valid_until",
            "credits_valid_days",
            "status",
            "note",
            "audit_note",
        ]
        if obj is not None:
            fields += ["batch", "created_by", "created_at", "credit_totals"]
        return fields

    @admin.display(description="Uses")
    def uses_of_max(self, obj):
        return f"{obj.uses} / {obj.max_uses}"

    @admin.display(description="Status", ordering="status")
    def state_now(self, obj):
        return Voucher.Status(obj.state(timezone.now())).label

    @admin.display(description="Its credits")
    def credit_totals(self, obj):
        if obj is None or obj.pk is None:
            return "–"
        totals = voucher_credit_totals(voucher_ids=[obj.pk])[0]
        return format_html(
            "{} redemptions · {} granted · {} used · {} expired · {} voided · {} left",
            totals.redemptions,
            totals.granted,
            totals.used,
            totals.expired,
            totals.voided,
            totals.left,
        )

    def save_model(self, request, obj, form, change):
        note = form.cleaned_data.get("audit_note", "")
        values = {f: form.cleaned_data[f] for f in form.cleaned_data if f in EDITABLE}
        try:
            if change:
                saved = staff_voucher_update(
                    voucher=obj, staff_user=request.user, reason=note, **values
                )
            else:
                saved = staff_voucher_create(
                    staff_user=request.user, reason=note, kind=form.cleaned_data["kind"], **values
                )
        except VoucherError as exc:
            # A rule checked again under the row lock (a use taken meanwhile): nothing saved.
            raise PermissionDenied(exc.message) from exc
        obj.pk = saved.pk
        obj.refresh_from_db()

    def log_addition(self, request, obj, message):
        """The staff action row is the record (written by the service)."""

    def log_change(self, request, obj, message):
        """The staff action row is the record (written by the service)."""

    @admin.action(description="Deactivate the selected vouchers…", permissions=["change"])
    def deactivate(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset,
            action="deactivate",
            title="Deactivate vouchers",
            form_class=ConfirmActionForm,
            perform=_deactivate_one,
            columns=[
                ("Code", lambda v: v.code),
                ("Kind", lambda v: v.get_kind_display()),
                ("Uses", lambda v: f"{v.uses} / {v.max_uses}"),
                ("Status", lambda v: v.get_status_display()),
            ],
            submit_label="Deactivate",
            intro=(
                "The codes stop working at once. Credits already granted stay; a checkout that "
                "reserved a purchase bonus still gets it when paid."
            ),
            label=lambda v: f"Voucher {v.code}",
        )

    @admin.action(description="Download the selected codes as CSV", permissions=["view"])
    def download_codes(self, request, queryset):
        return _csv_response(
            staff_vouchers_export(
                vouchers=queryset.order_by("code"),
                staff_user=request.user,
                what="selected codes",
            ),
            "vouchers.csv",
        )

    def get_urls(self):
        return [
            path(
                "generate/",
                self.admin_site.admin_view(self.generate_view),
                name="payments_voucher_generate",
            ),
            path(
                "batch/<str:batch>/codes.csv",
                self.admin_site.admin_view(self.batch_csv_view),
                name="payments_voucher_batch_csv",
            ),
            path(
                "credits/",
                self.admin_site.admin_view(self.credits_view),
                name="payments_voucher_credits",
            ),
        ] + super().get_urls()

    def generate_view(self, request):
        if not request.user.has_perm(ADD_PERMISSION):
            raise PermissionDenied
        form = GenerateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                batch, vouchers = staff_vouchers_generate(staff_user=request.user, **data)
            except VoucherError as exc:
                form.add_error(None, exc.message)
            else:
                csv_url = reverse("admin:payments_voucher_batch_csv", args=[batch])
                self.message_user(
                    request,
                    format_html(
                        '{} codes generated in batch {}. <a href="{}">Download them as CSV</a>.',
                        len(vouchers),
                        batch,
                        csv_url,
                    ),
                    messages.SUCCESS,
                )
                changelist = reverse("admin:payments_voucher_changelist")
                return redirect(f"{changelist}?{urlencode({'q': batch})}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Generate single-use codes",
            "opts": self.model._meta,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/payments/voucher/generate.html", context)

    def batch_csv_view(self, request, batch: str):
        if not request.user.has_perm(MANAGE_PERMISSION):
            raise PermissionDenied
        vouchers = Voucher.objects.filter(batch=batch).order_by("code")
        if not vouchers.exists():
            raise PermissionDenied("No such batch.")
        return _csv_response(
            staff_vouchers_export(
                vouchers=vouchers, staff_user=request.user, what=f"batch {batch}"
            ),
            f"vouchers-{batch}.csv",
        )

    def credits_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = voucher_credit_totals(granted_only=True, limit=500)
        context = {
            **self.admin_site.each_context(request),
            "title": "Promotional credits by voucher",
            "opts": self.model._meta,
            "rows": rows,
            "totals": {
                name: sum(getattr(r, name) for r in rows)
                for name in ("granted", "used", "expired", "voided", "left")
            },
        }
        return TemplateResponse(request, "admin/payments/voucher/credits.html", context)


def _deactivate_one(request, voucher, data):
    done = staff_voucher_deactivate(voucher=voucher, staff_user=request.user, reason=data["reason"])
    return messages.SUCCESS, f"Voucher {done.code} deactivated."


def _csv_response(body: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(VoucherRedemption)
class VoucherRedemptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "voucher_link", "user", "status", "credits", "order")
    list_select_related = ("voucher", "user")
    list_filter = ("status",)
    search_fields = ("=voucher__code", "=user__email")
    raw_id_fields = ("voucher", "user", "order", "entry")
    show_full_result_count = False

    @admin.display(description="Voucher")
    def voucher_link(self, obj):
        return admin_link(Voucher, obj.voucher_id, obj.voucher.code)
