"""Uploading, enhancing and deleting pictures; albums and their sharing; counted views.

Files are written to storage before the transaction that records them and deleted if it does
not commit; files of deleted pictures are deleted after the deletion commits. A process that
dies in between leaves a file nothing names, which the orphan sweep (``cleanup``) removes.
"""

import hashlib
import hmac
import unicodedata
import uuid
from functools import partial

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from generations.models import GenerationJob
from generations.services import JobRequest, job_submit

from . import enhancing, pictures
from .app_settings import app_settings
from .backends import OFFLINE_MODEL
from .exceptions import ImageBusy, InvalidInput, TooLarge
from .models import Album, AlbumItem, EnhancedImage, new_share_token
from .selectors import image_enhancements
from .storage import delete_files

__all__ = [
    "album_add_image",
    "album_create",
    "album_delete",
    "album_move_image",
    "album_remove_image",
    "album_set_cover",
    "album_share_reset",
    "album_update",
    "enhancement_model",
    "enhancement_submit",
    "image_delete",
    "image_update",
    "image_upload",
    "image_view_record",
    "visitor_key",
]

Status = GenerationJob.Status


# --- pictures -----------------------------------------------------------------------------


def image_upload(
    *, owner, upload, name: str = "", description: str = "", is_public: bool = False
) -> EnhancedImage:
    """Check, clean and store an uploaded file; record it. Raises UploadRefused (TooLarge) or
    InvalidInput (a bad name or description); then nothing was stored."""
    limit = app_settings.MAX_UPLOAD_BYTES
    declared = getattr(upload, "size", None)
    if declared is not None and declared > limit:
        raise TooLarge(
            f"The file is {declared / 1048576:.1f} MB; the largest accepted is "
            f"{limit / 1048576:.1f} MB.",
            reason="too_many_bytes",
        )
    data = upload.read(limit + 1)
    picture = pictures.read_upload(data)
    name = _clean_text(
        name or (getattr(upload, "name", "") or "").rsplit(".", 1)[0] or "Untitled",
        limit=200,
        what="name",
    )
    description = _clean_text(description, limit=2000, what="description", blank=True)
    image = EnhancedImage(
        owner=owner,
        name=name,
        description=description,
        width=picture.width,
        height=picture.height,
        size_bytes=len(picture.content),
        format=picture.format,
        is_public=bool(is_public),
    )
    field = EnhancedImage._meta.get_field("original")
    stored = field.storage.save(
        field.generate_filename(image, f"upload.{picture.extension}"),
        ContentFile(picture.content),
    )
    committed = False
    try:
        with transaction.atomic(durable=True):
            image.original.name = stored
            image.save()
        committed = True  # past the commit itself (a deferred constraint fails there)
    finally:
        if not committed:
            field.storage.delete(stored)
    return image


def image_update(*, owner, image_id, name: str, description: str, is_public: bool) -> EnhancedImage:
    with transaction.atomic(durable=True):
        image = _own_image(owner, image_id, lock=True)
        image.name = _clean_text(name, limit=200, what="name")
        image.description = _clean_text(description, limit=2000, what="description", blank=True)
        image.is_public = bool(is_public)
        image.save(update_fields=["name", "description", "is_public", "updated_at"])
    return image


def image_delete(*, owner, image_id) -> list[str]:
    """Delete ``owner``'s picture, its place in albums, and the files of it and of its
    enhancements (after commit). The enhancement jobs stay (the ledger points at them) without
    their result. Refused while an enhancement is waiting or running. Returns the file names."""
    with transaction.atomic(durable=True):
        image = _own_image(owner, image_id, lock=True)
        jobs = list(image_enhancements(image=image).select_for_update())
        if any(job.status in GenerationJob.ACTIVE_STATUSES for job in jobs):
            raise ImageBusy(
                "An enhancement of this picture is still waiting or running: wait for it to "
                "finish (or cancel it), then delete the picture."
            )
        names = [image.original.name] + [job.result_file.name for job in jobs if job.result_file]
        GenerationJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
            result_file="", updated_at=timezone.now()
        )
        image.delete()
        transaction.on_commit(partial(delete_files, names))
    return names


