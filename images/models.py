"""Uploaded pictures, albums and the visits that count a picture's views.

Pages and links name pictures and albums by a random ``public_id`` (never the row id), so
nothing can be reached by guessing numbers; an UNLISTED album is reached by its share token.
"""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def _upload_to(instance, filename: str) -> str:
    return f"images/originals/{instance.owner_id}/{uuid.uuid4().hex}.{filename.rsplit('.', 1)[-1]}"


class EnhancedImage(models.Model):
    """A picture its owner uploaded: decoded, stripped of metadata and stored re-encoded.

    Enhancements are generation jobs (operation ``enhance``) whose ``parameters["inputs"]``
    name this picture's ``public_id``; see ``selectors.image_enhancements``.
    """

    class Format(models.TextChoices):
        JPEG = "JPEG", "JPEG"
        PNG = "PNG", "PNG"
        WEBP = "WEBP", "WebP"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="images"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="", max_length=2000)
    #: The stored key of the re-encoded original (its URL: ``storage.file_url``).
    original = models.FileField(upload_to=_upload_to, max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    format = models.CharField(max_length=8, choices=Format.choices)
    is_public = models.BooleanField(default=False)
    view_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["owner", "created_at"], name="images_image_owner_time"),
            models.Index(
                fields=["created_at"], name="images_image_public_time", condition=Q(is_public=True)
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(width__gt=0) & Q(height__gt=0), name="images_image_has_pixels"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def extension(self) -> str:
        return {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[self.format]

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("images:detail", args=[self.public_id])


def new_share_token() -> str:
    return secrets.token_urlsafe(24)


class Album(models.Model):
    class Privacy(models.TextChoices):
        PRIVATE = "PRIVATE", "Private: only you"
        UNLISTED = "UNLISTED", "Unlisted: anyone with the link"
        PUBLIC = "PUBLIC", "Public: in the gallery"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="albums"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="", max_length=2000)
    privacy = models.CharField(max_length=8, choices=Privacy.choices, default=Privacy.PRIVATE)
    #: The secret part of an UNLISTED album's share link; a new one revokes the old link.
    share_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    cover = models.ForeignKey(
        EnhancedImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    images = models.ManyToManyField(EnhancedImage, through="AlbumItem", related_name="albums")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [
            models.Index(fields=["owner", "updated_at"], name="images_album_owner_time"),
            models.Index(
                fields=["updated_at"],
                name="images_album_public_time",
                condition=Q(privacy="PUBLIC"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(privacy="UNLISTED") | Q(share_token__isnull=False),
                name="images_unlisted_album_has_token",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("images:album", args=[self.public_id])


class AlbumItem(models.Model):
    """A picture in an album, at a position (0 first). A picture is in an album at most once."""

    album = models.ForeignKey(Album, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(EnhancedImage, on_delete=models.CASCADE, related_name="album_items")
    position = models.PositiveIntegerField(default=0)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["album", "image"], name="images_once_per_album"),
        ]


class ImageView(models.Model):
    """One visitor's view of a public picture in one counting window: the unique key is what
    keeps reloads from inflating ``view_count``."""

    image = models.ForeignKey(EnhancedImage, on_delete=models.CASCADE, related_name="+")
    #: A keyed hash of the visitor's session (or address and browser): no personal data kept.
    visitor = models.CharField(max_length=64)
    window = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["image", "visitor", "window"], name="images_one_view_per_window"
            ),
        ]
