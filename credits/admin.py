"""The ledger in the admin: read-only. Credits move only through credits.services."""

import json
from functools import partial

from django.contrib import admin
from django.contrib.admin.checks import InlineModelAdminChecks
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.forms.models import BaseModelFormSet, modelformset_factory
from django.utils.html import format_html

from core.admin import (
    BigTableAdminMixin,
    ExactSearchMixin,
    ReadOnlyAdminMixin,
    RecentReadOnlyInline,
    admin_link,
)

from .models import (
    AuditLog,
    BalanceCrossing,
    CreditBalance,
    CreditLot,
    IdempotencyRecord,
    LedgerEntry,
    LotCategory,
    LotMovement,
    TrialClaim,
)
from .references import admin_link_parts
from .trials import address_digest


def pretty_json(value) -> str:
    return format_html(
        '<pre class="bo-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True, default=str)
    )


def source_link(entry):
    """A link to the admin page of what caused ``entry`` ("Order #12"), or a dash."""
    parts = admin_link_parts(entry.source_type, entry.source_id)
    if parts is None:
        return "–" if entry.source_id is None else f"{entry.source_type} #{entry.source_id}"
    model, text = parts
    return admin_link(model, entry.source_id, text)


class LedgerEntryInline(RecentReadOnlyInline):
    """The newest ledger entries of whatever the page shows (set ``fk_name`` and ``limit``)."""

    model = LedgerEntry
    fields = (
        "created_at",
        "kind",
        "amount",
        "balance_after",
        "description",
        "internal_note",
        "created_by",
    )
    readonly_fields = fields
    ordering = ("-id",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description="Caused by")
    def source_link(self, obj):
        return source_link(obj)


class SourceLedgerFormSet(BaseModelFormSet):
    """The newest ``limit`` entries caused by the page's object: ``(source_type, its pk)``."""

    source_type = ""
    limit = 20

    def __init__(
        self,
        data=None,
        files=None,
        instance=None,
        save_as_new=False,
        prefix=None,
        queryset=None,
        **kwargs,
    ):
        self.instance = instance
        queryset = LedgerEntry.objects.all() if queryset is None else queryset
        if instance is None or instance.pk is None:
            queryset = queryset.none()
        else:
            queryset = queryset.filter(source_type=self.source_type, source_id=instance.pk)[
                : self.limit
            ]
        super().__init__(data, files, prefix=prefix, queryset=queryset, **kwargs)

    @classmethod
    def get_default_prefix(cls):
        return "ledger_entries"


class _SourceInlineChecks(InlineModelAdminChecks):
    """An entry names its source by type and id, not by a foreign key to the page's model."""

    def _check_exclude_of_parent_model(self, obj, parent_model):
        return []

    def _check_relation(self, obj, parent_model):
        return []


class SourceLedgerInline(LedgerEntryInline):
    """The newest ledger entries caused by the object the page shows (set ``source_type``)."""

    checks_class = _SourceInlineChecks
    formset = SourceLedgerFormSet
    #: The registered source type of the page's model (``"payments.order"``).
    source_type = ""

    def get_formset(self, request, obj=None, **kwargs):
        fields = kwargs.pop("fields", None) or flatten_fieldsets(self.get_fieldsets(request, obj))
        exclude = [*(self.exclude or []), *self.get_readonly_fields(request, obj)]
        formset = type(
            f"{self.__class__.__name__}FormSet",
            (self.formset,),
            {"source_type": self.source_type, "limit": self.limit},
        )
        return modelformset_factory(
            self.model,
            form=self.form,
            formset=formset,
            formfield_callback=partial(self.formfield_for_dbfield, request=request),
            fields=[name for name in fields if name not in exclude],
            exclude=exclude or None,
            extra=0,
            max_num=0,
            can_delete=False,
            **kwargs,
        )


def cost_basis_text(lot) -> str:
    """Money per credit with its currency ("0.012500 EUR"), or a dash for promotional credits."""
    if lot.category == LotCategory.PROMOTIONAL or not lot.currency:
        return "–"
    return f"{lot.cost_basis} {lot.currency}"


class CreditLotInline(RecentReadOnlyInline):
    """The newest lots of the page's user: where each credit came from and what is left of it."""

    model = CreditLot
    fk_name = "user"
    limit = 20
    verbose_name_plural = "Newest credit lots (up to 20)"
    fields = (
        "source",
        "category",
        "original",
        "remaining",
        "effective_at",
        "expires_at",
        "cost_basis_display",
    )
    readonly_fields = fields
    ordering = ("-id",)

    @admin.display(description="Cost basis per credit")
    def cost_basis_display(self, obj):
        return cost_basis_text(obj)


