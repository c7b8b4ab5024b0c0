"""API keys in the admin: visible (prefix, owner, scopes, last used), never editable, revocable
by an action that needs the ``api.revoke_apikey`` permission and is audited per key."""

from django.contrib import admin, messages

from core.errors import ApplicationError

from .keys import api_key_revoke
from .models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "display",
        "name",
        "user",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "daily_credit_cap",
        "revoked_at",
    )
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__email")
    list_filter = ("revoked_at",)
    raw_id_fields = ("user", "revoked_by", "replaced_by")
    readonly_fields = [f.name for f in ApiKey._meta.fields]
    exclude = ("secret_hash",)
    show_full_result_count = False
    actions = ["revoke_keys"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f for f in self.readonly_fields if f != "secret_hash"]

    @admin.display(description="Key")
    def display(self, obj: ApiKey) -> str:
        return obj.display

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        done = 0
        for key in queryset:
            try:
                api_key_revoke(key_id=key.pk, actor=request.user, reason="staff action")
            except ApplicationError as error:
                self.message_user(request, f"{key.display}: {error.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{done} key(s) revoked.", messages.SUCCESS)

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("api.revoke_apikey")
