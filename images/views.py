"""Pages for pictures, albums, share links and the public gallery. Thin: parse the request,
call one service or selector, render. Pictures and albums are named by random ids; anything
that is not the visitor's to see answers 404, whether it exists or not."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.net import client_ip
from core.errors import ApplicationError
from generations.exceptions import GenerationsError
from generations.pricing import estimate

from . import services
from .app_settings import app_settings
from .enhancing import TIERS, plan
from .forms import AddToAlbumForm, AlbumForm, EnhanceForm, ImageForm, UploadForm
from .models import Album, EnhancedImage
from .selectors import (
    album_for_owner,
    album_items,
    album_public,
    album_shared,
    albums_for_owner,
    albums_with_image,
    display_name,
    gallery_albums,
    gallery_images,
    image_enhancements,
    image_for_owner,
    images_for_owner,
    latest_result,
    public_image,
    shared_image,
    with_versions,
)
from .storage import serve

PAGE_SIZE = 24


# --- your pictures ------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def image_list(request):
    status = 200
    form = UploadForm()
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                image = services.image_upload(
                    owner=request.user,
                    upload=data["file"],
                    name=data["name"],
                    description=data["description"],
                    is_public=data["is_public"],
                )
            except ApplicationError as exc:
                form.add_error("file", exc.message)
                status = exc.status
            else:
                messages.success(
                    request, f"“{image.name}” is uploaded ({image.width} × {image.height})."
                )
                return redirect(image)
        else:
            status = 400
    page = Paginator(images_for_owner(owner=request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "images/list.html",
        {"form": form, "page": page, "images": page.object_list},
        status=status,
    )


@login_required
@require_GET
def image_detail(request, public_id):
    image = image_for_owner(owner=request.user, public_id=public_id)
    return render(request, "images/detail.html", _image_context(request, image))


def _image_context(request, image: EnhancedImage, **extra) -> dict:
    albums = list(albums_for_owner(owner=request.user))
    context = {
        "image": image,
        "form": ImageForm(
            initial={
                "name": image.name,
                "description": image.description,
                "is_public": image.is_public,
            }
        ),
        "enhance_form": EnhanceForm(initial={"tier": "2K"}),
        "tiers": _tier_prices(image),
        "jobs": list(image_enhancements(image=image)[:20]),
        "album_form": AddToAlbumForm(albums=albums),
        "albums": albums,
        "in_albums": albums_with_image(owner=request.user, image=image),
    }
    context.update(extra)
    return context


def _tier_prices(image: EnhancedImage) -> list[dict]:
    tiers = []
    for tier in TIERS:
        target = plan(width=image.width, height=image.height, tier=tier)
        try:
            credits = estimate(
                operation="enhance", model=services.enhancement_model(), tier=tier
            ).credits
        except GenerationsError:
            credits = None
        tiers.append(
            {"tier": tier, "credits": credits, "width": target.width, "height": target.height}
        )
    return tiers


@login_required
@require_POST
def image_edit(request, public_id):
    image = image_for_owner(owner=request.user, public_id=public_id)
    form = ImageForm(request.POST)
    if form.is_valid():
        try:
            services.image_update(owner=request.user, image_id=image.public_id, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Saved.")
            return redirect(image)
    return render(
        request, "images/detail.html", _image_context(request, image, form=form), status=400
    )


@login_required
@require_POST
def image_delete_view(request, public_id):
    image = image_for_owner(owner=request.user, public_id=public_id)
    try:
        services.image_delete(owner=request.user, image_id=image.public_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(image)
    messages.success(request, f"“{image.name}” is deleted, with its enhanced versions.")
    return redirect("images:list")


@login_required
@require_POST
def image_enhance(request, public_id):
    image = image_for_owner(owner=request.user, public_id=public_id)
    form = EnhanceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a size: 1K, 2K or 4K.")
        return redirect(image)
    try:
        job = services.enhancement_submit(
            user=request.user, image_id=image.public_id, tier=form.cleaned_data["tier"]
        )
    except ApplicationError as exc:
        messages.error(request, f"The enhancement was not ordered: {exc.message}")
        return redirect(image)
    return redirect(job)


@login_required
@require_POST
def image_add_to_album(request, public_id):
    image = image_for_owner(owner=request.user, public_id=public_id)
    albums = albums_for_owner(owner=request.user)
    form = AddToAlbumForm(request.POST, albums=albums)
    if not form.is_valid():
        messages.error(request, "Choose one of your albums.")
        return redirect(image)
    album = album_for_owner(owner=request.user, public_id=form.cleaned_data["album"])
    try:
        services.album_add_image(
            owner=request.user, album_id=album.public_id, image_id=image.public_id
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Added to “{album.title}”.")
    return redirect(image)


@login_required
@require_GET
def image_original(request, public_id):
    """The original upload: its owner only."""
    image = image_for_owner(owner=request.user, public_id=public_id)
    download = f"{_slug(image.name)}.{image.extension}" if request.GET.get("download") else ""
    return serve(request, image.original.name, public=False, download_as=download)


@login_required
@require_GET
def image_shown(request, public_id):
    """What the picture shows (its newest enhancement, else the original): its owner only."""
    image = image_for_owner(owner=request.user, public_id=public_id)
    return serve(request, display_name(image), public=False)


# --- your albums --------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def album_list(request):
    form = AlbumForm()
    status = 200
    if request.method == "POST":
        form = AlbumForm(request.POST)
        if form.is_valid():
            try:
                album = services.album_create(owner=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
                status = exc.status
            else:
                return redirect(album)
        else:
            status = 400
    return render(
        request,
        "images/albums.html",
        {"form": form, "albums": albums_for_owner(owner=request.user)},
        status=status,
    )


@login_required
@require_GET
def album_detail(request, public_id):
    album = album_for_owner(owner=request.user, public_id=public_id)
    return render(request, "images/album.html", _album_context(request, album))


def _shown_items(album: Album) -> list:
    items = album_items(album=album)
    with_versions([item.image for item in items])
    return items


def _album_context(request, album: Album, **extra) -> dict:
    context = {
        "album": album,
        "items": _shown_items(album),
        "form": AlbumForm(
            initial={
                "title": album.title,
                "description": album.description,
                "privacy": album.privacy,
            }
        ),
        "share_url": request.build_absolute_uri(f"/s/{album.share_token}/")
        if album.share_token
        else "",
    }
    context.update(extra)
    return context


@login_required
@require_POST
def album_edit(request, public_id):
    album = album_for_owner(owner=request.user, public_id=public_id)
    form = AlbumForm(request.POST)
    if form.is_valid():
        try:
            services.album_update(owner=request.user, album_id=album.public_id, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Album saved.")
            return redirect(album)
    return render(
        request, "images/album.html", _album_context(request, album, form=form), status=400
    )


@login_required
@require_POST
def album_share(request, public_id):
    album = album_for_owner(owner=request.user, public_id=public_id)
    try:
        services.album_share_reset(owner=request.user, album_id=album.public_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The album has a new share link; the old one no longer works.")
    return redirect(album)


@login_required
@require_POST
def album_delete_view(request, public_id):
    album = album_for_owner(owner=request.user, public_id=public_id)
    services.album_delete(owner=request.user, album_id=album.public_id)
    messages.success(request, f"The album “{album.title}” is deleted; its pictures are kept.")
    return redirect("images:albums")


ITEM_ACTIONS = {
    "remove": lambda **kw: services.album_remove_image(**kw),
    "cover": lambda **kw: services.album_set_cover(**kw),
    "up": lambda **kw: services.album_move_image(offset=-1, **kw),
    "down": lambda **kw: services.album_move_image(offset=1, **kw),
}


@login_required
@require_POST
def album_item(request, public_id, image_id, action: str):
    album = album_for_owner(owner=request.user, public_id=public_id)
    if action not in ITEM_ACTIONS:
        raise Http404("No such action.")
    try:
        ITEM_ACTIONS[action](owner=request.user, album_id=album.public_id, image_id=image_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(album)


# --- what others see ----------------------------------------------------------------------


@require_GET
def shared_album(request, token: str):
    album = album_shared(token=token)
    return render(
        request,
        "images/shared_album.html",
        {"album": album, "items": _shown_items(album), "token": token},
    )


@require_GET
def shared_file(request, token: str, image_id):
    album = album_shared(token=token)
    image = shared_image(album=album, public_id=image_id)
    return serve(request, display_name(image), public=False)


@require_GET
def gallery(request):
    page = Paginator(gallery_images(), app_settings.GALLERY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "images/gallery.html",
        {"albums": gallery_albums(), "page": page, "images": with_versions(page.object_list)},
    )


@require_GET
def gallery_album(request, public_id):
    album = album_public(public_id=public_id)
    return render(
        request,
        "images/shared_album.html",
        {"album": album, "items": _shown_items(album), "public": True},
    )


@require_GET
def gallery_image(request, public_id):
    image = public_image(public_id=public_id)
    services.image_view_record(
        image_pk=image.pk,
        visitor=services.visitor_key(
            user_id=request.user.pk if request.user.is_authenticated else None,
            session_key=request.session.session_key or "",
            address=client_ip(request) or "",
            agent=request.headers.get("User-Agent", ""),
        ),
    )
    image.refresh_from_db(fields=["view_count"])
    job = latest_result(image=image)
    return render(
        request,
        "images/gallery_image.html",
        {"image": with_versions([image])[0], "enhanced": job},
    )


@require_GET
def gallery_file(request, public_id):
    image = public_image(public_id=public_id)
    return serve(request, display_name(image), public=True)


def _slug(text: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)[:60].strip("-")
    return cleaned or "picture"
