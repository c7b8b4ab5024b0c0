"""The API keys page: list, create (the key shown once), rotate, revoke."""

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.errors import ApplicationError

from .forms import ApiKeyForm, RotateForm
from .keys import api_key_create, api_key_revoke, api_key_rotate, has_api_access
from .models import ApiKey


def _page(request, *, form=None, issued=None, status=200):
    keys = ApiKey.objects.filter(user_id=request.user.pk).select_related("replaced_by")
    return render(
        request,
        "api/keys.html",
        {
            "form": form or ApiKeyForm(),
            "keys": keys,
            "issued": issued,
            "has_access": has_api_access(user=request.user),
            "now": timezone.now(),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def keys(request):
    if request.method == "GET":
        return _page(request)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=400)
    data = form.cleaned_data
    expires_at = None
    if data["expires_on"]:
        expires_at = timezone.make_aware(datetime.combine(data["expires_on"], time()))
    try:
        issued = api_key_create(
            user=request.user,
            name=data["name"],
            scopes=data["scopes"],
            expires_at=expires_at,
            daily_credit_cap=data["daily_credit_cap"],
        )
    except ApplicationError as error:
        form.add_error(None, error.message)
        return _page(request, form=form, status=error.status)
    # Answered directly (no redirect): the token is never kept in the session or a message.
    return _page(request, issued=issued)


@login_required
@require_http_methods(["POST"])
def revoke(request, pk: int):
    try:
        key = api_key_revoke(key_id=pk, actor=request.user, user=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The key “{key.name}” ({key.display}) is revoked.")
    return redirect("api:keys")


@login_required
@require_http_methods(["POST"])
def rotate(request, pk: int):
    form = RotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The overlap is 0 to 720 hours.")
        return redirect("api:keys")
    try:
        issued = api_key_rotate(
            user=request.user,
            key_id=pk,
            overlap=timedelta(hours=form.cleaned_data["overlap_hours"]),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("api:keys")
    return _page(request, issued=issued)
