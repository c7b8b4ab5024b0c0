"""Credit notes, billing profiles and auto top-ups in the admin, read-only."""

from django.contrib import admin

from core.admin import BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin

from .models import AutoTopUp, AutoTopUpAttempt, BillingProfile, CreditNote, CreditNoteSequence


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = ("number", "issued_at", "invoice", "amount", "currency", "reason")
    list_select_related = ("invoice",)
    search_fields = ("=number", "=invoice__number")
    raw_id_fields = ("invoice",)
    ordering = ("-year", "-sequence")


@admin.register(CreditNoteSequence)
class CreditNoteSequenceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("year", "last")


@admin.register(BillingProfile)
class BillingProfileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "name", "country", "tax_id", "updated_at")
    list_select_related = ("user",)
    raw_id_fields = ("user",)


@admin.register(AutoTopUp)
class AutoTopUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "user",
        "enabled",
        "threshold",
        "package",
        "provider",
        "payment_method_label",
        "disabled_reason",
    )
    list_filter = ("enabled", "provider")
    list_select_related = ("user", "package")
    raw_id_fields = ("user",)


@admin.register(AutoTopUpAttempt)
class AutoTopUpAttemptAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "user", "crossing_key", "order", "status", "error")
    list_filter = ("status",)
    list_select_related = ("user", "order")
    raw_id_fields = ("user", "order")
    ordering = ("-created_at",)
