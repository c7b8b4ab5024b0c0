"""Admin actions with a confirmation form: one service call per object, one message per object.

The pattern of Django's ``delete_selected``: the action first renders a confirmation page
listing the chosen objects and a form (amount, reason, ...); that page posts back the same
action with ``confirm=yes``; then each object gets its own service call and its own success
or error message. The form carries a one-time ``submission_key`` from which the services'
idempotency keys are derived, so submitting the same confirmation twice acts once.

A refusal (an ``ApplicationError``) becomes that object's error message; anything else is
a bug and surfaces as one.
"""

import uuid
from collections.abc import Callable, Sequence

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from .errors import ApplicationError, admin_error_message


class ConfirmActionForm(forms.Form):
    """What every staff action asks: why. ``submission_key`` makes a double submit act once."""

    submission_key = forms.CharField(widget=forms.HiddenInput, max_length=64)
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Written to the audit log with your name.",
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("submission_key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)

    def clean_submission_key(self) -> str:
        value = self.cleaned_data["submission_key"]
        try:
            return uuid.UUID(hex=value).hex
        except ValueError:
            raise ValidationError("The form is stale: reload the page and try again.") from None

    def clean_reason(self) -> str:
        value = self.cleaned_data["reason"].strip()
        if not value:
            raise ValidationError("Say why.")
        return value


def submission_key(data: dict, action: str, obj) -> str:
    """The idempotency key of one object's part of one confirmed submission."""
    return f"admin:{action}:{data['submission_key']}:{obj.pk}"


def action_on_one(model_admin, request, object_id, *, action: Callable, allowed: bool):
    """An admin action run from one object's change page: the action's confirmation form for
    that object alone, back to its change page when done. ``allowed`` is the action's
    permission check for this request."""
    if not allowed:
        raise PermissionDenied
    obj = get_object_or_404(model_admin.get_queryset(request), pk=object_id)
    opts = model_admin.model._meta
    return action(
        request,
        model_admin.model.objects.filter(pk=obj.pk),
        done_url=reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
        form_url=request.path,
    )


def confirmed_action(
    modeladmin,
    request,
    queryset,
    *,
    action: str,
    title: str,
    form_class,
    perform: Callable,
    columns: Sequence[tuple[str, Callable]],
    submit_label: str,
    intro: str = "",
    form_kwargs: dict | None = None,
    done_url: str | None = None,
    form_url: str = "",
    label: Callable = str,
):
    """Render the confirmation page, or, when it was confirmed, act on each object.

    ``perform(request, obj, cleaned_data)`` makes the one service call for ``obj`` and
    returns ``(level, message)``; a refusal it raises becomes an error message for that
    object alone, prefixed with ``label(obj)``. ``columns`` describe each object on the
    confirmation page. ``done_url`` is where to go once done (None: back to the changelist);
    ``form_url`` is where the page posts when it is not the changelist's action (a button on
    a change page).
    """
    objects = list(queryset)
    confirmed = request.method == "POST" and request.POST.get("confirm") == "yes"
    form = (
        form_class(request.POST, **(form_kwargs or {}))
        if confirmed
        else form_class(**(form_kwargs or {}))
    )
    if confirmed and form.is_valid() and objects:
        for obj in objects:
            _perform_one(modeladmin, request, obj, form.cleaned_data, perform=perform, label=label)
        return HttpResponseRedirect(done_url) if done_url else None
    return _confirmation_page(
        modeladmin,
        request,
        objects,
        form,
        action=action,
        title=title,
        columns=columns,
        submit_label=submit_label,
        intro=intro,
        done_url=done_url,
        form_url=form_url,
    )


def _perform_one(
    modeladmin, request, obj, data: dict, *, perform: Callable, label: Callable
) -> None:
    """One object's service call and its one message: what was done, or why it was refused."""
    try:
        level, message = perform(request, obj, data)
    except ApplicationError as exc:
        modeladmin.message_user(
            request, admin_error_message(exc, label=str(label(obj))), messages.ERROR
        )
    else:
        modeladmin.message_user(request, message, level)


def _confirmation_page(
    modeladmin,
    request,
    objects: list,
    form,
    *,
    action: str,
    title: str,
    columns,
    submit_label: str,
    intro: str,
    done_url: str | None,
    form_url: str,
) -> TemplateResponse:
    """The page listing ``objects`` with ``form``, posting back the same action (or ``form_url``)."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "intro": intro,
        "opts": opts,
        "app_label": opts.app_label,
        "form": form,
        "action": action if not form_url else "",
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "columns": [heading for heading, _ in columns],
        "rows": [(obj, [value(obj) for _, value in columns]) for obj in objects],
        "submit_label": submit_label,
        "form_url": form_url,
        "back_url": done_url or request.get_full_path(),
        "media": modeladmin.media + form.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(
        request,
        [
            f"admin/{opts.app_label}/{opts.model_name}/confirm_action.html",
            "admin/core/confirm_action.html",
        ],
        context,
    )
