"""Pictures and albums in the admin: read-only (users change their own from their pages; a
deletion goes through ``services.image_delete`` so that files are removed too)."""

from django.contrib import admin

from core.admin import BigTableAdminMixin, ReadOnlyAdminMixin

from .models import Album, AlbumItem, EnhancedImage


@admin.register(EnhancedImage)
class EnhancedImageAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "width",
        "height",
        "size_bytes",
        "format",
        "is_public",
        "view_count",
        "created_at",
    )
    list_filter = ("format", "is_public")
    list_select_related = ("owner",)
    search_fields = ("=public_id", "=owner__email")
    raw_id_fields = ("owner",)


class AlbumItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AlbumItem
    raw_id_fields = ("image",)
    extra = 0


@admin.register(Album)
class AlbumAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("title", "owner", "privacy", "updated_at")
    list_filter = ("privacy",)
    list_select_related = ("owner",)
    search_fields = ("=public_id", "=owner__email")
    raw_id_fields = ("owner", "cover")
    inlines = [AlbumItemInline]
