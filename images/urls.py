from django.urls import path

from . import views

app_name = "images"
urlpatterns = [
    path("images/", views.image_list, name="list"),
    path("images/<uuid:public_id>/", views.image_detail, name="detail"),
    path("images/<uuid:public_id>/edit/", views.image_edit, name="edit"),
    path("images/<uuid:public_id>/delete/", views.image_delete_view, name="delete"),
    path("images/<uuid:public_id>/enhance/", views.image_enhance, name="enhance"),
    path("images/<uuid:public_id>/add-to-album/", views.image_add_to_album, name="add_to_album"),
    path("images/<uuid:public_id>/original/", views.image_original, name="original"),
    path("images/<uuid:public_id>/shown/", views.image_shown, name="shown"),
    path("albums/", views.album_list, name="albums"),
    path("albums/<uuid:public_id>/", views.album_detail, name="album"),
    path("albums/<uuid:public_id>/edit/", views.album_edit, name="album_edit"),
    path("albums/<uuid:public_id>/share/", views.album_share, name="album_share"),
    path("albums/<uuid:public_id>/delete/", views.album_delete_view, name="album_delete"),
    path(
        "albums/<uuid:public_id>/items/<uuid:image_id>/<str:action>/",
        views.album_item,
        name="album_item",
    ),
    path("s/<str:token>/", views.shared_album, name="shared"),
    path("s/<str:token>/<uuid:image_id>/", views.shared_file, name="shared_file"),
    path("gallery/", views.gallery, name="gallery"),
    path("gallery/albums/<uuid:public_id>/", views.gallery_album, name="gallery_album"),
    path("gallery/images/<uuid:public_id>/", views.gallery_image, name="gallery_image"),
    path("gallery/images/<uuid:public_id>/file/", views.gallery_file, name="gallery_file"),
]
