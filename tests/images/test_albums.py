"""Albums over HTTP: privacy, share links and their revocation, order, cover, one place per
picture; the gallery as an anonymous visitor, with views counted once per visitor; nothing
reachable by guessing ids."""

import uuid

import pytest
from django.test import Client

from images.models import Album, AlbumItem
from images.services import album_add_image, album_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


def test_an_album_is_made_filled_ordered_and_given_a_cover_from_its_pages(
    owner, owner_client, upload
):
    first, second, third = (upload(owner, name=n) for n in ("Dawn", "Noon", "Dusk"))
    response = owner_client.post(
        "/albums/", {"title": "Harbour days", "description": "Boats", "privacy": "PRIVATE"}
    )
    album = Album.objects.get()
    assert response["Location"] == f"/albums/{album.public_id}/"
    for image in (first, second, third):
        owner_client.post(
            f"/images/{image.public_id}/add-to-album/", {"album": str(album.public_id)}
        )
    # A picture is in an album once: adding it again is refused with a message.
    response = owner_client.post(
        f"/images/{first.public_id}/add-to-album/", {"album": str(album.public_id)}, follow=True
    )
    assert "“Dawn” is already in “Harbour days”." in response.content.decode()
    assert AlbumItem.objects.filter(album=album).count() == 3

    album.refresh_from_db()
    assert album.cover == first  # the first picture added
    base = f"/albums/{album.public_id}/items"
    owner_client.post(f"{base}/{third.public_id}/up/")
    owner_client.post(f"{base}/{first.public_id}/down/")
    owner_client.post(f"{base}/{second.public_id}/cover/")
    order = list(album.items.order_by("position").values_list("image__name", flat=True))
    assert order == ["Dusk", "Dawn", "Noon"]
    album.refresh_from_db()
    assert album.cover == second

    owner_client.post(f"{base}/{second.public_id}/remove/")
    album.refresh_from_db()
    assert album.cover == third  # the cover left: the first picture left takes its place
    page = owner_client.get(f"/albums/{album.public_id}/").content.decode()
    assert page.index("Dusk") < page.index("Dawn") and "Noon" not in page

    owner_client.post(
        f"/albums/{album.public_id}/edit/",
        {"title": "Harbour", "description": "Boats at dawn", "privacy": "PRIVATE"},
    )
    album.refresh_from_db()
    assert (album.title, album.description) == ("Harbour", "Boats at dawn")


def test_a_private_album_and_its_pictures_are_its_owners_alone(owner, upload, make_user):
    image = upload(owner)
    album = album_create(owner=owner, title="Mine")
    album_add_image(owner=owner, album_id=album.public_id, image_id=image.public_id)
    stranger = Client()
    stranger.force_login(make_user())
    for url in (
        f"/albums/{album.public_id}/",
        f"/images/{image.public_id}/",
        f"/images/{image.public_id}/original/",
        f"/images/{image.public_id}/shown/",
        f"/gallery/albums/{album.public_id}/",
        f"/gallery/images/{image.public_id}/",
        f"/gallery/images/{image.public_id}/file/",
    ):
        assert stranger.get(url).status_code == 404, url
        assert Client().get(url).status_code in (302, 404), url  # logged out: log in, or 404
    response = stranger.post(f"/albums/{album.public_id}/items/{image.public_id}/remove/")
    assert response.status_code == 404 and album.items.count() == 1
    assert stranger.post(f"/images/{image.public_id}/delete/").status_code == 404
    assert Client().get(f"/gallery/images/{uuid.uuid4()}/").status_code == 404


