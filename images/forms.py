from django import forms

from .app_settings import app_settings
from .enhancing import TIERS
from .models import Album


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Picture (JPEG, PNG or WebP)",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )
    name = forms.CharField(max_length=200, required=False, label="Name")
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    is_public = forms.BooleanField(required=False, label="Show it in the public gallery")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = (
            f"Up to {app_settings.MAX_UPLOAD_BYTES // (1024 * 1024)} MB and "
            f"{app_settings.MAX_PIXELS / 1e6:.0f} megapixels. Location and camera data are removed."
        )


class ImageForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    is_public = forms.BooleanField(required=False, label="Show it in the public gallery")


class EnhanceForm(forms.Form):
    tier = forms.ChoiceField(choices=[(t, t) for t in TIERS], widget=forms.RadioSelect)


class AlbumForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    privacy = forms.ChoiceField(choices=Album.Privacy.choices, initial=Album.Privacy.PRIVATE)


class AddToAlbumForm(forms.Form):
    album = forms.ChoiceField(label="Album")

    def __init__(self, *args, albums=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["album"].choices = [(str(a.public_id), a.title) for a in albums]
