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


class AccountDeleteForm(forms.Form):
    """Deleting an account is confirmed with its password (or, without one, its address)."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    email = forms.CharField(
        label="Your email address",
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        help_text="Your account has no password: type its email address to confirm.",
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user.has_usable_password():
            del self.fields["email"]
            self.fields["password"].required = True
        else:
            del self.fields["password"]
            self.fields["email"].required = True

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("The password is not correct.")
        return password

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if email.casefold() != self.user.email.casefold():
            raise forms.ValidationError("That is not this account's email address.")
        return email
