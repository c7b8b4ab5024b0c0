"""The pictures and albums part of a user's data export and account deletion."""

from django.db import transaction

from accounts.lifecycle import register_account_data

from .models import Album, EnhancedImage
from .storage import delete_files


def export_images(user):
    for image in EnhancedImage.objects.filter(owner_id=user.pk).order_by("created_at", "pk"):
        yield {
            "id": str(image.public_id),
            "name": image.name,
            "description": image.description,
            "width": image.width,
            "height": image.height,
            "bytes": image.size_bytes,
            "format": image.format,
            "public": image.is_public,
            "views": image.view_count,
            "uploaded_at": image.created_at,
        }


def export_albums(user):
    for album in Album.objects.filter(owner_id=user.pk).prefetch_related("items__image"):
        yield {
            "id": str(album.public_id),
            "title": album.title,
            "description": album.description,
            "privacy": album.privacy,
            "images": [str(item.image.public_id) for item in album.items.all()],
        }


def erase(*, user, actor, reason: str) -> None:
    """Delete every album and picture of the user, and the pictures' files after commit."""
    names = list(EnhancedImage.objects.filter(owner_id=user.pk).values_list("original", flat=True))
    Album.objects.filter(owner_id=user.pk).delete()
    EnhancedImage.objects.filter(owner_id=user.pk).delete()
    transaction.on_commit(lambda: delete_files(names))


def register() -> None:
    register_account_data("images", export=export_images, erase=erase)
    register_account_data("albums", export=export_albums)