def enhancement_submit(*, user, image_id, tier: str, use_own_key: bool = True) -> GenerationJob:
    """Order an enhancement of ``user``'s picture at ``tier``: a generation job, estimated,
    charged and run like every other (see ``generations.services.job_submit``)."""
    image = _own_image(user, image_id)
    if tier not in enhancing.TIERS:
        raise InvalidInput(f"Choose one of {', '.join(enhancing.TIERS)}.")
    return job_submit(
        user=user,
        request=JobRequest(
            operation="enhance",
            model=enhancement_model(),
            tier=tier,
            prompt=f"Enhance “{image.name}” to {tier}",
            inputs={"image": str(image.public_id)},
            use_own_key=use_own_key,
        ),
    )


def enhancement_model() -> str:
    """The model the image pages order: the offline enhancer, or the hosted edit model."""
    if app_settings.ENHANCER == "hosted":
        return app_settings.OPENAI_IMAGE_EDIT_MODEL
    return OFFLINE_MODEL


# --- albums -------------------------------------------------------------------------------


def album_create(
    *, owner, title: str, description: str = "", privacy: str = Album.Privacy.PRIVATE
) -> Album:
    privacy = _checked_privacy(privacy)
    with transaction.atomic(durable=True):
        return Album.objects.create(
            owner=owner,
            title=_clean_text(title, limit=200, what="title"),
            description=_clean_text(description, limit=2000, what="description", blank=True),
            privacy=privacy,
            share_token=new_share_token() if privacy == Album.Privacy.UNLISTED else None,
        )


def album_update(*, owner, album_id, title: str, description: str, privacy: str) -> Album:
    """Rename, describe or change who can see an album. Leaving UNLISTED forgets the share
    token: the old link stops working, and becoming UNLISTED again makes a new one."""
    privacy = _checked_privacy(privacy)
    with transaction.atomic(durable=True):
        album = _own_album(owner, album_id, lock=True)
        album.title = _clean_text(title, limit=200, what="title")
        album.description = _clean_text(description, limit=2000, what="description", blank=True)
        if privacy == Album.Privacy.UNLISTED and not album.share_token:
            album.share_token = new_share_token()
        elif privacy != Album.Privacy.UNLISTED:
            album.share_token = None
        album.privacy = privacy
        album.save()
    return album


def album_share_reset(*, owner, album_id) -> Album:
    """A new share link for an UNLISTED album; the old one stops working at once."""
    with transaction.atomic(durable=True):
        album = _own_album(owner, album_id, lock=True)
        if album.privacy != Album.Privacy.UNLISTED:
            raise InvalidInput("Only an unlisted album has a share link.")
        album.share_token = new_share_token()
        album.save(update_fields=["share_token", "updated_at"])
    return album


def album_delete(*, owner, album_id) -> None:
    """Delete an album (its pictures stay in your uploads)."""
    with transaction.atomic(durable=True):
        _own_album(owner, album_id, lock=True).delete()


def album_add_image(*, owner, album_id, image_id) -> AlbumItem:
    """Put ``owner``'s picture last in ``owner``'s album; the first picture becomes the cover.
    A picture is in an album at most once: adding it again is refused."""
    with transaction.atomic(durable=True):
        album = _own_album(owner, album_id, lock=True)
        image = _own_image(owner, image_id)
        last = album.items.aggregate(last=Max("position"))["last"]
        try:
            with transaction.atomic():
                item = AlbumItem.objects.create(
                    album=album, image=image, position=0 if last is None else last + 1
                )
        except IntegrityError:
            raise InvalidInput(f"“{image.name}” is already in “{album.title}”.") from None
        if album.cover_id is None:
            album.cover = image
        album.save(update_fields=["cover", "updated_at"])
    return item


