"""The new-job form: its choices follow the operation picked, from the catalog."""

from django import forms

from . import catalog
from .app_settings import app_settings
from .backends import get_backend
from .models import Operation
from .selectors import source_jobs
from .services import JobRequest


class JobForm(forms.Form):
    operation = forms.ChoiceField(widget=forms.RadioSelect, label="What to make")
    model = forms.ChoiceField(label="Model")
    tier = forms.ChoiceField(widget=forms.RadioSelect, required=False, label="Size")
    prompt = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "three red circles over a blue ocean at sunset"}
        ),
        required=False,
        label="Prompt",
    )
    is_edit = forms.BooleanField(
        required=False, label="Edit an earlier result instead of starting fresh"
    )
    source_id = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Earlier result"
    )
    seed = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=2**31 - 1,
        label="Seed",
        help_text="The same prompt and seed always draw the same picture.",
    )
    max_output_tokens = forms.IntegerField(required=False, label="Longest answer (tokens)")
    use_own_key = forms.BooleanField(
        required=False, initial=True, label="Run on my own provider key"
    )

    def __init__(self, *args, user, user_has_key: bool, lenient: bool = False, **kwargs):
        """``lenient``: a model or tier left over from another operation falls back to the
        default (used while the form is being filled in, for the live estimate)."""
        super().__init__(*args, **kwargs)
        self.user_has_key = user_has_key
        ops = catalog.operations(user_has_key=user_has_key)
        self.fields["operation"].choices = ops
        #: Shown disabled, with how to enable them (see the form template).
        self.unavailable_operations = catalog.unavailable(user_has_key=user_has_key)
        data = self.data if self.is_bound else {}
        operation = data.get("operation") or self.initial.get("operation") or Operation.IMAGE
        if operation not in dict(ops):
            operation = Operation.IMAGE
        self.current_operation = operation
        self.offerings = [
            o
            for o in catalog.offerings(user_has_key=user_has_key)
            if o.operation == operation and o.listed
        ]
        self.fields["model"].choices = [(o.model, o.label) for o in self.offerings]
        model = data.get("model") or self.initial.get("model")
        self.offering = next((o for o in self.offerings if o.model == model), self.offerings[0])
        if not self.is_bound:
            self.initial["operation"] = operation
            self.initial["model"] = self.offering.model
        #: The fields the offering's backend reads beyond the common ones.
        self.backend_fields = get_backend(self.offering.backend).form_fields(operation=operation)
        self.fields["tier"].choices = [(t, t) for t in self.offering.tiers]
        self.fields["tier"].required = bool(self.offering.tiers)
        if self.offering.tiers and self.initial.get("tier") not in self.offering.tiers:
            self.initial["tier"] = self.offering.tiers[0]
        if lenient and self.is_bound:
            data = self.data.copy()
            if data.get("model") != self.offering.model:
                data["model"] = self.offering.model
            if self.offering.tiers and data.get("tier") not in self.offering.tiers:
                data["tier"] = self.offering.tiers[0]
            self.data = data
        # An enhancement works only on what its own backend made.
        sources = (
            source_jobs(
                user=user,
                operation=operation,
                backend=self.offering.backend if self.offering.needs_source else None,
            )
            if (self.offering.supports_edit or self.offering.needs_source)
            else []
        )
        self.sources = sources
        self.fields["source_id"].choices = [("", "Choose…")] + [
            (job.pk, f"#{job.pk} · {job.prompt[:60]}") for job in sources
        ]
        self.fields["max_output_tokens"].min_value = 16
        self.fields["max_output_tokens"].max_value = app_settings.MAX_OUTPUT_TOKENS
        self.fields["max_output_tokens"].widget.attrs.update(
            {"min": 16, "max": app_settings.MAX_OUTPUT_TOKENS, "step": 16}
        )
        self.fields["max_output_tokens"].initial = app_settings.DEFAULT_OUTPUT_TOKENS
        self.fields["prompt"].widget.attrs["maxlength"] = app_settings.MAX_PROMPT_CHARS
        if self.offering.needs_source:
            self.fields["prompt"].label = "Notes (optional)"
            self.fields["source_id"].label = "Picture to enhance"
        if operation == Operation.TEXT:
            self.fields["prompt"].widget.attrs["placeholder"] = (
                "A short product description for a hand-made teapot"
            )

    @property
    def shows_tier(self) -> bool:
        return bool(self.offering.tiers)

    @property
    def shows_source(self) -> bool:
        return self.offering.needs_source or (self.offering.supports_edit and self._flag("is_edit"))

    @property
    def shows_edit_toggle(self) -> bool:
        return self.offering.supports_edit

    @property
    def shows_seed(self) -> bool:
        """A fresh picture only: an edit or an enhancement keeps its source's seed."""
        return (
            "seed" in self.backend_fields
            and not self.offering.needs_source
            and not self._flag("is_edit")
        )

    @property
    def shows_tokens(self) -> bool:
        return "max_output_tokens" in self.backend_fields

    @property
    def shows_own_key(self) -> bool:
        return self.offering.remote and self.user_has_key

    def _flag(self, name: str) -> bool:
        if self.is_bound:
            return str(self.data.get(name, "")).lower() in {"on", "true", "1"}
        return bool(self.initial.get(name))

    def job_request(self) -> JobRequest:
        data = self.cleaned_data
        return JobRequest(
            operation=data["operation"],
            model=data.get("model") or "",
            tier=data.get("tier") or "",
            prompt=data.get("prompt") or "",
            is_edit=bool(data.get("is_edit")),
            source_id=data.get("source_id"),
            seed=data.get("seed"),
            max_output_tokens=data.get("max_output_tokens"),
            use_own_key=bool(data.get("use_own_key")),
        )


class ApiKeyForm(forms.Form):
    api_key = forms.CharField(
        label="Provider key",
        strip=True,
        max_length=512,
        widget=forms.PasswordInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "sk-…"}
        ),
    )
