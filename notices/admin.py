from django.contrib import admin

from core.admin import ReadOnlyAdminMixin

from .models import NoticePreferences


@admin.register(NoticePreferences)
class NoticePreferencesAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "off", "updated_at")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