def test_an_unlisted_album_is_seen_through_its_link_until_the_link_is_replaced(
    owner, owner_client, upload
):
    image = upload(owner, name="Lighthouse")
    album = album_create(owner=owner, title="For grandma")
    album_add_image(owner=owner, album_id=album.public_id, image_id=image.public_id)
    owner_client.post(
        f"/albums/{album.public_id}/edit/",
        {"title": "For grandma", "description": "", "privacy": "UNLISTED"},
    )
    album.refresh_from_db()
    token = album.share_token
    assert album.privacy == "UNLISTED" and len(token) >= 32
    assert f"/s/{token}/" in owner_client.get(f"/albums/{album.public_id}/").content.decode()

    visitor = Client()  # logged out
    page = visitor.get(f"/s/{token}/")
    assert page.status_code == 200 and "Lighthouse" in page.content.decode()
    picture = visitor.get(f"/s/{token}/{image.public_id}/")
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"
    assert "private" in picture["Cache-Control"]
    # Unlisted is not public: not in the gallery, and its pictures not at gallery addresses.
    assert "For grandma" not in visitor.get("/gallery/").content.decode()
    assert visitor.get(f"/gallery/albums/{album.public_id}/").status_code == 404
    assert visitor.get(f"/gallery/images/{image.public_id}/file/").status_code == 404
    # A link with another token, or a picture not in the album, shows nothing.
    assert visitor.get(f"/s/{token[:-2]}xx/").status_code == 404
    other = upload(owner, name="Other")
    assert visitor.get(f"/s/{token}/{other.public_id}/").status_code == 404

    owner_client.post(f"/albums/{album.public_id}/share/")  # a new link revokes the old one
    album.refresh_from_db()
    assert album.share_token != token
    assert visitor.get(f"/s/{token}/").status_code == 404
    assert visitor.get(f"/s/{token}/{image.public_id}/").status_code == 404
    assert visitor.get(f"/s/{album.share_token}/").status_code == 200

    # Made private: the link stops working; made unlisted again: yet another link.
    revoked = album.share_token
    owner_client.post(
        f"/albums/{album.public_id}/edit/",
        {"title": "For grandma", "description": "", "privacy": "PRIVATE"},
    )
    assert visitor.get(f"/s/{revoked}/").status_code == 404
    owner_client.post(
        f"/albums/{album.public_id}/edit/",
        {"title": "For grandma", "description": "", "privacy": "UNLISTED"},
    )
    album.refresh_from_db()
    assert album.share_token not in (token, revoked)


def test_the_gallery_shows_public_albums_and_pictures_to_anonymous_visitors(owner, upload):
    public_picture = upload(owner, name="Sunset over the pier", public=True)
    private_picture = upload(owner, name="Private kitchen")
    in_public_album = upload(owner, name="Album only")
    album = album_create(owner=owner, title="Seaside", privacy="PUBLIC")
    album_add_image(owner=owner, album_id=album.public_id, image_id=in_public_album.public_id)
    album_create(owner=owner, title="Hidden", privacy="PRIVATE")

    visitor = Client()
    page = visitor.get("/gallery/").content.decode()
    assert "Sunset over the pier" in page and "Seaside" in page
    assert "Private kitchen" not in page and "Hidden" not in page
    album_page = visitor.get(f"/gallery/albums/{album.public_id}/").content.decode()
    assert "Album only" in album_page
    for image in (public_picture, in_public_album):
        response = visitor.get(f"/gallery/images/{image.public_id}/file/")
        assert response.status_code == 200
        assert (
            "public" in response["Cache-Control"] and "max-age=86400" in response["Cache-Control"]
        )
        assert response.get("ETag")
        again = visitor.get(
            f"/gallery/images/{image.public_id}/file/", HTTP_IF_NONE_MATCH=response["ETag"]
        )
        assert again.status_code == 304
    assert visitor.get(f"/gallery/images/{private_picture.public_id}/file/").status_code == 404
    # The original itself stays its owner's.
    assert visitor.get(f"/images/{public_picture.public_id}/original/").status_code == 302


def test_reloading_a_picture_does_not_inflate_its_view_count(owner, upload, make_user):
    image = upload(owner, public=True)
    url = f"/gallery/images/{image.public_id}/"
    first = Client(REMOTE_ADDR="203.0.113.5", HTTP_USER_AGENT="Browser A")
    for _ in range(5):
        assert first.get(url).status_code == 200
    image.refresh_from_db()
    assert image.view_count == 1
    Client(REMOTE_ADDR="203.0.113.6", HTTP_USER_AGENT="Browser A").get(url)
    member = Client()
    member.force_login(make_user())
    member.get(url)
    member.get(url)
    image.refresh_from_db()
    assert image.view_count == 3
    page = member.get(url).content.decode()
    assert "3 views" in page