class LotMovementInline(RecentReadOnlyInline):
    """What the newest entries took from the lot (negative) or gave back to it (positive)."""

    model = LotMovement
    fk_name = "lot"
    limit = 50
    verbose_name_plural = "Newest movements (up to 50)"
    fields = ("created_at", "entry_link", "entry_kind", "credits", "returns")
    readonly_fields = fields
    ordering = ("-id",)
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("entry")

    def has_view_permission(self, request, obj=None):
        # The movements are part of the lot: whoever may see the lot sees them.
        return request.user.has_perm("credits.view_creditlot")

    @admin.display(description="Ledger entry")
    def entry_link(self, obj):
        return admin_link(LedgerEntry, obj.entry_id)

    @admin.display(description="Kind")
    def entry_kind(self, obj):
        return obj.entry.get_kind_display()


@admin.register(CreditLot)
class CreditLotAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "user",
        "source",
        "category",
        "original",
        "remaining",
        "expires_at",
        "cost_basis_display",
        "effective_at",
    )
    list_display_links = ("id",)
    list_select_related = ("user",)
    list_filter = ("category", "source")
    search_fields = ("user__email",)
    search_help_text = "A lot id or user id, or an exact email address."
    exact_int_fields = ("pk", "user_id")
    exact_user_fields = ("user_id",)
    ordering = ("-id",)
    fields = (
        "id",
        "user_link",
        "category",
        "source",
        "original",
        "remaining",
        "priority",
        "effective_at",
        "expires_at",
        "cost_basis_display",
        "source_link",
        "grant_link",
        "created_at",
    )
    readonly_fields = fields
    inlines = (LotMovementInline,)

    @admin.display(description="Cost basis per credit", ordering="cost_basis")
    def cost_basis_display(self, obj):
        return cost_basis_text(obj)

    @admin.display(description="Created by")
    def source_link(self, obj):
        return source_link(obj)

    @admin.display(description="Grant entry")
    def grant_link(self, obj):
        return admin_link(LedgerEntry, obj.grant_entry_id)

    @admin.display(description="User")
    def user_link(self, obj):
        return admin_link(type(obj.user), obj.user_id, str(obj.user))


@admin.register(LotMovement)
class LotMovementAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    """Credits one entry took from a lot (negative) or gave back to it (positive)."""

    list_display = ("id", "created_at", "entry_link", "lot_link", "credits", "returns_link")
    search_help_text = "A movement, ledger entry or lot id."
    search_fields = ("entry_id",)
    exact_int_fields = ("pk", "entry_id", "lot_id")
    ordering = ("-id",)
    fields = ("id", "created_at", "entry_link", "lot_link", "credits", "returns_link")
    readonly_fields = fields

    @admin.display(description="Ledger entry")
    def entry_link(self, obj):
        return admin_link(LedgerEntry, obj.entry_id)

    @admin.display(description="Lot")
    def lot_link(self, obj):
        return admin_link(CreditLot, obj.lot_id)

    @admin.display(description="Gives back")
    def returns_link(self, obj):
        return admin_link(LotMovement, obj.returns_id)


class SpendingFrozenFilter(admin.SimpleListFilter):
    title = "spending"
    parameter_name = "frozen"

    def lookups(self, request, model_admin):
        return [("yes", "Frozen (open hold)"), ("no", "Not frozen")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(spend_holds__gt=0)
        if self.value() == "no":
            return queryset.filter(spend_holds=0)
        return queryset


@admin.register(CreditBalance)
class CreditBalanceAdmin(
    ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin
):
    list_display = (
        "user",
        "balance",
        "lifetime_earned",
        "lifetime_spent",
        "spend_holds",
        "updated_at",
    )
    list_select_related = ("user",)
    list_filter = (SpendingFrozenFilter,)
    search_fields = ("user__email",)
    search_help_text = "An exact email address or user id."
    exact_int_fields = ("user_id",)
    exact_user_fields = ("user_id",)
    ordering = ("-updated_at",)
    fields = (
        "user_link",
        "balance",
        "lifetime_earned",
        "lifetime_spent",
        "spend_holds",
        "regen_checked_at",
        "version",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="User")
    def user_link(self, obj):
        return admin_link(type(obj.user), obj.user_id, str(obj.user))


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "kind",
        "signed_amount",
        "balance_after",
        "source_link",
        "created_by",
        "description",
        "internal_note",
    )
    list_display_links = ("id", "created_at")
    list_select_related = ("user", "created_by")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__email",)
    search_help_text = "An entry, order or job id; an exact email address; or an idempotency key."
    exact_int_fields = ("pk", "source_id", "user_id")
    exact_user_fields = ("user_id",)
    exact_text_fields = ("idempotency_key",)
    ordering = ("-id",)
    fields = (
        "id",
        "created_at",
        "user_link",
        "kind",
        "signed_amount",
        "balance_before",
        "balance_after",
        "description",
        "internal_note",
        "source_link",
        "reverses_link",
        "created_by",
        "idempotency_key",
        "metadata_pretty",
    )
    readonly_fields = fields

    @admin.display(description="Amount", ordering="amount")
    def signed_amount(self, obj):
        return f"{obj.amount:+d}"

    @admin.display(description="Caused by", ordering="source_id")
    def source_link(self, obj):
        return source_link(obj)

    @admin.display(description="Reverses")
    def reverses_link(self, obj):
        return admin_link(LedgerEntry, obj.reverses_id)

    @admin.display(description="User")
    def user_link(self, obj):
        return admin_link(type(obj.user), obj.user_id, str(obj.user))

    @admin.display(description="Metadata")
    def metadata_pretty(self, obj):
        return pretty_json(obj.metadata)


