"""Forms for the sign-up page and the account page."""

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms

from .models import User


class SignupForm(AllauthSignupForm):
    """allauth's sign-up form with an optional name, asked first."""

    name = forms.CharField(
        label="Name",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
        help_text="Shown on your invoices. You can change it later.",
    )
    field_order = ["name", "email", "password1", "password2"]


class ProfileForm(forms.ModelForm):
    """What a customer may change about themselves on the account page."""

    class Meta:
        model = User
        fields = ["name"]
        labels = {"name": "Name"}
        help_texts = {"name": "Shown on your invoices."}
        widgets = {"name": forms.TextInput(attrs={"autocomplete": "name"})}

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()
