from django import forms

from .models import ApiKey


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80, label="Name", help_text="Where the key is used, e.g. “nightly batch”."
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ],
        label="Scopes",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at the start of this day.",
    )
    daily_credit_cap = forms.IntegerField(
        required=False,
        min_value=1,
        label="Daily credit cap (optional)",
        help_text="Jobs made with this key may be charged at most this many credits a day.",
    )


class RotateForm(forms.Form):
    overlap_hours = forms.IntegerField(min_value=0, max_value=720, initial=24)