class AuditKindFilter(admin.SimpleListFilter):
    title = "kind of action"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [
            ("staff", "Staff actions"),
            ("credits", "Credit movements"),
            ("payments", "Payments"),
            ("generations", "Generations"),
        ]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action__startswith=f"{self.value()}.")
        return queryset


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "action",
        "success",
        "actor",
        "user",
        "reason",
        "error_message",
    )
    list_select_related = ("actor", "user")
    list_filter = (AuditKindFilter, "success", ("created_at", admin.DateFieldListFilter))
    search_fields = ("action",)
    search_help_text = "An exact action name (staff.order_refund), email address, or user id."
    exact_int_fields = ("pk", "user_id", "actor_id")
    exact_user_fields = ("user_id", "actor_id")
    exact_text_fields = ("action",)
    ordering = ("-id",)
    fields = (
        "id",
        "created_at",
        "action",
        "success",
        "actor",
        "user",
        "error_message",
        "metadata_pretty",
    )
    readonly_fields = fields

    @admin.display(description="Why")
    def reason(self, obj):
        return (obj.metadata or {}).get("reason", "")

    @admin.display(description="Details")
    def metadata_pretty(self, obj):
        return pretty_json(obj.metadata)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(
    ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin
):
    list_display = ("key", "created_at", "expires_at")
    search_fields = ("key",)
    search_help_text = "An exact key."
    exact_text_fields = ("key",)
    ordering = ("-id",)
    fields = ("key", "created_at", "expires_at", "result_pretty")
    readonly_fields = fields

    @admin.display(description="Result")
    def result_pretty(self, obj):
        return pretty_json(obj.result)


@admin.register(TrialClaim)
class TrialClaimAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    """Which addresses have had their free trial (stored as digests: search by the address)."""

    list_display = ("address_digest", "user_link", "created_at")
    search_fields = ("address_digest",)
    search_help_text = (
        "An email address, in any spelling (case, plus-tag, Gmail dots), or a user id."
    )
    ordering = ("-id",)
    fields = ("address_digest", "user_link", "created_at")
    readonly_fields = fields

    @admin.display(description="User")
    def user_link(self, obj):
        return _user_link(obj.user_id)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.filter(address_digest=address_digest(term)), False
        if term.isdigit():
            return queryset.filter(user_id=int(term)), False
        return queryset.none(), False


@admin.register(BalanceCrossing)
class BalanceCrossingAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    """Balances that fell below a low-balance alert or an automatic top-up threshold, and
    whether what follows (the email, the top-up) has been done. A crossing whose handling
    keeps failing shows its last error here."""

    list_display = (
        "id",
        "user_link",
        "kind",
        "threshold",
        "balance_after",
        "created_at",
        "handled_at",
        "attempts",
    )
    list_filter = ("kind", ("handled_at", admin.EmptyFieldListFilter))
    search_fields = ("=user__id",)
    search_help_text = "A user id."
    ordering = ("-id",)
    fields = (
        "user_link",
        "kind",
        "threshold",
        "balance_before",
        "balance_after",
        "entry_link",
        "created_at",
        "handled_at",
        "attempts",
        "last_error",
    )
    readonly_fields = fields

    @admin.display(description="User")
    def user_link(self, obj):
        return _user_link(obj.user_id)

    @admin.display(description="Ledger entry")
    def entry_link(self, obj):
        return admin_link(LedgerEntry, obj.entry_id) if obj.entry_id else "–"


def _user_link(user_id: int):
    """A link to the user's admin page by id alone (for rows whose user is not loaded)."""
    return admin_link(get_user_model(), user_id)
