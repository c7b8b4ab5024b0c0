"""The outbox in the admin: a read-only list of account emails, what is due and what failed."""

from django.contrib import admin

from core.admin import BigTableAdminMixin, ReadOnlyAdminMixin

from .models import OutboundEmail


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "kind",
        "recipients",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error_short",
    )
    list_display_links = ("id", "created_at")
    list_filter = ("status", "kind")
    ordering = ("-id",)
    fields = (
        "id",
        "created_at",
        "kind",
        "event_key",
        "from_email",
        "recipients",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
        "headers",
        "body",
    )
    readonly_fields = fields

    @admin.display(description="To")
    def recipients(self, obj):
        return ", ".join(obj.to)

    @admin.display(description="Last error")
    def last_error_short(self, obj):
        return obj.last_error if len(obj.last_error) <= 80 else obj.last_error[:79] + "…"
