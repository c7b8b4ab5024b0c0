"""Confirmation forms of the staff actions and the dashboard's period form."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.admin_actions import ConfirmActionForm
from credits.models import STAFF_ADJUSTMENT_ADDED, STAFF_ADJUSTMENT_REMOVED
from payments.templatetags.money import money

from . import app_settings

MAX_ADJUSTMENT = 10_000_000


class AdjustCreditsForm(ConfirmActionForm):
    """The internal note (``reason``) stays with staff; the description is what the customer reads."""

    amount = forms.IntegerField(
        min_value=-MAX_ADJUSTMENT,
        max_value=MAX_ADJUSTMENT,
        help_text="Credits to add (positive) or take away (negative).",
        widget=forms.NumberInput(attrs={"step": 1, "autofocus": True}),
    )
    description = forms.CharField(
        label="Description shown to the customer",
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text=(
            "The customer sees this in their credit history, CSV export and emails. Leave empty "
            f"for \u201c{STAFF_ADJUSTMENT_ADDED}\u201d or \u201c{STAFF_ADJUSTMENT_REMOVED}\u201d."
        ),
    )
    expires_on = forms.DateField(
        label="Credits expire after",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=(
            "Added credits are promotional. Give a day to have them expire at the end of it "
            "(your time zone); leave empty for credits that never expire. Not for a negative "
            "adjustment."
        ),
    )
    field_order = ["amount", "expires_on", "description", "reason", "submission_key"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = "Internal note (staff only)"
        self.fields["reason"].help_text = (
            "Why you make this adjustment. Written to the audit log with your name; "
            "the customer never sees it."
        )

    def clean_description(self) -> str:
        return " ".join(self.cleaned_data["description"].split())

    def clean_amount(self) -> int:
        value = self.cleaned_data["amount"]
        if value == 0:
            raise ValidationError("An adjustment cannot be zero.")
        return value

    def clean_expires_on(self) -> date | None:
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.localdate():
            raise ValidationError(
                "Pick today or a later day: the credits must expire in the future."
            )
        return day

    def clean(self):
        cleaned = super().clean()
        amount, day = cleaned.get("amount"), cleaned.get("expires_on")
        if day is not None and amount is not None and amount < 0:
            self.add_error(
                "expires_on",
                "Only added credits can expire: leave it empty for a negative adjustment.",
            )
        return cleaned


def lot_expiry_at_end_of(day: date | None) -> datetime | None:
    """The first moment after ``day`` ends in the current time zone (None for no day)."""
    if day is None:
        return None
    return timezone.make_aware(
        datetime.combine(day + timedelta(days=1), time.min), timezone.get_current_timezone()
    )


class RefundOrderForm(ConfirmActionForm):
    amount = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        max_digits=10,
        decimal_places=2,
        help_text="Leave empty to refund everything not yet refunded.",
    )
    field_order = ["amount", "reason", "submission_key"]

    def __init__(self, *args, orders=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.orders = list(orders or [])

    def clean(self):
        cleaned = super().clean()
        amount = cleaned.get("amount")
        if amount is not None and len(self.orders) > 1:
            raise ValidationError("A partial amount can be given for one order at a time.")
        if amount is not None and self.orders:
            order = self.orders[0]
            remaining = order.amount - order.amount_refunded
            if amount > remaining:
                self.add_error(
                    "amount",
                    f"At most {money(remaining, order.currency)} is left to refund on this order.",
                )
        return cleaned


class PeriodForm(forms.Form):
    """7, 30 or 90 days back from today, or a date range of at most BACKOFFICE_DASHBOARD_MAX_DAYS."""

    PERIODS = [("7", "7 days"), ("30", "30 days"), ("90", "90 days")]

    period = forms.ChoiceField(choices=PERIODS, required=False)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if self.errors:
            return cleaned
        if start or end:
            if not (start and end):
                raise ValidationError("Give both a start and an end date, or pick a period.")
            if start > end:
                raise ValidationError("The start date must be on or before the end date.")
            today = timezone.localdate()
            if start > today:
                raise ValidationError("The start date is in the future.")
            if (end - start).days + 1 > app_settings.dashboard_max_days():
                raise ValidationError(f"Pick at most {app_settings.dashboard_max_days()} days.")
        return cleaned

    def date_range(self) -> tuple[date, date]:
        """The first and last day (inclusive) asked for, or the last 30 days when the form is invalid."""
        today = timezone.localdate()
        if self.is_bound and self.is_valid():
            if self.cleaned_data.get("start"):
                return self.cleaned_data["start"], self.cleaned_data["end"]
            days = int(self.cleaned_data.get("period") or 30)
        else:
            days = 30
        return today - timedelta(days=days - 1), today


class SpendingControlsStaffForm(ConfirmActionForm):
    """A user's caps and low-balance alert set by staff (empty: none), with the reason."""

    daily_cap = forms.IntegerField(label="Daily cap", required=False, min_value=0)
    monthly_cap = forms.IntegerField(label="Monthly cap", required=False, min_value=0)
    low_balance_threshold = forms.IntegerField(
        label="Low-balance alert", required=False, min_value=0
    )

    def clean(self):
        data = super().clean()
        daily, monthly = data.get("daily_cap"), data.get("monthly_cap")
        if daily is not None and monthly is not None and daily > monthly:
            self.add_error("daily_cap", "The daily cap cannot be more than the monthly cap.")
        return data
