"""Admin actions with a confirmation form: one service call per object, one message per object.

The pattern of Django's ``delete_selected``: the action first renders a confirmation page
listing the chosen objects and a form (amount, reason, ...); that page posts back the same
action with ``confirm=yes``; then each object gets its own service call and its own success
or error message. The form carries a one-time ``submission_key`` from which the services'
idempotency keys are derived, so submitting the same confirmation twice acts once.
"""

from collections.abc import Callable, Sequence

from django.contrib import messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from credits.exceptions import CreditsError
from payments.exceptions import PaymentsError

from .exceptions import BackofficeError

#: Refusals a service may answer with; anything else is a bug and surfaces as one.
_ACTION_ERRORS: list[type[Exception]] = [CreditsError, PaymentsError, BackofficeError]


def register_action_error(error: type[Exception]) -> None:
    """Let another app's error hierarchy be shown as a per-object message."""
    if error not in _ACTION_ERRORS:
        _ACTION_ERRORS.append(error)


def action_errors() -> tuple[type[Exception], ...]:
    return tuple(_ACTION_ERRORS)


def submission_key(data: dict, action: str, obj) -> str:
    """The idempotency key of one object's part of one confirmed submission."""
    return f"admin:{action}:{data['submission_key']}:{obj.pk}"


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
    confirmation page.
    """
    objects = list(queryset)
    form_kwargs = {**(form_kwargs or {})}
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        form = form_class(request.POST, **form_kwargs)
        if form.is_valid() and objects:
            for obj in objects:
                try:
                    level, message = perform(request, obj, form.cleaned_data)
                except action_errors() as exc:
                    modeladmin.message_user(request, f"{label(obj)}: {exc}", messages.ERROR)
                else:
                    modeladmin.message_user(request, message, level)
            return HttpResponseRedirect(done_url) if done_url else None
    else:
        form = form_class(**form_kwargs)

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
        "columns": [label for label, _ in columns],
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
            "admin/backoffice/confirm_action.html",
        ],
        context,
    )