def album_remove_image(*, owner, album_id, image_id) -> None:
    with transaction.atomic(durable=True):
        album = _own_album(owner, album_id, lock=True)
        item = _item(album, image_id)
        item.delete()
        if album.cover_id == item.image_id:
            first = album.items.order_by("position", "pk").first()
            album.cover_id = first.image_id if first else None
        album.save(update_fields=["cover", "updated_at"])


def album_set_cover(*, owner, album_id, image_id) -> Album:
    with transaction.atomic(durable=True):
        album = _own_album(owner, album_id, lock=True)
        album.cover_id = _item(album, image_id).image_id
        album.save(update_fields=["cover", "updated_at"])
    return album


def album_move_image(*, owner, album_id, image_id, offset: int) -> None:
    """Move a picture ``offset`` places (-1: one earlier, 1: one later) in the album's order."""
    with transaction.atomic(durable=True):
        album = _own_album(owner, album_id, lock=True)
        items = list(album.items.order_by("position", "pk"))
        index = next(
            (i for i, item in enumerate(items) if str(item.image.public_id) == str(image_id)), None
        )
        if index is None:
            raise InvalidInput("That picture is not in this album.")
        target = max(0, min(len(items) - 1, index + offset))
        items.insert(target, items.pop(index))
        for position, item in enumerate(items):
            item.position = position
        AlbumItem.objects.bulk_update(items, ["position"])
        album.save(update_fields=["updated_at"])


# --- views of public pictures --------------------------------------------------------------


def visitor_key(*, user_id=None, session_key: str = "", address: str = "", agent: str = "") -> str:
    """A keyed hash naming one visitor: their account, else their session, else their address
    and browser. Nothing that names the person is stored."""
    raw = (
        f"u:{user_id}"
        if user_id
        else f"s:{session_key}"
        if session_key
        else f"a:{address}|{agent[:200]}"
    )
    return hmac.new(settings.SECRET_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()


def image_view_record(*, image_pk: int, visitor: str) -> bool:
    """Count a view of a public picture once per visitor and window: a reload in the same
    window adds nothing. Returns whether this view was counted."""
    window = int(timezone.now().timestamp()) // app_settings.VIEW_WINDOW_SECONDS
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH seen AS (
                INSERT INTO images_imageview (image_id, visitor, "window", created_at)
                VALUES (%s, %s, %s, now())
                ON CONFLICT (image_id, visitor, "window") DO NOTHING
                RETURNING image_id
            )
            UPDATE images_enhancedimage SET view_count = view_count + 1
            WHERE id IN (SELECT image_id FROM seen)
            RETURNING id
            """,
            [image_pk, visitor, window],
        )
        return cursor.fetchone() is not None


# --- internals ----------------------------------------------------------------------------


def _own_image(owner, image_id, *, lock: bool = False) -> EnhancedImage:
    rows = EnhancedImage.objects.filter(owner_id=owner.pk, public_id=_uuid(image_id))
    image = (rows.select_for_update() if lock else rows).first()
    if image is None:
        raise EnhancedImage.DoesNotExist("No such picture.")
    return image


def _own_album(owner, album_id, *, lock: bool = False) -> Album:
    rows = Album.objects.filter(owner_id=owner.pk, public_id=_uuid(album_id))
    album = (rows.select_for_update() if lock else rows).first()
    if album is None:
        raise Album.DoesNotExist("No such album.")
    return album


def _item(album: Album, image_id) -> AlbumItem:
    item = album.items.filter(image__public_id=_uuid(image_id)).first()
    if item is None:
        raise InvalidInput("That picture is not in this album.")
    return item


def _uuid(value) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def _checked_privacy(privacy: str) -> str:
    if privacy not in Album.Privacy.values:
        raise InvalidInput("Choose who can see the album.")
    return privacy


def _clean_text(text: str, *, limit: int, what: str, blank: bool = False) -> str:
    text = (text or "").replace("\r\n", "\n").strip()
    if not text and not blank:
        raise InvalidInput(f"Give a {what}.")
    if len(text) > limit:
        raise InvalidInput(f"Keep the {what} under {limit} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in text):
        raise InvalidInput(f"The {what} contains invisible control characters.")
    return text
