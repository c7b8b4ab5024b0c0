"""Reads for the image pages. Owners see their own pictures and albums; everyone else sees
only what a public album, a public picture or an unlisted album's share token shows them."""

import hashlib
import uuid

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404

from generations.models import GenerationJob

from .models import Album, AlbumItem, EnhancedImage


def _uuid(value) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such page.") from None


def image_enhancements(*, image: EnhancedImage) -> QuerySet:
    """The enhancement jobs of ``image`` (its owner's jobs that name it), newest first."""
    return GenerationJob.objects.filter(
        user_id=image.owner_id,
        operation="enhance",
        parameters__inputs__image=str(image.public_id),
    ).order_by("-created_at", "-pk")


def latest_result(*, image: EnhancedImage) -> GenerationJob | None:
    """The newest completed enhancement of ``image`` that has a result."""
    return (
        image_enhancements(image=image)
        .filter(status=GenerationJob.Status.COMPLETED)
        .exclude(result_file="")
        .first()
    )


def display_name(image: EnhancedImage) -> str:
    """The file shown for ``image`` outside its owner's pages: its newest enhancement's result,
    else the original."""
    job = latest_result(image=image)
    return job.result_file.name if job else image.original.name


def display_names(images) -> dict[int, str]:
    """``display_name`` of each of ``images``, in one query."""
    images = list(images)
    if not images:
        return {}
    by_public_id = {str(image.public_id): image for image in images}
    found: dict[int, str] = {}
    jobs = (
        GenerationJob.objects.filter(
            user_id__in={image.owner_id for image in images},
            operation="enhance",
            status=GenerationJob.Status.COMPLETED,
            parameters__inputs__image__in=list(by_public_id),
        )
        .exclude(result_file="")
        .order_by("-created_at", "-pk")
        .values_list("parameters__inputs__image", "result_file")
    )
    for public_id, name in jobs:
        image = by_public_id.get(public_id)
        if image is not None and image.pk not in found and image.owner_id is not None:
            found[image.pk] = name
    return {image.pk: found.get(image.pk, image.original.name) for image in images}


def with_versions(images):
    """``images`` with ``version`` set: a short hash of the file each shows, for cache-busting
    addresses (a new enhancement gives a new address)."""
    images = list(images)
    names = display_names(images)
    for image in images:
        image.version = hashlib.sha256(names[image.pk].encode()).hexdigest()[:12]
    return images


def images_for_owner(*, owner) -> QuerySet:
    return EnhancedImage.objects.filter(owner_id=owner.pk).order_by("-created_at", "-pk")


def image_for_owner(*, owner, public_id) -> EnhancedImage:
    image = EnhancedImage.objects.filter(owner_id=owner.pk, public_id=_uuid(public_id)).first()
    if image is None:
        raise Http404("No such picture.")
    return image


def albums_for_owner(*, owner) -> QuerySet:
    return (
        Album.objects.filter(owner_id=owner.pk)
        .select_related("cover")
        .annotate(image_count=Count("items"))
        .order_by("-updated_at", "-pk")
    )


def album_for_owner(*, owner, public_id) -> Album:
    album = Album.objects.filter(owner_id=owner.pk, public_id=_uuid(public_id)).first()
    if album is None:
        raise Http404("No such album.")
    return album


def album_items(*, album: Album) -> list[AlbumItem]:
    return list(album.items.select_related("image").order_by("position", "pk"))


def album_shared(*, token: str) -> Album:
    """The UNLISTED album whose share link carries ``token`` (404 once revoked)."""
    album = (
        Album.objects.filter(privacy=Album.Privacy.UNLISTED, share_token=token or "-")
        .select_related("owner")
        .first()
    )
    if album is None or not token:
        raise Http404("This link does not work any more.")
    return album


def album_public(*, public_id) -> Album:
    album = Album.objects.filter(privacy=Album.Privacy.PUBLIC, public_id=_uuid(public_id)).first()
    if album is None:
        raise Http404("No such album.")
    return album


def in_public_album_q() -> Q:
    return Q(
        Exists(
            AlbumItem.objects.filter(image_id=OuterRef("pk"), album__privacy=Album.Privacy.PUBLIC)
        )
    )


def gallery_albums(*, limit: int = 24) -> list[Album]:
    return list(
        Album.objects.filter(privacy=Album.Privacy.PUBLIC)
        .select_related("cover")
        .annotate(image_count=Count("items"))
        .filter(image_count__gt=0)
        .order_by("-updated_at", "-pk")[:limit]
    )


def gallery_images() -> QuerySet:
    return EnhancedImage.objects.filter(is_public=True).order_by("-created_at", "-pk")


def public_image(*, public_id) -> EnhancedImage:
    """A picture anyone may see: public itself, or in a public album."""
    image = (
        EnhancedImage.objects.filter(public_id=_uuid(public_id))
        .filter(Q(is_public=True) | in_public_album_q())
        .first()
    )
    if image is None:
        raise Http404("No such picture.")
    return image


def shared_image(*, album: Album, public_id) -> EnhancedImage:
    item = album.items.select_related("image").filter(image__public_id=_uuid(public_id)).first()
    if item is None:
        raise Http404("No such picture.")
    return item.image


def albums_with_image(*, owner, image: EnhancedImage) -> list[Album]:
    return list(Album.objects.filter(owner_id=owner.pk, items__image=image).order_by("title"))
