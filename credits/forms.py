"""Parsing of the history page's query string: filters and the keyset position."""

from datetime import date

from django import forms
from django.core.validators import MaxValueValidator

from .models import LedgerKind
from .selectors import Cursor

_EARLIEST = date(2000, 1, 1)
_LATEST = date(9000, 1, 1)


class HistoryFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label="Kind", required=False, choices=[("", "All kinds"), *LedgerKind.choices]
    )
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    before = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

    def clean_before(self) -> Cursor | None:
        value = self.cleaned_data.get("before") or ""
        if not value:
            return None
        try:
            return Cursor.decode(value)
        except ValueError:
            raise forms.ValidationError(
                "That page link is not valid any more. Start again from the newest entries."
            ) from None

    def _clean_day(self, name: str) -> date | None:
        value = self.cleaned_data.get(name)
        if value is not None and not (_EARLIEST <= value < _LATEST):
            raise forms.ValidationError(f"Pick a date between {_EARLIEST:%Y} and {_LATEST:%Y}.")
        return value

    def clean_date_from(self) -> date | None:
        return self._clean_day("date_from")

    def clean_date_to(self) -> date | None:
        return self._clean_day("date_to")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> dict:
        """The selector arguments for the valid filters (call after is_valid())."""
        kind = self.cleaned_data.get("kind")
        return {
            "kinds": [kind] if kind else None,
            "date_from": self.cleaned_data.get("date_from"),
            "date_to": self.cleaned_data.get("date_to"),
        }

    def filter_query(self) -> str:
        """The filters as a query string (without the page position), for links."""
        from django.http import QueryDict

        query = QueryDict(mutable=True)
        for name in ("kind", "date_from", "date_to"):
            value = self.data.get(name)
            if value:
                query[name] = value
        return query.urlencode()


class SpendingControlsForm(forms.Form):
    """A user's caps and low-balance alert; an empty field means none."""

    daily_cap = forms.IntegerField(
        label="Daily cap",
        required=False,
        min_value=0,
        help_text="The most credits spent in one day. Empty: no daily cap.",
    )
    monthly_cap = forms.IntegerField(
        label="Monthly cap",
        required=False,
        min_value=0,
        help_text="The most credits spent in one calendar month. Empty: no monthly cap.",
    )
    low_balance_threshold = forms.IntegerField(
        label="Low-balance alert",
        required=False,
        min_value=0,
        help_text="Tell me when my balance falls below this many credits. Empty: no alert.",
    )

    def __init__(self, *args, max_amount: int, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.max_value = max_amount
            field.validators.append(MaxValueValidator(max_amount))
            field.widget.attrs.update({"min": 0, "max": max_amount, "inputmode": "numeric"})

    def clean(self):
        data = super().clean()
        daily, monthly = data.get("daily_cap"), data.get("monthly_cap")
        if daily is not None and monthly is not None and daily > monthly:
            self.add_error("daily_cap", "The daily cap cannot be more than the monthly cap.")
        return data
